// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// init turns the process into the namespace init when Run started it.
func init() {
	if len(os.Args) > 0 && strings.HasPrefix(os.Args[0], preinitArg0) {
		// As below; the descriptors come over a socket first.
		runtime.LockOSThread()
		os.Exit(preinitMain(strings.TrimPrefix(os.Args[0], preinitArg0)))
	}
	if len(os.Args) > 0 && os.Args[0] == initArg0 {
		// The command is forked from this thread, which carries the
		// dropped bounding set and no_new_privs: never leave it.
		runtime.LockOSThread()
		os.Exit(initMain(nil))
	}
}

// catchForwarded catches the signals the init forwards to the command,
// queued on the channel it returns until the command runs.
func catchForwarded() chan os.Signal {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwardedSignals...)
	return sigs
}

// initMain is the namespace init: it reads the config, builds the
// container, runs the command and reports. Its exit status does not
// matter: Run reads the status pipe.
func initMain(sigs chan os.Signal) int {
	// Run starts the init with real uid 0 (privileged) or as the user in a
	// user namespace. A real uid that differs from the effective one means
	// someone exec'd the setuid binary with our argv[0] by hand.
	if unix.Getuid() != unix.Geteuid() || unix.Getgid() != unix.Getegid() {
		fmt.Fprintln(os.Stderr, "shifter: internal entry point, not for direct use")
		return 126
	}
	markCloexecFrom(3)
	// Whatever the command leaves behind (background processes, daemons
	// that fork twice) stays below the init: the check for stragglers
	// starts from its children (killStragglers).
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	// Capabilities of the init (ambient ones in unprivileged mode) are
	// not for the processes it starts.
	_ = unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	if _, err := unix.FcntlInt(uintptr(fdStatus), unix.F_GETFD, 0); err != nil {
		fmt.Fprintln(os.Stderr, "shifter: internal entry point, not for direct use")
		return 126
	}
	log := &initLogger{w: os.NewFile(uintptr(fdStatus), "status"), start: time.Now()}
	var cfg initConfig
	cfgFile := os.NewFile(uintptr(fdConfig), "config")
	err := gob.NewDecoder(io.LimitReader(cfgFile, 64<<20)).Decode(&cfg)
	cfgFile.Close()
	if err != nil {
		log.fail(fmt.Errorf("%w: reading the container config: %v", ErrSetup, err))
		return 125
	}
	log.level = slog.Level(cfg.LogLevel)
	log.step("config read")
	watchLifeline(log)
	// Signals that arrive while the container is built wait for the
	// command. (The pre-forked init caught them while it waited: the
	// first Notify costs a millisecond, a thread and a goroutine.)
	if sigs == nil {
		sigs = catchForwarded()
	}
	code, err := container(&cfg, log, sigs)
	if err != nil {
		log.fail(err)
		return 125
	}
	log.step("exit status sent")
	log.exit(code)
	return code
}

// container builds the container and runs the command in it.
func container(cfg *initConfig, log *initLogger, sigs <-chan os.Signal) (int, error) {
	var image *os.File
	switch {
	case cfg.Mode == MountShared:
		// The reference is held until this process ends (the command
		// does not inherit it); the root is closed once bound.
		unix.CloseOnExec(fdSharedRoot)
		unix.CloseOnExec(fdSharedHold)
		image = os.NewFile(uintptr(fdSharedRoot), cfg.SharedPath)
		hold := os.NewFile(uintptr(fdSharedHold), "shifterd reference")
		defer runtime.KeepAlive(hold)
	case cfg.HasImage:
		image = os.NewFile(uintptr(fdImage), cfg.ImagePath)
	}
	unix.Umask(0o022)
	// The caller's file size limit (ulimit -f) would cut the files the
	// init writes; the command gets it back.
	restore, err := raiseFileSizeLimit(cfg.Unprivileged)
	if err != nil {
		return -1, fmt.Errorf("%w: %v", ErrSetup, err)
	}
	cfg.restoreLimits = restore
	capLast, err := capLastCap()
	if err != nil {
		return -1, fmt.Errorf("%w: %v", ErrSetup, err)
	}
	// Nothing mounted from here on propagates back to the host.
	if err := mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		if cfg.Unprivileged && errors.Is(err, unix.EPERM) {
			return -1, fmt.Errorf("%w: no privilege in the new user namespace (%v); a security module may deny it (e.g. Ubuntu's kernel.apparmor_restrict_unprivileged_userns=1)", ErrUserNS, err)
		}
		return -1, err
	}
	srcs, err := openSources(cfg)
	if err != nil {
		return -1, err
	}
	b := &builder{cfg: cfg, log: log, image: image, srcs: srcs}
	defer func() {
		if b.fuse != nil {
			stopFUSE(b.fuse)
			log.step("fuse helper reaped")
		}
	}()
	plan := planRoot(cfg, hostHas)
	err = b.run(plan)
	// The sources are bound (or no longer needed): no descriptor of a
	// host directory may stay open when the command starts.
	closeSources(srcs)
	if b.image != nil {
		b.image.Close()
	}
	if err != nil {
		return -1, err
	}
	r, fuse := b.root, b.fuse
	r.dir.Close()
	if err := enterRoot(r.path, log); err != nil {
		return -1, err
	}
	log.step("root entered")
	helper := cfg.EarlyHelperPID
	if fuse != nil {
		helper = fuse.Process.Pid
	}
	return runCommand(cfg, log, capLast, sigs, helper)
}

