// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/squashreader"
)

// envReadyPipe names, in the re-executed daemon, the file descriptor of
// the pipe on which it reports to the command that started it: one zero
// byte once mounted, or an error message.
const envReadyPipe = "_SHIFTER_MOUNT_READY_PIPE"

// start runs the command: as the daemon child when started as one, in the
// foreground with -f, else by re-executing itself as a daemon and waiting
// for its report.
func start(cfg *config, args []string, stderr io.Writer) int {
	if v, ok := os.LookupEnv(envReadyPipe); ok {
		// The daemon: the command that started it reports readiness on
		// --ready-fd, which it did not pass on.
		os.Unsetenv(envReadyPipe)
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 3 {
			fmt.Fprintf(stderr, "shifter-mount: bad %s=%q\n", envReadyPipe, v)
			return 2
		}
		unix.CloseOnExec(fd)
		cfg.readyFD = -1
		cfg.daemonHow = "re-exec"
		return serve(cfg, os.NewFile(uintptr(fd), "ready-pipe"), stderr)
	}
	if !checkReadyFD(cfg, stderr) {
		return 2
	}
	if cfg.foreground {
		return serve(cfg, nil, stderr)
	}
	return daemonize(cfg, args, stderr)
}

// daemonize re-executes the command in a new session (so that a SIGINT to
// the terminal's process group does not reach it) and returns once it
// reports the mount ready, or its error.
func daemonize(cfg *config, args []string, stderr io.Writer) int {
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "shifter-mount: create pipe: %v\n", err)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	// Descriptors leaked to us stay out of the daemon: mark every one
	// close-on-exec, then pass explicitly the pipe and the descriptors the
	// arguments name (/dev/fd/N, /proc/self/fd/N), at their numbers.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintf(stderr, "shifter-mount: warning: close_range: %v\n", err)
	}
	keep := map[int]bool{}
	for _, p := range []string{cfg.image, cfg.mountpoint} {
		if n, ok := fdPath(p); ok && n >= 3 {
			keep[n] = true
		}
	}
	pipeFD := 3
	for keep[pipeFD] {
		pipeFD++
	}
	last := pipeFD
	for n := range keep {
		last = max(last, n)
	}
	extra := make([]*os.File, last-2)
	extra[pipeFD-3] = w
	for n := range keep {
		extra[n-3] = os.NewFile(uintptr(n), "inherited-"+strconv.Itoa(n))
	}
	cmd := exec.Command(exe, args...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), envReadyPipe+"="+strconv.Itoa(pipeFD))
	cmd.ExtraFiles = extra
	cmd.Stderr = stderr // logs before the mount is ready
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "shifter-mount: start server: %v\n", err)
		return 1
	}
	w.Close()
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
// already: one zero byte once it is mounted, or an error message. wait
// reaps a daemon that failed; release lets go of one that serves.
func waitReport(cfg *config, read []byte, r *os.File, wait func() error, release func(), stderr io.Writer) int {
	rest, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	r.Close()
	msg := append(read, rest...)
	if len(msg) > 0 && msg[0] == 0 {
		notifyReady(cfg.readyFD)
		release()
		return 0
	}
	werr := wait()
	if len(msg) > 0 {
		fmt.Fprintf(stderr, "shifter-mount: %s\n", msg)
	} else {
		fmt.Fprintf(stderr, "shifter-mount: server ended before the mount was ready: %v\n", werr)
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
	// --ready-fd is the parent's (the constructor closed it here).
	cfg.readyFD = -1
	cfg.daemonHow = "early-fork"
	return serve(cfg, os.NewFile(uintptr(fd), "report-pipe"), os.Stderr)
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

// switchWriter is the log destination, changed once the daemon is ready.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return len(p), nil
	}
	return s.w.Write(p)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

// serve mounts and serves the image until it is unmounted. ready is the
// pipe to the starting command in daemon mode, nil with -f.
func serve(cfg *config, ready *os.File, stderr io.Writer) (code int) {
	level, _ := parseLevel(cfg.logLevel)
	logw := &switchWriter{w: stderr}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level}))
	// step times the start-up steps from main, at debug level; logSteps
	// logs them. They are logged in one go, off the steps, so that the
	// first log lines (slog's first formatting, its page faults) do not
	// count in the steps they follow.
	origin := mainStart
	if origin.IsZero() {
		origin = time.Now() // run called without main (tests)
	}
	type stamp struct {
		name string
		at   time.Time
	}
	var stamps []stamp
	debugSteps := log.Enabled(context.Background(), slog.LevelDebug)
	step := func(name string) {
		if debugSteps {
			stamps = append(stamps, stamp{name, time.Now()})
		}
	}
	last := origin
	logSteps := func() {
		for _, s := range stamps {
			log.Debug("start-up step", "step", s.name, "at", s.at.Sub(origin), "took", s.at.Sub(last))
			last = s.at
		}
		stamps = stamps[:0]
	}
	step("serving")
	// Collection: off until the mount is ready (the heap is a few MiB by
	// then: go-fuse's 1 MiB request buffers, the tables), and a cycle
	// started by those buffers, with its assists, lay on the path of
	// every mount. See gcAfterReady for what follows.
	gcPercent := debug.SetGCPercent(-1)
	gcOn := sync.OnceFunc(func() { gcAfterReady(gcPercent, cfg.dataCacheMiB<<20) })
	defer gcOn()
	if cfg.daemonHow != "" {
		log.Debug("daemon", "started_by", cfg.daemonHow, "pid", os.Getpid())
	}

	// fail reports an error before the mount is ready.
	fail := func(err error) int {
		logSteps()
		if ready != nil {
			fmt.Fprint(ready, err.Error())
			ready.Close()
		} else {
			fmt.Fprintf(stderr, "shifter-mount: %v\n", err)
		}
		return 1
	}

	// No signal may end the server between mounting and unmounting: they
	// are caught before the mount exists. The first Notify costs 0.3-0.7
	// ms here (it starts the runtime's signal thread and hands it each
	// signal in turn), so it runs on its own goroutine. The early child
	// (cgo) holds the signals meanwhile (holdSignals) and does not wait
	// for it; other ways wait before mounting.
	caught := []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1}
	held := cfg.daemonHow == "early-fork" && holdSignals(caught)
	sigs := make(chan os.Signal, 2*len(caught))
	sigsCaught := make(chan struct{})
	go func() {
		if d, err := time.ParseDuration(os.Getenv("_SHIFTER_MOUNT_TEST_NOTIFY_DELAY")); err == nil {
			time.Sleep(d) // tests: a signal that comes before Notify
		}
		signal.Notify(sigs, caught...)
		if held {
			for _, s := range takeHeld(caught) {
				sigs <- s
			}
		}
		close(sigsCaught)
	}()
	defer func() {
		<-sigsCaught
		signal.Stop(sigs)
	}()

	image, err := filepath.Abs(cfg.image)
	if err != nil {
		return fail(fmt.Errorf("image %s: %w", cfg.image, err))
	}
	var logFile *os.File
	if ready != nil && cfg.logFile != "" {
		logFile, err = os.OpenFile(cfg.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o640)
		if err != nil {
			return fail(fmt.Errorf("open log file: %w", err))
		}
		defer logFile.Close()
	}

	rd, closeImage, err := openImage(image, cfg, log)
	if err != nil {
		return fail(err)
	}
	defer closeImage()
	step("image opened")
	if cfg.cpuProf != "" {
		pf, err := os.Create(cfg.cpuProf)
		if err != nil {
			return fail(fmt.Errorf("create cpu profile: %w", err))
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return fail(fmt.Errorf("start cpu profile: %w", err))
		}
		defer func() {
			pprof.StopCPUProfile()
			pf.Close()
		}()
	}
	fsys, err := fusefs.New(rd, &fusefs.Options{
		EntryTimeout:    nonZero(cfg.entryTimeout),
		AttrTimeout:     nonZero(cfg.attrTimeout),
		NegativeTimeout: nonZero(cfg.negativeTimeout),
		InodeCacheSize:  cfg.inodeCache,
		Logger:          log,
	})
	if err != nil {
		return fail(fmt.Errorf("image %s: %w", image, err))
	}
	step("file system built")
	fsName := cfg.fsName
	if fsName == "" {
		fsName = image
	}
	kra := cfg.kernelReadahead * 1024
	if cfg.kernelReadahead < 0 {
		kra = -1
	}
	if !held {
		<-sigsCaught
	}
	srv, err := fusefs.Mount(cfg.mountpoint, fsys, &fusefs.MountOptions{
		FsName:          fsName,
		Subtype:         cfg.subtype,
		AllowOther:      cfg.allowOther,
		MaxRead:         cfg.maxReadKiB * 1024,
		KernelReadahead: kra,
		MaxBackground:   cfg.maxBackground,
		NoReaddirPlus:   cfg.noReaddirPlus,
		Options:         cfg.extraOpts,
		Debug:           cfg.debug,
		Logger:          log,
		ServeOnly:       true,
	})
	if err != nil {
		return fail(err)
	}
	mnt := srv.Mountpoint()
	step("mounted (FUSE INIT answered)")
	if cfg.pidFile != "" {
		if err := os.WriteFile(cfg.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			srv.Unmount()
			return fail(fmt.Errorf("write pid file: %w", err))
		}
		defer os.Remove(cfg.pidFile)
	}
	logSteps()
	if ready != nil {
		// Detach: stop using the starter's stderr and the terminal.
		if _, err := ready.Write([]byte{0}); err != nil {
			// The command that started us is gone (killed while it
			// waited): nobody knows of this mount, so it goes.
			ready.Close()
			log.Error("report readiness: unmounting", "err", err)
			if uerr := srv.UnmountLazy(); uerr != nil {
				log.Error("unmount", "mountpoint", mnt, "err", uerr)
			}
			return 1
		}
		ready.Close()
		if logFile != nil {
			logw.set(logFile)
		} else {
			logw.set(nil)
		}
		detachStdio(log)
		if err := os.Chdir("/"); err != nil {
			log.Warn("chdir /", "err", err)
		}
	} else {
		notifyReady(cfg.readyFD)
	}
	step("readiness reported")
	logSteps()
	gcOn()
	log.Info("mounted", "image", image, "mountpoint", mnt, "pid", os.Getpid())

	lazy := false
	for {
		select {
		case <-srv.Done():
			log.Info("unmounted", "mountpoint", mnt)
			if cfg.stats || cfg.debug {
				logStats(log, fsys, rd)
			}
			return 0
		case sig := <-sigs:
			if sig == unix.SIGUSR1 {
				logStats(log, fsys, rd)
				continue
			}
			if lazy {
				log.Warn("second signal while detached: exiting, open files will fail", "signal", sig.String())
				return 1
			}
			log.Info("unmounting", "signal", sig.String(), "mountpoint", mnt)
			err := srv.Unmount()
			if errors.Is(err, fusefs.ErrBusy) {
				log.Warn("mount busy: detaching it, serving open files until they are closed", "mountpoint", mnt)
				err = srv.UnmountLazy()
				lazy = true
			}
			if err != nil {
				log.Error("unmount", "mountpoint", mnt, "err", err)
				return 1
			}
		}
	}
}

