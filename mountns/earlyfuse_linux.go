// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The FUSE helper, started early: in privileged fuse mode Run itself (not
// the namespace init) opens /dev/fuse, makes the FUSE mount as a detached
// mount (fsopen, fsconfig, fsmount: it needs no mount point and no
// namespace yet) and starts shifter-mount as the user on the connection,
// before it starts the init. The helper's start (a Go runtime, the image's
// superblock and tables) then overlaps with the init's (another Go
// runtime, the config, the staging tmpfs) instead of following it; the
// init attaches the mount on udiMount/lower with move_mount(2), and the
// kernel holds whatever reaches the mount until the helper answers FUSE's
// INIT. The helper's failure closes the last /dev/fuse descriptor, which
// aborts the connection: what waits on the mount fails, and Run reports
// the helper's own message.

// earlyFUSE is a helper started by Run.
type earlyFUSE struct {
	mnt    *os.File // the detached mount, for the init (fdImage)
	cmd    *exec.Cmd
	report chan []byte // the helper's readiness report (empty: none)
}

// startEarlyFUSE starts the helper for cfg as described above, or returns
// nil when this way does not apply (loop or shared mode, unprivileged
// mode, an image the user may not read: the helper would run as root and
// mount by itself) or the kernel lacks what it needs (the init then does
// it the old way).
func startEarlyFUSE(cfg *initConfig, image *os.File, log *slog.Logger) *earlyFUSE {
	if cfg.Mode != MountFUSE || cfg.Unprivileged || image == nil || cfg.LocalRoot != "" || !readableBy(image, cfg.Cred) {
		return nil
	}
	fsname := cfg.ImagePath
	if fsname == "" {
		fsname = "shifter-image"
	}
	fuse, err := os.OpenFile("/dev/fuse", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		log.Debug("early FUSE helper: not started", "err", err)
		return nil
	}
	defer fuse.Close()
	mnt, err := detachedFUSEMount(fuse, fsname, cfg.Cred)
	if err != nil {
		log.Debug("early FUSE helper: not started", "err", err)
		return nil
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		mnt.Close()
		return nil
	}
	defer readyW.Close()
	cmd, args := helperCommand(cfg, slog.Level(cfg.LogLevel), true, readyW, image, fsname)
	cmd.ExtraFiles = append(cmd.ExtraFiles, fuse) // 5
	cmd.Args = append(args, "--kernel-readahead-kb=-1", "/proc/self/fd/4", "/dev/fd/5")
	if err := cmd.Start(); err != nil {
		log.Debug("early FUSE helper: not started", "err", err)
		readyR.Close()
		mnt.Close()
		return nil
	}
	setMountReadahead(mnt)
	e := &earlyFUSE{mnt: mnt, cmd: cmd, report: make(chan []byte, 1)}
	go func() {
		defer readyR.Close()
		b, timedOut := readReport(readyR)
		if timedOut {
			// A helper that never answers would hold the init in its
			// first access to the mount: ending it aborts the connection.
			_ = cmd.Process.Kill()
			b = []byte("no readiness report within " + fuseReadyTimeout.String())
		}
		e.report <- b
	}()
	log.Debug("early FUSE helper started", "pid", cmd.Process.Pid)
	return e
}

// detachedFUSEMount makes a FUSE mount on the connection fuse, read-only,
// nosuid, nodev, default_permissions, allow_other, owned by cred, not
// attached anywhere.
func detachedFUSEMount(fuse *os.File, fsname string, cred Credential) (*os.File, error) {
	fs, err := unix.Fsopen("fuse", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fsopen fuse: %w", err)
	}
	defer unix.Close(fs)
	for _, kv := range [][2]string{
		{"source", fsname}, {"subtype", "shifter-mount"}, {"fd", strconv.Itoa(int(fuse.Fd()))},
		{"rootmode", "40000"}, {"user_id", strconv.Itoa(int(cred.UID))}, {"group_id", strconv.Itoa(int(cred.GID))},
	} {
		if err := unix.FsconfigSetString(fs, kv[0], kv[1]); err != nil {
			return nil, fmt.Errorf("fsconfig %s: %w", kv[0], err)
		}
	}
	for _, flag := range []string{"default_permissions", "allow_other", "ro"} {
		if err := unix.FsconfigSetFlag(fs, flag); err != nil {
			return nil, fmt.Errorf("fsconfig %s: %w", flag, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return nil, fmt.Errorf("fsconfig create: %w", err)
	}
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return nil, fmt.Errorf("fsmount: %w", err)
	}
	return os.NewFile(uintptr(m), "fuse mount"), nil
}

// setMountReadahead sets the readahead window of the mount mnt (its
// backing device info in sysfs); best effort. The device number comes
// from the kernel's copy of the root's attributes: a GETATTR would wait
// for the helper.
func setMountReadahead(mnt *os.File) {
	var stx unix.Statx_t
	if unix.Statx(int(mnt.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, 0, &stx) != nil {
		return
	}
	setBDIReadahead(stx.Dev_major, stx.Dev_minor)
}

// failure returns the helper's error message when it reported one (or
// ended without a report), waiting for the report at most wait.
func (e *earlyFUSE) failure(wait time.Duration) string {
	select {
	case b := <-e.report:
		e.report <- b
		if reportedReady(b) {
			return ""
		}
		if len(b) == 0 {
			return "exited without reporting the mount (its error, if any, is above)"
		}
		return strings.TrimSpace(string(b))
	case <-time.After(wait):
		return ""
	}
}

// stop ends the helper (the container is gone: nothing is left to serve)
// and reaps it.
func (e *earlyFUSE) stop() {
	_ = e.cmd.Process.Kill()
	_ = e.cmd.Wait()
}

// attachFUSE attaches the detached FUSE mount mnt (made by Run) on target.
func attachFUSE(mnt *os.File, target string) error {
	if err := unix.MoveMount(int(mnt.Fd()), "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("%w: attaching the FUSE mount on %s: %v", ErrFUSE, target, err)
	}
	return nil
}
