// SPDX-License-Identifier: BSD-3-Clause

package fusefs_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/squashreader"
)

// waitLog waits until the log holds n lines containing want.
func waitLog(t *testing.T, b *lockedBuffer, want string, n int) {
	t.Helper()
	for i := 0; strings.Count(b.String(), want) < n; i++ {
		if i == 500 {
			t.Fatalf("log lacks %d lines with %q:\n%s", n, want, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// served is a Serve call running on its own goroutine.
type served struct {
	mnt     string
	signals chan os.Signal
	ready   chan string
	done    chan error
	log     *lockedBuffer

	mu    sync.Mutex
	steps []string // Step's names
}

// stepsSoFar returns the steps Serve reported so far.
func (s *served) stepsSoFar() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.steps)
}

// startServe serves a small image (/hello: "hello\n") with Serve on mnt,
// a new temporary directory when "". opts may be nil; its Logger, Signals, Ready and
// Step are set here (a non-nil opts.Ready is called first).
func startServe(t *testing.T, ctx context.Context, mnt string, opts *fusefs.ServeOptions) *served {
	t.Helper()
	testutil.RequireFUSE(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := squashreader.OpenFile(sqtest.Build(t, src, "-comp", "gzip"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if mnt == "" {
		mnt = t.TempDir()
	}
	s := &served{
		mnt:     mnt,
		signals: make(chan os.Signal, 1),
		ready:   make(chan string, 1),
		done:    make(chan error, 1),
		log:     &lockedBuffer{},
	}
	var o fusefs.ServeOptions
	if opts != nil {
		o = *opts
	}
	userReady := o.Ready
	o.Logger = slog.New(slog.NewTextHandler(s.log, nil))
	o.Signals = s.signals
	o.Step = func(name string) {
		s.mu.Lock()
		s.steps = append(s.steps, name)
		s.mu.Unlock()
	}
	o.Ready = func(mnt string) error {
		if userReady != nil {
			if err := userReady(mnt); err != nil {
				return err
			}
		}
		s.ready <- mnt
		return nil
	}
	go func() { s.done <- fusefs.Serve(ctx, r, s.mnt, &o) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Errorf("Serve still running at the end of the test\n%s", s.log.String())
			return
		}
		r.Close()
	})
	return s
}

// waitReady waits for Ready and checks that the mount serves the image.
func (s *served) waitReady(t *testing.T) {
	t.Helper()
	select {
	case mnt := <-s.ready:
		if mnt != s.mnt {
			t.Errorf("Ready(%q), want the mount point %q", mnt, s.mnt)
		}
	case err := <-s.done:
		s.done <- err
		t.Fatalf("Serve = %v before Ready\n%s", err, s.log.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("Ready not called after 10 s\n%s", s.log.String())
	}
	if !mounted(t, s.mnt) {
		t.Fatal("Ready called, but nothing is mounted")
	}
	if b, err := os.ReadFile(filepath.Join(s.mnt, "hello")); err != nil || string(b) != "hello\n" {
		t.Fatalf("read through the mount = %q, %v", b, err)
	}
}

// wait waits for Serve to return.
func (s *served) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("Serve still running after 10 s\n%s", s.log.String())
		return nil
	}
}

// running fails the test if Serve returned.
func (s *served) running(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		t.Fatalf("Serve returned %v, want it serving\n%s", err, s.log.String())
	case <-time.After(50 * time.Millisecond):
	}
}

// TestServe: Serve builds and mounts, reports the steps and readiness,
// logs the request counts on SIGUSR1 and, with Stats, when it ends; any
// other signal unmounts and Serve returns nil.
func TestServe(t *testing.T) {
	s := startServe(t, context.Background(), "", &fusefs.ServeOptions{Stats: true})
	s.waitReady(t)
	if want := []string{"file system built", "mounted (FUSE INIT answered)"}; !slices.Equal(s.stepsSoFar(), want) {
		t.Errorf("steps %q, want %q", s.stepsSoFar(), want)
	}
	s.signals <- syscall.SIGUSR1
	waitLog(t, s.log, `msg="requests served"`, 1)
	if !strings.Contains(s.log.String(), "READ=") {
		t.Errorf("request counts lack the READ of /hello:\n%s", s.log.String())
	}
	s.running(t)
	s.signals <- syscall.SIGTERM
	if err := s.wait(t); err != nil {
		t.Fatalf("Serve after SIGTERM = %v\n%s", err, s.log.String())
	}
	if mounted(t, s.mnt) {
		t.Error("still mounted after Serve returned")
	}
	log := s.log.String()
	for _, want := range []string{`msg=unmounting signal=terminated`, `msg=unmounted`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Count(log, `msg="requests served"`) != 2 {
		t.Errorf("want request counts on SIGUSR1 and at the end (Stats):\n%s", log)
	}
}

// TestServeBusy: a signal while a file is open detaches the mount; the
// file still reads and Serve returns nil once it is closed, or
// ErrAbandoned on another signal.
func TestServeBusy(t *testing.T) {
	for _, second := range []bool{false, true} {
		name := map[bool]string{false: "last close", true: "second signal"}[second]
		t.Run(name, func(t *testing.T) {
			s := startServe(t, context.Background(), "", nil)
			s.waitReady(t)
			f, err := os.Open(filepath.Join(s.mnt, "hello"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s.signals <- syscall.SIGINT
			waitLog(t, s.log, "mount busy: detaching it", 1)
			if mounted(t, s.mnt) {
				t.Fatal("busy mount not detached")
			}
			b := make([]byte, 6)
			if n, err := f.ReadAt(b, 0); err != nil || string(b[:n]) != "hello\n" {
				t.Errorf("read of a file open across the detach = %q, %v", b[:n], err)
			}
			s.running(t)
			if second {
				s.signals <- syscall.SIGTERM
				if err := s.wait(t); !errors.Is(err, fusefs.ErrAbandoned) {
					t.Errorf("Serve after a second signal = %v, want ErrAbandoned", err)
				}
				return
			}
			f.Close()
			if err := s.wait(t); err != nil {
				t.Errorf("Serve after the last close = %v", err)
			}
		})
	}
}

// TestServeContext: the end of ctx unmounts as a signal does; while
// NotBefore holds the mount, it ends Serve with ctx's error and nothing
// mounted.
func TestServeContext(t *testing.T) {
	t.Run("serving", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := startServe(t, ctx, "", nil)
		s.waitReady(t)
		cancel()
		if err := s.wait(t); err != nil {
			t.Fatalf("Serve after cancel = %v", err)
		}
		if mounted(t, s.mnt) {
			t.Error("still mounted after Serve returned")
		}
		if !strings.Contains(s.log.String(), `msg=unmounting cause="context canceled"`) {
			t.Errorf("log lacks the cause:\n%s", s.log.String())
		}
	})
	t.Run("before the mount", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := startServe(t, ctx, "", &fusefs.ServeOptions{NotBefore: make(chan struct{})})
		s.running(t)
		cancel()
		if err := s.wait(t); !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want context.Canceled", err)
		}
		if len(s.ready) != 0 || mounted(t, s.mnt) {
			t.Error("mounted while NotBefore was open")
		}
	})
}

// TestServeNotBefore: the mount waits for NotBefore.
func TestServeNotBefore(t *testing.T) {
	gate := make(chan struct{})
	s := startServe(t, context.Background(), "", &fusefs.ServeOptions{NotBefore: gate})
	time.Sleep(100 * time.Millisecond)
	if len(s.ready) != 0 || mounted(t, s.mnt) {
		t.Fatal("mounted while NotBefore was open")
	}
	if want := []string{"file system built"}; !slices.Equal(s.stepsSoFar(), want) {
		t.Errorf("steps %q while NotBefore is open, want %q", s.stepsSoFar(), want)
	}
	close(gate)
	s.waitReady(t)
	s.signals <- syscall.SIGHUP
	if err := s.wait(t); err != nil {
		t.Fatalf("Serve after SIGHUP = %v", err)
	}
}

// TestServeReadyError: when Ready fails, nobody will use the mount: Serve
// removes it and returns Ready's error.
func TestServeReadyError(t *testing.T) {
	errGone := errors.New("the starter is gone")
	s := startServe(t, context.Background(), "", &fusefs.ServeOptions{Ready: func(string) error { return errGone }})
	if err := s.wait(t); !errors.Is(err, errGone) {
		t.Fatalf("Serve = %v, want Ready's error", err)
	}
	if mounted(t, s.mnt) {
		t.Error("mount left behind after Ready failed")
	}
}

// TestServeMountError: a mount that fails is Serve's error; Ready is not
// called.
func TestServeMountError(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "missing")
	s := startServe(t, context.Background(), mnt, nil)
	err := s.wait(t)
	if err == nil || !strings.Contains(err.Error(), "mount "+mnt) || len(s.ready) != 0 {
		t.Errorf("Serve = %v (ready: %d), want a mount error and no Ready", err, len(s.ready))
	}
}
