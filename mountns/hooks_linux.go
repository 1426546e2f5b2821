// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"

	"golang.org/x/sys/unix"
)

// runHook runs a site hook as root with the container root as working
// directory and a fixed environment. A hook naming an existing file is run
// as "/bin/sh FILE" (Shifter's way) or, when the file is an ELF program,
// directly; anything else as "/bin/sh -c HOOK".
//
// The hook runs in a mount namespace of its own (hookNamespace) where
// only the container root's own file system is writable, so that the
// image, whose symlinks the hook's relative paths go through, cannot steer
// its writes onto the host.
func (r *rootfs) runHook(which, hook string) error {
	if hook == "" {
		return nil
	}
	args := []string{"/bin/sh", "-c", hook}
	if st, err := os.Stat(hook); err == nil && path.IsAbs(hook) && st.Mode().IsRegular() {
		args = []string{"/bin/sh", hook}
		if isELF(hook) {
			args = []string{hook}
		}
	}
	cmd := &exec.Cmd{Path: args[0], Args: args, Env: initEnv, Dir: r.path, Stdout: os.Stderr, Stderr: os.Stderr}
	if err := r.inHookNamespace(cmd.Run); err != nil {
		return fmt.Errorf("%w: %s %q: %v", ErrHook, which, hook, err)
	}
	return nil
}

// inHookNamespace runs fn (which starts the hook) on an OS thread of its
// own, in a new mount namespace: a copy of the init's in which every mount
// is read-only but the container root's own file system (the overlay).
// A symlink of the image that leads a hook's path out of the root (an
// absolute /var -> /dev/shm, a relative ../../..) or into a host directory
// bound in it (/dev, /tmp, a volume) thus ends on a read-only mount:
// nothing the hook makes lands anywhere but in the container's own file
// system. The overlay is shared with the init's namespace for the time of
// the hook, so the mounts the hook makes on it appear in the container;
// mounts it makes anywhere else go with its namespace.
func (r *rootfs) inHookNamespace(fn func() error) (err error) {
	if err := mount("", r.path, "", unix.MS_SHARED, ""); err != nil {
		return err
	}
	defer func() {
		if perr := mount("", r.path, "", unix.MS_PRIVATE, ""); perr != nil && err == nil {
			err = perr
		}
	}()
	ch := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, in the hook's namespace, ends with
		// the goroutine.
		runtime.LockOSThread()
		ch <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
				return fmt.Errorf("%w: a mount namespace for the hook: %v", ErrSetup, err)
			}
			root, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrSetup, err)
			}
			err = setAttrsRecursive(int(root.Fd()), "/", mountAttrs{rdonly: true})
			root.Close()
			if err != nil {
				return err
			}
			if err := mount("", r.path, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
				return err
			}
			return fn()
		}()
	}()
	return <-ch
}

// isELF reports whether the file p starts with the ELF magic.
func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	_, err = io.ReadFull(f, b[:])
	return err == nil && string(b[:]) == "\x7fELF"
}