// gcSettleDelay is how long after readiness the collector runs only at
// the memory limit.
var gcSettleDelay = time.Second

// gcAfterReady sets the collector for serving. The heap is then mostly
// the block cache, pointer-free buffers that are cheap to mark: collect
// at 25% growth instead of 100% and the server's footprint stays near the
// cache size. But a first cycle at 25% of a 2 MiB heap comes with the
// first requests (the stat that follows a mount): for the first second
// the collector stays off unless memory reaches a limit of twice the
// data cache (64 MiB at least), then 25% takes over. GOGC or GOMEMLIMIT,
// when set, are left to do what they say.
func gcAfterReady(gcPercent int, dataCache int64) {
	if os.Getenv("GOGC") != "" {
		debug.SetGCPercent(gcPercent)
		return
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		debug.SetGCPercent(25)
		return
	}
	debug.SetMemoryLimit(max(2*dataCache, 64<<20))
	time.AfterFunc(gcSettleDelay, func() {
		debug.SetGCPercent(25)
		debug.SetMemoryLimit(math.MaxInt64)
	})
}

// nonZero maps a timeout of 0 on the command line (no caching) to what
// fusefs takes for it.
func nonZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1 // fusefs: negative means no caching, 0 means default
	}
	return d
}

func logStats(log *slog.Logger, fsys *fusefs.FS, rd *squashreader.Reader) {
	st := fsys.Stats()
	attrs := []any{"total", st.Total()}
	for k, v := range st {
		attrs = append(attrs, k, v)
	}
	log.Info("requests served", attrs...)
	rs := rd.ReadStats()
	log.Info("blocks decompressed", "on_demand", rs.OnDemand, "read_ahead", rs.ReadAhead, "waited", rs.Waited)
}

