// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/squashreader"
)

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
// report to the starting command in daemon mode, nil with -f. The process's
// part is here (logging, the collector, signals, the pid file, stdio);
// fusefs.Serve mounts and serves.
func serve(cfg *config, ready *fusefs.Report, stderr io.Writer) (code int) {
	level, _ := parseLevel(cfg.logLevel)
	logw := &switchWriter{w: stderr}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level}))
	step, logSteps := startupSteps(log)
	step("serving")
	// Collection: off until the mount is ready (the heap is a few MiB by
	// then: go-fuse's 1 MiB request buffers, the tables), and a cycle
	// started by those buffers, with its assists, lay on the path of
	// every mount. See gcAfterReady for what follows.
	gcPercent := debug.SetGCPercent(-1)
	heap := cfg.dataCacheMiB << 20 // what the server keeps on its heap: the block cache, and the node cache's part (below)
	gcOn := sync.OnceFunc(func() { gcAfterReady(gcPercent, heap) })
	defer gcOn()
	if cfg.daemonHow != "" {
		log.Debug("daemon", "started_by", cfg.daemonHow, "pid", os.Getpid())
	}

	// fail reports an error before the mount is ready.
	fail := func(err error) int {
		logSteps()
		if ready != nil {
			ready.Fail(err)
		} else if errors.Is(err, fusefs.ErrAborted) {
			// The runtime took the mount down before we served it (the
			// container failed first): its own error is the one to read.
			log.Debug("not serving", "err", err)
		} else {
			fmt.Fprintf(stderr, "shifter-mount: %v\n", err)
		}
		return 1
	}

	sigs, sigsCaught, held, stopSignals := catchSignals(cfg)
	defer stopSignals()

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

	if cfg.source != "" && cfg.imageID == "" {
		image = cfg.image // the image id
	}
	if cfg.cacheDir != "" {
		// The daemon works from / once mounted; the cache opens files
		// as it goes.
		if cfg.cacheDir, err = filepath.Abs(cfg.cacheDir); err != nil {
			return fail(fmt.Errorf("--cache-dir: %w", err))
		}
	}
	rd, closeImage, nc, err := openImage(image, cfg, log)
	if err != nil {
		return fail(err)
	}
	defer closeImage()
	heap += nc.heapBudget()
	if nc != nil && (cfg.stats || cfg.debug) {
		defer nc.logStats(log)
	}
	sigs = cacheSignals(sigs, nc, log)
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
	fsName := cfg.fsName
	if fsName == "" {
		fsName = image
		if nc != nil && cfg.source != "" {
			fsName = nc.src
		}
	}
	kra := cfg.kernelReadahead * 1024
	if cfg.kernelReadahead < 0 {
		kra = -1
	}
	var notBefore <-chan struct{}
	if !held {
		notBefore = sigsCaught
	}
	// reported: from here on the starter is told nothing more; errors
	// are logged.
	reported := false
	pidWritten := false
	defer func() {
		if pidWritten {
			os.Remove(cfg.pidFile)
		}
	}()
	isReady := func(mnt string) error {
		if cfg.pidFile != "" {
			if err := os.WriteFile(cfg.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
				return fmt.Errorf("write pid file: %w", err)
			}
			pidWritten = true
		}
		logSteps()
		reported = true
		if ready != nil {
			// Detach: stop using the starter's stderr and the terminal.
			if err := ready.Ready(); err != nil {
				// The command that started us is gone (killed while it
				// waited): nobody knows of this mount, so it goes.
				log.Error("report readiness: unmounting", "err", err)
				return err
			}
			if logFile != nil {
				logw.set(logFile)
			} else {
				logw.set(nil)
			}
			if err := fusefs.DetachStdio(); err != nil {
				log.Warn("detach from the terminal", "err", err)
			}
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
		return nil
	}
	err = fusefs.Serve(context.Background(), rd, cfg.mountpoint, &fusefs.ServeOptions{
		FS: &fusefs.Options{
			EntryTimeout:    nonZero(cfg.entryTimeout),
			AttrTimeout:     nonZero(cfg.attrTimeout),
			NegativeTimeout: nonZero(cfg.negativeTimeout),
			InodeCacheSize:  cfg.inodeCache,
		},
		Mount: &fusefs.MountOptions{
			FsName:          fsName,
			Subtype:         cfg.subtype,
			AllowOther:      cfg.allowOther,
			MaxRead:         cfg.maxReadKiB * 1024,
			KernelReadahead: kra,
			MaxBackground:   cfg.maxBackground,
			NoReaddirPlus:   cfg.noReaddirPlus,
			Options:         cfg.extraOpts,
			Debug:           cfg.debug,
			ServeOnly:       true,
		},
		Name:             image,
		Logger:           log,
		NotBefore:        notBefore,
		Ready:            isReady,
		Signals:          sigs,
		Stats:            cfg.stats || cfg.debug,
		PrefetchMetadata: cfg.prefetchMetaMiB << 20,
		Step:             step,
	})
	switch {
	case err == nil:
		return 0
	case !reported:
		return fail(err)
	default:
		return 1 // logged by fusefs.Serve or isReady
	}
}

// startupSteps returns step, which times the start-up steps from main at
// debug level, and logSteps, which logs them. They are logged in one go,
// off the steps, so that the first log lines (slog's first formatting,
// its page faults) do not count in the steps they follow.
func startupSteps(log *slog.Logger) (step func(string), logSteps func()) {
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
	step = func(name string) {
		if debugSteps {
			stamps = append(stamps, stamp{name, time.Now()})
		}
	}
	last := origin
	logSteps = func() {
		for _, s := range stamps {
			log.Debug("start-up step", "step", s.name, "at", s.at.Sub(origin), "took", s.at.Sub(last))
			last = s.at
		}
		stamps = stamps[:0]
	}
	return step, logSteps
}

