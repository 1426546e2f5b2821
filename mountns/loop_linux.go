// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// loopConfigure is LOOP_CONFIGURE (a variable so that tests can take the
// pre-5.8 path).
var loopConfigure = unix.IoctlLoopConfigure

// loopAttempts bounds the retries when other processes take the free loop
// device between LOOP_CTL_GET_FREE and binding it.
const loopAttempts = 64

// attachLoop binds image to a free loop device, read-only and autoclear,
// and returns the open device. Concurrent starts on one node are
// serialised by an exclusive flock on /dev/loop-control; processes that do
// not take the lock (losetup) are survived by retrying on EBUSY.
func attachLoop(image *os.File, name string) (*os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: opening loop control: %v", ErrMount, err)
	}
	defer ctl.Close()
	for {
		err = unix.Flock(int(ctl.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: locking /dev/loop-control: %v", ErrMount, err)
	}
	defer unix.Flock(int(ctl.Fd()), unix.LOCK_UN)

	info := unix.LoopInfo64{Flags: unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR}
	copy(info.File_name[:len(info.File_name)-1], name)
	legacy := false
	for attempt := 0; attempt < loopAttempts; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("%w: finding a free loop device: %v", ErrMount, err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: opening %s: %v", ErrMount, dev, err)
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
			return nil, fmt.Errorf("%w: binding %s to %s: %v", ErrMount, name, dev, err)
		}
	}
	return nil, fmt.Errorf("%w: binding %s: every loop device was busy %d times", ErrMount, name, loopAttempts)
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
		return "", err
	}
	return dev.Name(), nil
}
