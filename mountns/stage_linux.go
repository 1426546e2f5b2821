// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The staging steps: the tmpfs on udiMount, the image on udiMount/lower,
// the upper layer (unprivileged mode) and the overlay that becomes the
// container root.

// stagingTmpfs mounts the staging tmpfs of o on udiMount and makes the
// lower, upper and work directories in it.
func stagingTmpfs(o op, unprivileged bool) error {
	if !unprivileged {
		if err := os.MkdirAll(o.dest, 0o755); err != nil {
			return fmt.Errorf("%w: creating udiMount: %v", ErrMount, err)
		}
	}
	if err := mount(o.source, o.dest, o.fstype, o.flags, o.data); err != nil {
		return err
	}
	if err := mount("", o.dest, "", unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	for _, d := range []string{"lower", "upper", "work"} {
		if err := os.Mkdir(path.Join(o.dest, d), 0o755); err != nil {
			return fmt.Errorf("%w: creating staging directory: %v", ErrMount, err)
		}
	}
	return nil
}

// mountImage mounts the image (or binds the local root) on lower as o
// says, and returns the FUSE helper, if any. In auto mode a loop mount that
// fails for a reason of the loop devices falls back to FUSE.
func mountImage(o op, cfg *initConfig, image *os.File, log *initLogger) (fuse *exec.Cmd, err error) {
	lower := o.dest
	switch {
	case o.mode == "":
		return nil, bindReadOnly(o.source, lower)
	case o.mode == MountLoop:
		dev, err := mountLoop(image, cfg.ImagePath, lower)
		var unusable *loopUnusableError
		switch {
		case err == nil:
			log.debug("image mounted", "mode", "loop", "device", dev, "mountpoint", lower)
			return nil, nil
		case !cfg.FallbackFUSE || !errors.As(err, &unusable):
			return nil, err
		case cfg.NoFUSE != "":
			return nil, fmt.Errorf("%w: cannot mount the image: loop mode failed (%s) and fuse mode is impossible (%s)", ErrFUSE,
				strings.TrimPrefix(err.Error(), ErrMount.Error()+": "), strings.TrimPrefix(cfg.NoFUSE, ErrFUSE.Error()+": "))
		}
		log.info("image mount mode", "mode", string(MountFUSE), "reason", "auto: loop mount failed: "+err.Error())
		if fuse, err = startFUSE(cfg, log, image, lower); err != nil {
			return nil, fmt.Errorf("%w (falling back after the loop mount failed: %v)", err, unusable)
		}
	case o.mode == MountFUSE && cfg.EarlyHelperPID != 0:
		if err := attachFUSE(image, lower); err != nil {
			return nil, err
		}
		log.debug("image mounted", "mode", "fuse", "pid", strconv.Itoa(cfg.EarlyHelperPID), "mountpoint", lower, "helper", "started by the runtime")
		return nil, nil
	case o.mode == MountFUSE:
		if fuse, err = startFUSE(cfg, log, image, lower); err != nil {
			return nil, err
		}
	case o.mode == MountShared:
		err := bindShared(cfg.SharedPath, image, lower)
		image.Close()
		if err != nil {
			return nil, err
		}
		log.debug("image mounted", "mode", string(MountShared), "shared", cfg.SharedPath, "mountpoint", lower)
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: mount mode %q", ErrSpec, o.mode)
	}
	log.debug("image mounted", "mode", "fuse", "pid", fmt.Sprint(fuse.Process.Pid), "mountpoint", lower)
	return fuse, nil
}

// bindReadOnly binds the host directory src recursively on target, every
// mount read-only, nosuid, nodev.
func bindReadOnly(src, target string) error {
	if err := mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	f, err := os.OpenFile(target, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: opening %s: %v", ErrMount, target, err)
	}
	defer f.Close()
	return setAttrsRecursive(int(f.Fd()), target, mountAttrs{rdonly: true, nosuid: true, nodev: true})
}

// mountOverlay mounts the overlay of o on udiMount and returns the
// container root.
func mountOverlay(o op, cfg *initConfig, log *initLogger) (*rootfs, error) {
	udi := o.dest
	// Relative layer paths keep udiMount out of the option string (commas
	// and colons in it would be misparsed).
	if err := os.Chdir(udi); err != nil {
		return nil, fmt.Errorf("%w: entering udiMount: %v", ErrMount, err)
	}
	err := errors.ErrUnsupported
	if cfg.Unprivileged {
		// userxattr (Linux 5.11) keeps overlay's own xattrs in user.*,
		// which is what a user namespace may write.
		err = mount(o.source, udi, o.fstype, o.flags, o.data+",userxattr")
	}
	if err != nil {
		err = mount(o.source, udi, o.fstype, o.flags, o.data)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (the container root needs overlayfs)", err)
	}
	if err := os.Chdir("/"); err != nil {
		return nil, fmt.Errorf("%w: chdir /: %v", ErrMount, err)
	}
	dir, err := os.OpenFile(udi, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: opening the container root: %v", ErrMount, err)
	}
	// The root's real path: udiMount may go through a symlink, and the
	// destination checks compare it with the real paths of what is opened
	// below it.
	real, err := os.Readlink(fdPath(dir))
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("%w: resolving the container root: %v", ErrMount, err)
	}
	return &rootfs{path: real, dir: dir, unpriv: cfg.Unprivileged, cred: cfg.Cred, log: log}, nil
}

// bindShared binds shifterd's mount of the image at path on target,
// read-only, nosuid, nodev, after checking that path still leads to the
// mount whose root shifterd handed over (root).
func bindShared(path string, root *os.File, target string) error {
	var want, got unix.Stat_t
	if err := unix.Fstat(int(root.Fd()), &want); err != nil {
		return fmt.Errorf("%w: the shared mount's root: %v", ErrMount, err)
	}
	if err := mount(path, target, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	if err := unix.Stat(target, &got); err != nil || got.Dev != want.Dev || got.Ino != want.Ino {
		unix.Unmount(target, unix.MNT_DETACH)
		return fmt.Errorf("%w: %s is not the shared mount shifterd handed over", ErrMount, path)
	}
	f, err := os.OpenFile(target, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: opening %s: %v", ErrMount, target, err)
	}
	defer f.Close()
	return setAttrsRecursive(int(f.Fd()), target, mountAttrs{rdonly: true, nosuid: true, nodev: true})
}