// raiseFileSizeLimit lifts RLIMIT_FSIZE for the init (to unlimited with
// CAP_SYS_RESOURCE, else the soft limit to the hard one; Run has checked
// that this is enough) and returns the function that puts the caller's
// limit back.
func raiseFileSizeLimit(unprivileged bool) (func() error, error) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &orig); err != nil {
		return nil, fmt.Errorf("reading the file size limit: %w", err)
	}
	raised := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if unprivileged || unix.Setrlimit(unix.RLIMIT_FSIZE, &raised) != nil {
		raised = unix.Rlimit{Cur: orig.Max, Max: orig.Max}
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &raised); err != nil {
			return nil, fmt.Errorf("raising the file size limit: %w", err)
		}
	}
	return func() error {
		if raised == orig {
			return nil
		}
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &orig); err != nil {
			return fmt.Errorf("restoring the file size limit: %w", err)
		}
		return nil
	}, nil
}

// capLastCap reads the highest capability number of the kernel.
func capLastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("reading cap_last_cap: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 255 {
		return 0, fmt.Errorf("bad cap_last_cap %q", b)
	}
	return n, nil
}

// markCloexecFrom sets close-on-exec on every descriptor from fd up.
func markCloexecFrom(fd int) {
	if err := unix.CloseRange(uint(fd), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return
	}
	// Before Linux 5.11.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n >= fd {
			unix.CloseOnExec(n)
		}
	}
}

// initLogger sends log records, errors and the exit status to Run.
type initLogger struct {
	mu    sync.Mutex
	w     io.Writer
	level slog.Level

	start time.Time // when the init began, for step
	last  time.Time // the previous step
}

// step logs, at debug level, that the init has done a step of building or
// tearing down the container: "at" is the time since the init began,
// "took" the time since the previous step (both in milliseconds).
func (l *initLogger) step(name string, kv ...string) {
	if slog.LevelDebug < l.level {
		return
	}
	now := time.Now()
	prev := l.last
	if prev.IsZero() {
		prev = l.start
	}
	l.last = now
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64) }
	l.debug("init step", append([]string{"step", name, "at_ms", ms(now.Sub(l.start)), "took_ms", ms(now.Sub(prev))}, kv...)...)
}

func (l *initLogger) send(m statusMsg) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = json.NewEncoder(l.w).Encode(m)
}

func (l *initLogger) log(level slog.Level, msg string, kv ...string) {
	if level < l.level {
		return
	}
	attrs := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		attrs[kv[i]] = kv[i+1]
	}
	l.send(statusMsg{Log: &logMsg{Level: int(level), Msg: msg, Attrs: attrs}})
}

func (l *initLogger) debug(msg string, kv ...string) { l.log(slog.LevelDebug, msg, kv...) }
func (l *initLogger) info(msg string, kv ...string)  { l.log(slog.LevelInfo, msg, kv...) }
func (l *initLogger) warn(msg string, kv ...string)  { l.log(slog.LevelWarn, msg, kv...) }
func (l *initLogger) error(msg string, kv ...string) { l.log(slog.LevelError, msg, kv...) }

func (l *initLogger) fail(err error) {
	l.send(statusMsg{Err: &errMsg{Kind: kindOf(err), Msg: err.Error()}})
}

func (l *initLogger) exit(code int) { l.send(statusMsg{Exit: &code}) }

// watchLifeline ends the container when Run's process has gone (the
// lifeline pipe's write end closed): whatever killed the runtime, the
// command, the processes it left in the background and the FUSE helper
// are killed, and the init exits, so the namespace, its mounts and the
// loop device go with it.
func watchLifeline(log *initLogger) {
	f := os.NewFile(uintptr(fdLifeline), "lifeline")
	go func() {
		var b [1]byte
		for {
			if _, err := f.Read(b[:]); err != nil {
				break
			}
		}
		killStragglers(log, 0)
		os.Exit(128 + int(unix.SIGKILL))
	}()
}
