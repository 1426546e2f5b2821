// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"
)

// loopConfigure is LOOP_CONFIGURE (a variable so that tests can take the
// pre-5.8 path).
var loopConfigure = unix.IoctlLoopConfigure

// loopAttempts bounds the retries when other processes take the free loop
// device between LOOP_CTL_GET_FREE and binding it.
const loopAttempts = 64

// loopUnusableError is a loop mount failure that says nothing about the
// image: the loop devices or kernel squashfs are missing, denied (a
// container that denies loop ioctls or device access) or all busy. Auto
// mode falls back to FUSE on it.
type loopUnusableError struct{ err error }

func (e *loopUnusableError) Error() string   { return e.err.Error() }
func (e *loopUnusableError) Unwrap() []error { return []error{ErrMount, e.err} }

// loopUnusableErrnos are the errors of opening the loop devices, of the
// loop ioctls and of mount(2) that FUSE would not meet: a device that is
// missing, denied or not a loop device at all (ENOENT, ENXIO, ENODEV,
// EPERM, EACCES, ENOTTY), no device left (ENOSPC, EBUSY), a kernel without
// squashfs (mount: ENODEV) or without the image's compressor (mount:
// EINVAL). Errors that FUSE would meet as well (ENOMEM, EMFILE, EIO) are
// not among them.
var loopUnusableErrnos = []error{unix.EPERM, unix.EACCES, unix.ENOENT, unix.ENXIO, unix.ENODEV, unix.ENOTTY, unix.ENOSPC, unix.EBUSY, unix.EINVAL, unix.EOPNOTSUPP, unix.EROFS}

// classifyLoop marks err a loopUnusableError when its errno is one of
// loopUnusableErrnos; err must wrap ErrMount.
func classifyLoop(err error) error {
	for _, e := range loopUnusableErrnos {
		if errors.Is(err, e) {
			return &loopUnusableError{err}
		}
	}
	return err
}

// loopLockWait bounds the wait for the flock on /dev/loop-control (a
// variable so that tests can shorten it). A start holds it for the two
// ioctls only, a few milliseconds; a holder that does not let go within
// this time is stuck (stopped, by root's SIGSTOP), and the start goes on
// without the lock.
var loopLockWait = 2 * time.Second

// lockLoopControl takes the exclusive flock on ctl, waiting at most
// loopLockWait, and reports whether it got it.
func lockLoopControl(ctl *os.File) (bool, error) {
	deadline := time.Now().Add(loopLockWait)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		err := unix.Flock(int(ctl.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case err == unix.EINTR:
			continue
		case err != unix.EWOULDBLOCK:
			return false, fmt.Errorf("%w: locking /dev/loop-control: %v", ErrMount, err)
		case time.Now().After(deadline):
			return false, nil
		}
		time.Sleep(pause)
	}
}

// withStopsDeferred runs fn with the job-control stops (SIGTSTP, SIGTTIN,
// SIGTTOU: ^Z on the terminal reaches the init too) held back, and stops
// the process after fn if one came: a process holding a node-wide lock
// must not be stopped by a user's ^Z. (SIGSTOP cannot be held back; only
// root can send it to the init.)
func withStopsDeferred(fn func()) {
	stops := make(chan os.Signal, 1)
	signal.Notify(stops, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)
	fn()
	signal.Stop(stops)
	select {
	case <-stops:
		// To this thread: a process-directed SIGSTOP may be taken by
		// another thread while this one runs on for a moment.
		_ = unix.Tgkill(os.Getpid(), unix.Gettid(), unix.SIGSTOP)
	default:
	}
}

// attachLoop binds image to a free loop device, read-only and autoclear,
// and returns the open device. Concurrent starts on one node are
// serialised by an exclusive flock on /dev/loop-control, held only around
// the ioctls, with job-control stops held back meanwhile; a lock that is
// not released within loopLockWait is passed over. Processes that do not
// take the lock (losetup), or a start that passed over it, are survived by
// retrying on EBUSY.
func attachLoop(image *os.File, name string) (dev *os.File, err error) {
	return attachLoopMode(image, name, true)
}

// attachLoopMode is attachLoop for a read-only or (perNodeCache volumes)
// a read-write device, always autoclear.
func attachLoopMode(image *os.File, name string, readOnly bool) (dev *os.File, err error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, classifyLoop(fmt.Errorf("%w: opening loop control: %w", ErrMount, err))
	}
	defer ctl.Close()
	withStopsDeferred(func() {
		var locked bool
		if locked, err = lockLoopControl(ctl); err != nil {
			return
		}
		if locked {
			defer unix.Flock(int(ctl.Fd()), unix.LOCK_UN)
		}
		dev, err = bindFreeLoop(ctl, image, name, readOnly)
	})
	return dev, err
}

// bindFreeLoop binds image to a free loop device found through ctl,
// retrying when another process takes the device first.
func bindFreeLoop(ctl, image *os.File, name string, readOnly bool) (*os.File, error) {
	info := unix.LoopInfo64{Flags: unix.LO_FLAGS_AUTOCLEAR}
	openMode := os.O_RDWR
	if readOnly {
		info.Flags |= unix.LO_FLAGS_READ_ONLY
		openMode = os.O_RDONLY
	}
	copy(info.File_name[:len(info.File_name)-1], name)
	legacy := false
	for attempt := 0; attempt < loopAttempts; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, classifyLoop(fmt.Errorf("%w: finding a free loop device: %w", ErrMount, err))
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		f, err := os.OpenFile(dev, openMode|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, classifyLoop(fmt.Errorf("%w: opening %s: %w", ErrMount, dev, err))
		}
		if !legacy {
			err = loopConfigure(int(f.Fd()), &unix.LoopConfig{Fd: uint32(image.Fd()), Info: info})
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
				legacy = true // before Linux 5.8
			}
		}
		if legacy {
			err = attachLoopLegacy(f, image, &info)
		}
		if err == nil {
			return f, nil
		}
		f.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, classifyLoop(fmt.Errorf("%w: binding %s to %s: %w", ErrMount, name, dev, err))
		}
	}
	return nil, &loopUnusableError{fmt.Errorf("%w: binding %s: every loop device was busy %d times", ErrMount, name, loopAttempts)}
}

// attachLoopLegacy is LOOP_SET_FD + LOOP_SET_STATUS64, for kernels without
// LOOP_CONFIGURE. If the status cannot be set the device is released.
func attachLoopLegacy(dev, image *os.File, info *unix.LoopInfo64) error {
	if err := unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_SET_FD, int(image.Fd())); err != nil {
		return err
	}
	if err := unix.IoctlLoopSetStatus64(int(dev.Fd()), info); err != nil {
		_ = unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
		return err
	}
	return nil
}

// mountLoop mounts image read-only, nosuid, nodev with the kernel squashfs
// driver at target. The device goes away (autoclear) with the mount.
func mountLoop(image *os.File, name, target string) (string, error) {
	dev, err := attachLoop(image, name)
	if err != nil {
		return "", err
	}
	defer dev.Close()
	if err := mount(dev.Name(), target, "squashfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return "", classifyLoop(err)
	}
	return dev.Name(), nil
}