// detachStdio points fds 0, 1 and 2 at /dev/null so that the daemon holds
// no pipe or terminal of the process that started it.
func detachStdio(log *slog.Logger) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		log.Warn("open /dev/null", "err", err)
		return
	}
	defer null.Close()
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(int(null.Fd()), fd, 0); err != nil {
			log.Warn("redirect stdio", "fd", fd, "err", err)
		}
	}
}

// openImage opens the squashfs image, at cfg.offset bytes into the file,
// and returns it with the function that closes it.
func openImage(image string, cfg *config, log *slog.Logger) (*squashreader.Reader, func(), error) {
	opts := &squashreader.Options{
		MetadataCacheSize: cfg.metadataCache,
		DataCacheSize:     cfg.dataCacheMiB << 20,
		Readahead:         cfg.readahead,
		Logger:            log,
	}
	if cfg.offset == 0 {
		r, err := squashreader.OpenFile(image, opts)
		if err != nil {
			return nil, nil, err
		}
		return r, func() { r.Close() }, nil
	}
	f, err := os.Open(image)
	if err != nil {
		return nil, nil, fmt.Errorf("open image: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat image: %w", err)
	}
	if cfg.offset >= st.Size() {
		f.Close()
		return nil, nil, fmt.Errorf("image %s: offset %d is past its end (%d bytes)", image, cfg.offset, st.Size())
	}
	size := st.Size() - cfg.offset
	r, err := squashreader.Open(io.NewSectionReader(f, cfg.offset, size), size, opts)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open image %s at offset %d: %w", image, cfg.offset, err)
	}
	return r, func() { r.Close(); f.Close() }, nil
}
