// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fuseReadyTimeout bounds the wait for shifter-mount to report the mount.
const fuseReadyTimeout = 60 * time.Second

// startFUSE starts the shifter-mount helper, as a child of the namespace
// init, serving image on target; it returns once the mount is ready. The
// helper is in a process group of its own (a ^C on the terminal is for the
// command, not for the server) and dies with the init (Pdeathsig); the
// init kills it when the command has ended.
//
// The init opens /dev/fuse and mounts the file system itself (ro, nosuid,
// nodev, default_permissions; allow_other when privileged, so that the
// overlay, mounted by root, can read it), and hands the connection to the
// helper as /dev/fd/N: the helper, which parses the untrusted image, then
// runs as the user, without privilege. Only when the user may not read the
// image file (a root-only image store) does a privileged init run the
// helper as root, mounting by itself.
func startFUSE(cfg *initConfig, log *initLogger, image *os.File, target string) (*exec.Cmd, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: creating pipe: %v", ErrSetup, err)
	}
	defer readyR.Close()
	defer readyW.Close()
	fsname := cfg.ImagePath
	if fsname == "" {
		fsname = "shifter-image"
	}
	asUserHelper := cfg.Unprivileged || readableBy(image, cfg.Cred)
	cmd, args := helperCommand(cfg, slog.Level(log.level), asUserHelper, readyW, image, fsname)
	if asUserHelper {
		fuse, err := os.OpenFile("/dev/fuse", os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: opening /dev/fuse: %v", ErrFUSE, err)
		}
		defer fuse.Close()
		uid, gid := os.Geteuid(), os.Getegid()
		data := "default_permissions"
		if !cfg.Unprivileged {
			uid, gid = int(cfg.Cred.UID), int(cfg.Cred.GID)
			data += ",allow_other"
		}
		data = fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,%s", fuse.Fd(), uid, gid, data)
		if err := mount(fsname, target, "fuse.shifter-mount", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrFUSE, err)
		}
		log.step("fuse mounted", "helper_as_user", "true")
		cmd.ExtraFiles = append(cmd.ExtraFiles, fuse) // 5
		args = append(args, "--kernel-readahead-kb=-1", "/proc/self/fd/4", "/dev/fd/5")
	} else {
		args = append(args, "-o", "allow_other", "/proc/self/fd/4", target)
	}
	cmd.Args = args
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: starting %s: %v", ErrFUSE, cfg.MountHelper, err)
	}
	readyW.Close()
	log.step("fuse helper spawned", "pid", strconv.Itoa(cmd.Process.Pid))

	b, _ := readReport(readyR)
	if !reportedReady(b) {
		_ = cmd.Process.Kill()
		werr := cmd.Wait()
		msg := string(b)
		if msg == "" {
			msg = "no readiness report"
		}
		return nil, fmt.Errorf("%w: %s %s: %s (%v)", ErrFUSE, cfg.MountHelper, strconv.Quote(fsname), msg, werr)
	}
	log.step("fuse helper ready")
	if asUserHelper && !cfg.Unprivileged {
		setReadahead(target)
		log.step("fuse readahead set")
	}
	return cmd, nil
}

// helperCommand returns the shifter-mount command (without its last
// arguments: the image and the mount point) that serves image for cfg:
// in a process group of its own, dying with its parent's thread, as the
// user when asUser and privileged, the ready pipe as fd 3 and the image
// as fd 4 (a connection to /dev/fuse goes to ExtraFiles after them).
func helperCommand(cfg *initConfig, level slog.Level, asUser bool, readyW, image *os.File, fsname string) (*exec.Cmd, []string) {
	cmd := &exec.Cmd{
		Path:   cfg.MountHelper,
		Env:    initEnv,
		Stdout: os.Stderr,
		Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: unix.SIGKILL,
		},
		ExtraFiles: []*os.File{readyW, image}, // 3, 4
	}
	helperLevel := "error"
	if slog.LevelDebug >= level {
		// Its start-up steps, timed (shifter -v).
		helperLevel = "debug"
	}
	args := []string{cfg.MountHelper, "-f", "--ready-fd=3", "--log-level=" + helperLevel, "--fsname=" + fsname}
	if !asUser || (!cfg.Unprivileged && cfg.Cred.UID == 0) {
		// The node cache's options, for a helper that runs as root only:
		// the cache directory is root's.
		args = append(args, cfg.MountHelperArgs...)
	}
	if asUser && !cfg.Unprivileged {
		groups := cfg.Cred.Groups
		if groups == nil {
			groups = []uint32{}
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: cfg.Cred.UID, Gid: cfg.Cred.GID, Groups: groups}
	}
	return cmd, args
}

// readReport reads the helper's readiness report from r: one byte ('\n'
// or 0) once the mount is served, or its error message; nil when the
// helper closed r without a word. timedOut: nothing came within
// fuseReadyTimeout.
func readReport(r io.Reader) (b []byte, timedOut bool) {
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 4096))
		got <- b
	}()
	select {
	case b = <-got:
		return b, false
	case <-time.After(fuseReadyTimeout):
		return nil, true
	}
}

// reportedReady reports whether b says the mount is served.
func reportedReady(b []byte) bool { return len(b) > 0 && (b[0] == '\n' || b[0] == 0) }

// readableBy reports whether the user may open the image file for reading
// (through its descriptor, as the helper will).
func readableBy(image *os.File, cred Credential) bool {
	return asUser(cred, true, func() error {
		fd, err := unix.Open(fmt.Sprintf("/proc/thread-self/fd/%d", image.Fd()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}) == nil
}

// fuseReadaheadKiB is the kernel readahead window set on a FUSE mount
// whose helper runs without the privilege to set it (what shifter-mount
// sets as root by default).
const fuseReadaheadKiB = 1024

// setReadahead raises the readahead of the mount at target (its backing
// device info in sysfs); best effort.
func setReadahead(target string) {
	var st unix.Stat_t
	if unix.Stat(target, &st) != nil {
		return
	}
	setBDIReadahead(unix.Major(st.Dev), unix.Minor(st.Dev))
}

// setBDIReadahead sets the readahead of the backing device info of the
// file system whose device number is major:minor; best effort.
func setBDIReadahead(major, minor uint32) {
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", major, minor)
	_ = os.WriteFile(p, []byte(strconv.Itoa(fuseReadaheadKiB)), 0)
}

// stopFUSE ends the helper. The command is gone, and with the namespace
// gone too the mount has no user left: SIGKILL ends the FUSE session (the
// kernel aborts the connection when the helper's /dev/fuse closes).
func stopFUSE(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}
