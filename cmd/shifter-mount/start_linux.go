// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/fusefs"
)

// start runs the command: as the daemon child when started as one, in the
// foreground with -f, else by re-executing itself as a daemon and waiting
// for its report.
func start(cfg *config, args []string, stderr io.Writer) int {
	if cfg.cacheDir != "" && !cacheBuild {
		// A daemon's report pipe (fusefs.DaemonEnv) passes on as it is.
		err := execCacheBuild(args, -1)
		if !uncachedFallback(cfg, err, stderr) {
			fmt.Fprintf(stderr, "shifter-mount: %v\n", err)
			return 1
		}
	}
	report, err := fusefs.DaemonReport()
	if err != nil {
		fmt.Fprintf(stderr, "shifter-mount: %v\n", err)
		return 2
	}
	if report != nil {
		// The daemon: the command that started it reports readiness on
		// --ready-fd, which it did not pass on.
		cfg.readyFD = -1
		cfg.daemonHow = "re-exec"
		return serve(cfg, report, stderr)
	}
	if !checkReadyFD(cfg, stderr) {
		return 2
	}
	if cfg.foreground {
		return serve(cfg, nil, stderr)
	}
	return daemonize(cfg, args, stderr)
}

// daemonize re-executes the command as a daemon and returns once it
// reports the mount ready, or its error. The descriptors the arguments
// name (/dev/fd/N, /proc/self/fd/N) are passed on.
func daemonize(cfg *config, args []string, stderr io.Writer) int {
	var keep []int
	for _, p := range []string{cfg.image, cfg.mountpoint} {
		if n, ok := fdPath(p); ok {
			keep = append(keep, n)
		}
	}
	r, cmd, err := fusefs.StartDaemon(args, keep, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "shifter-mount: %v\n", err)
		return 1
	}
	return waitReport(cfg, nil, r, cmd.Wait, func() { cmd.Process.Release() }, stderr)
}

// checkReadyFD checks that --ready-fd names an open descriptor and keeps
// it from the daemon and any helper: whoever holds it reports readiness,
// and its closing must mean "done".
func checkReadyFD(cfg *config, stderr io.Writer) bool {
	if cfg.readyFD < 0 {
		return true
	}
	if _, err := unix.FcntlInt(uintptr(cfg.readyFD), unix.F_GETFD, 0); err != nil {
		fmt.Fprintf(stderr, "shifter-mount: --ready-fd %d: %v\n", cfg.readyFD, err)
		return false
	}
	unix.CloseOnExec(cfg.readyFD)
	return true
}

// waitReport reads the daemon's report on r, after the part of it read
// already. wait reaps a daemon that failed; release lets go of one that
// serves.
func waitReport(cfg *config, read []byte, r *os.File, wait func() error, release func(), stderr io.Writer) int {
	err := fusefs.WaitReport(r, read)
	r.Close()
	if err == nil {
		notifyReady(cfg.readyFD)
		release()
		return 0
	}
	werr := wait()
	if errors.Is(err, fusefs.ErrNoReport) {
		fmt.Fprintf(stderr, "shifter-mount: server ended before the mount was ready: %v\n", werr)
	} else {
		fmt.Fprintf(stderr, "shifter-mount: %v\n", err)
	}
	return 1
}

// waitEarlyChild is the parent's side of the early fork when its
// constructor did not finish it: the child, forked before the Go runtime
// started, mounts and serves; this process reports its outcome. read is
// the start of the report, which the constructor read.
func waitEarlyChild(cfg *config, fd, pid int, read []byte, stderr io.Writer) int {
	if !checkReadyFD(cfg, stderr) {
		closeFD(fd) // the child sees no reader and gives up
		return 2
	}
	wait := func() error {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("wait for server: %w", err)
			}
			return fmt.Errorf("server exited: status %d", ws.ExitStatus())
		}
	}
	return waitReport(cfg, read, os.NewFile(uintptr(fd), "report-pipe"), wait, func() {}, stderr)
}

// runEarlyChild is the child's side of the early fork. It serves only
// when the arguments ask for a daemon; otherwise the parent, which parsed
// the same arguments, reports and does the rest.
func runEarlyChild(args []string, fd int) int {
	cfg, err := parseArgs(args, io.Discard)
	if err != nil || cfg.foreground {
		closeFD(fd)
		return 0
	}
	if cfg.cacheDir != "" && !cacheBuild {
		err := execCacheBuild(args, fd)
		if !uncachedFallback(cfg, err, os.Stderr) {
			fusefs.NewReport(os.NewFile(uintptr(fd), "report-pipe")).Fail(err)
			return 1
		}
		unix.CloseOnExec(fd)
	}
	// --ready-fd is the parent's (the constructor closed it here).
	cfg.readyFD = -1
	cfg.daemonHow = "early-fork"
	return serve(cfg, fusefs.NewReport(os.NewFile(uintptr(fd), "report-pipe")), os.Stderr)
}

// uncachedFallback, after shifter-mount-cache could not be run (err),
// turns the cache off and says so when --cache-optional allows serving
// the image file uncached.
func uncachedFallback(cfg *config, err error, stderr io.Writer) bool {
	if !cfg.cacheOptional || (cfg.source != "" && cfg.imageID == "") {
		return false
	}
	fmt.Fprintf(stderr, "shifter-mount: warning: %v: serving the image file uncached\n", err)
	cfg.cacheDir, cfg.source = "", ""
	return true
}

func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// fdPath returns N for /dev/fd/N and /proc/self/fd/N.
func fdPath(p string) (int, bool) {
	for _, prefix := range []string{"/dev/fd/", "/proc/self/fd/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			n, err := strconv.Atoi(rest)
			return n, err == nil && n >= 0
		}
	}
	return 0, false
}

func notifyReady(fd int) {
	if fd < 0 {
		return
	}
	f := os.NewFile(uintptr(fd), "ready-fd")
	f.Write([]byte{'\n'})
	f.Close()
}