// catchSignals has the signals that end or query the server delivered on
// sigs. No signal may end the server between mounting and unmounting: they
// are caught before the mount exists. The first Notify costs 0.3-0.7 ms
// here (it starts the runtime's signal thread and hands it each signal in
// turn), so it runs on its own goroutine, and caught is closed once it is
// done. The early child (cgo) holds the signals meanwhile (holdSignals,
// held true) and need not wait for it; other ways mount only once caught
// is closed. stop ends the delivery.
func catchSignals(cfg *config) (sigs <-chan os.Signal, caught <-chan struct{}, held bool, stop func()) {
	which := []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1}
	held = cfg.daemonHow == "early-fork" && holdSignals(which)
	ch := make(chan os.Signal, 2*len(which))
	done := make(chan struct{})
	go func() {
		if cfg.notifyDelay > 0 {
			time.Sleep(cfg.notifyDelay) // tests: a signal that comes before Notify
		}
		signal.Notify(ch, which...)
		if held {
			for _, s := range takeHeld(which) {
				ch <- s
			}
		}
		close(done)
	}()
	stop = func() {
		<-done
		signal.Stop(ch)
	}
	return ch, done, held, stop
}

// gcSettleDelay is how long after readiness the collector runs only at
// the memory limit.
var gcSettleDelay = time.Second

// gcAfterReady sets the collector for serving. The heap is then mostly
// the caches (heap bytes: the block cache, and with --cache-dir the node
// cache's memory tier and badger's), pointer-free buffers that are cheap to mark: collect
// at 25% growth instead of 100% and the server's footprint stays near the
// cache size. But a first cycle at 25% of a 2 MiB heap comes with the
// first requests (the stat that follows a mount): for the first second
// the collector stays off unless memory reaches a limit of twice the
// caches (48 MiB by default, about 130 MiB with the node cache), then 25% takes over with that limit
// kept: readahead buffers and request buffers come on top of the cache,
// and the limit keeps the server's peak near 50 MiB (issue 15's budget
// is 64 MiB) at the cost of more frequent cycles when it is reached.
// GOGC or GOMEMLIMIT, when set, are left to do what they say.
func gcAfterReady(gcPercent int, heap int64) {
	if os.Getenv("GOGC") != "" {
		debug.SetGCPercent(gcPercent)
		return
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		debug.SetGCPercent(25)
		return
	}
	debug.SetMemoryLimit(max(2*heap, 32<<20))
	time.AfterFunc(gcSettleDelay, func() { debug.SetGCPercent(25) })
}

// nonZero maps a timeout of 0 on the command line (no caching) to what
// fusefs takes for it.
func nonZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1 // fusefs: negative means no caching, 0 means default
	}
	return d
}

// openImage opens the squashfs image, at cfg.offset bytes into the file
// (or into the image the node cache serves, with --cache-dir), and
// returns it with the function that closes it and the cache (nil when
// the image is read without one).
func openImage(image string, cfg *config, log *slog.Logger) (*squashreader.Reader, func(), *nodeCache, error) {
	opts := &squashreader.Options{
		MetadataCacheSize: cfg.metadataCache,
		DataCacheSize:     cfg.dataCacheMiB << 20,
		Readahead:         cfg.readahead,
		Logger:            log,
	}
	var (
		ra      io.ReaderAt
		size    int64
		nc      *nodeCache
		closeRA func()
	)
	if cfg.cacheDir != "" {
		var err error
		ra, size, nc, closeRA, err = openCached(image, cfg, log)
		if err != nil {
			return nil, nil, nil, err
		}
	}
	if ra == nil && cfg.offset == 0 {
		r, err := squashreader.OpenFile(image, opts)
		if err != nil {
			return nil, nil, nil, err
		}
		return r, func() { r.Close() }, nil, nil
	}
	if ra == nil {
		f, err := os.Open(image)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("open image: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, nil, nil, fmt.Errorf("stat image: %w", err)
		}
		ra, size, closeRA = f, st.Size(), func() { f.Close() }
	}
	if cfg.offset >= size && cfg.offset > 0 {
		closeRA()
		return nil, nil, nil, fmt.Errorf("image %s: offset %d is past its end (%d bytes)", image, cfg.offset, size)
	}
	size -= cfg.offset
	r, err := squashreader.Open(io.NewSectionReader(ra, cfg.offset, size), size, opts)
	if err != nil {
		closeRA()
		if cfg.offset == 0 {
			return nil, nil, nil, fmt.Errorf("open image %s: %w", image, err)
		}
		return nil, nil, nil, fmt.Errorf("open image %s at offset %d: %w", image, cfg.offset, err)
	}
	return r, func() { r.Close(); closeRA() }, nc, nil
}

// cacheSignals passes sigs on, logging the node cache's counters on
// SIGUSR1 (fusefs.Serve logs the request counts).
func cacheSignals(sigs <-chan os.Signal, nc *nodeCache, log *slog.Logger) <-chan os.Signal {
	if nc == nil {
		return sigs
	}
	out := make(chan os.Signal, cap(sigs))
	go func() {
		for s := range sigs {
			if s == unix.SIGUSR1 {
				nc.logStats(log)
			}
			out <- s
		}
	}()
	return out
}
