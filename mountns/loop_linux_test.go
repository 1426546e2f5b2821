// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/internal/testutil"
)

// squashfsImage makes a small image with mksquashfs.
func squashfsImage(t *testing.T) string {
	t.Helper()
	testutil.RequireLoop(t)
	mksquashfs := testutil.RequireTool(t, "mksquashfs")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "d"), 0o755)
	os.WriteFile(filepath.Join(tree, "d", "hello"), []byte("hello\n"), 0o644)
	img := filepath.Join(dir, "img.squashfs")
	if out, err := exec.Command(mksquashfs, tree, img, "-noappend", "-quiet", "-no-progress").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	return img
}

// sysLoop reads a /sys/block/loopN/... attribute.
func sysLoop(dev, attr string) string {
	b, _ := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), attr))
	return strings.TrimSpace(string(b))
}

// attachMountCheck attaches img, checks the kernel's view of the device,
// mounts it, reads a file, unmounts, and checks that autoclear freed it.
func attachMountCheck(t *testing.T, img string) {
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dev, err := attachLoop(f, img)
	if err != nil {
		t.Fatalf("attachLoop: %v", err)
	}
	name := dev.Name()
	want, err := filepath.EvalSymlinks(img) // the kernel shows the resolved path
	if err != nil {
		t.Fatal(err)
	}
	if got := sysLoop(name, "loop/backing_file"); got != want {
		dev.Close()
		t.Fatalf("%s backing file %q, want %q", name, got, want)
	}
	if ro, ac := sysLoop(name, "ro"), sysLoop(name, "loop/autoclear"); ro != "1" || ac != "1" {
		t.Errorf("%s: ro=%s autoclear=%s, want 1 1", name, ro, ac)
	}
	mnt := t.TempDir()
	err = mount(name, mnt, "squashfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
	dev.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(mnt, "d", "hello"))
	if uerr := unix.Unmount(mnt, 0); uerr != nil {
		t.Errorf("unmount: %v", uerr)
	}
	if err != nil || string(b) != "hello\n" {
		t.Errorf("read through the loop mount: %q, %v", b, err)
	}
	for i := 0; sysLoop(name, "loop/backing_file") == img; i++ {
		if i > 100 {
			t.Errorf("%s still bound to %s after unmount (autoclear)", name, img)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAttachLoop(t *testing.T) {
	img := squashfsImage(t)
	t.Run("LOOP_CONFIGURE", func(t *testing.T) { attachMountCheck(t, img) })
	t.Run("legacy-SET_FD", func(t *testing.T) {
		old := loopConfigure
		loopConfigure = func(int, *unix.LoopConfig) error { return unix.EINVAL } // a pre-5.8 kernel
		defer func() { loopConfigure = old }()
		attachMountCheck(t, img)
	})
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		seen := map[string]int{}
		errs := make(chan error, 8)
		var devs []*os.File
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f, err := os.Open(img)
				if err != nil {
					errs <- err
					return
				}
				defer f.Close()
				dev, err := attachLoop(f, img)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				seen[dev.Name()]++
				devs = append(devs, dev)
				mu.Unlock()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for _, d := range devs {
			d.Close() // autoclear: unbound on last close
		}
		for d, n := range seen {
			if n != 1 {
				t.Errorf("%s handed out %d times", d, n)
			}
		}
		if len(seen) != 8 {
			t.Errorf("got %d devices, want 8: %v", len(seen), fmt.Sprint(seen))
		}
	})
}

// TestLoopUnusable: the loop failures that auto mode answers with FUSE,
// and those it does not; and the kernel's answer to a file that is no
// squashfs (EINVAL, as for a compressor the kernel lacks) is one of them.
func TestLoopUnusable(t *testing.T) {
	for _, tc := range []struct {
		err      error
		unusable bool
	}{
		{unix.EACCES, true}, {unix.EPERM, true}, {unix.ENOTTY, true}, {unix.ENOENT, true},
		{unix.ENODEV, true}, {unix.ENXIO, true}, {unix.ENOSPC, true}, {unix.EBUSY, true}, {unix.EINVAL, true},
		{unix.ENOMEM, false}, {unix.EMFILE, false}, {unix.EIO, false}, {unix.EINTR, false},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			err := classifyLoop(fmt.Errorf("%w: opening /dev/loop-control: %w", ErrMount, &os.PathError{Op: "open", Path: "/dev/loop-control", Err: tc.err}))
			var u *loopUnusableError
			if got := errors.As(err, &u); got != tc.unusable {
				t.Errorf("unusable = %v, want %v", got, tc.unusable)
			}
			if !errors.Is(err, ErrMount) || !errors.Is(err, tc.err) {
				t.Errorf("%v does not wrap ErrMount and the errno", err)
			}
		})
	}
	t.Run("not a squashfs", func(t *testing.T) {
		testutil.RequireRoot(t)
		testutil.RequireLoop(t)
		dir := t.TempDir()
		img := filepath.Join(dir, "zeros.img")
		if err := os.WriteFile(img, make([]byte, 1<<16), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		target := filepath.Join(dir, "mnt")
		os.Mkdir(target, 0o755)
		// In a mount namespace of its own: a thread that unshares and dies.
		errc := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with the namespace
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				errc <- err
				return
			}
			_ = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
			_, err := mountLoop(f, img, target)
			errc <- err
		}()
		err = <-errc
		var u *loopUnusableError
		if !errors.As(err, &u) || !errors.Is(err, unix.EINVAL) {
			t.Errorf("mounting zeros: %v, want a loopUnusableError with EINVAL", err)
		}
		// The device bound for the failed mount is released (autoclear).
		files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
		for _, bf := range files {
			if b, _ := os.ReadFile(bf); strings.TrimSpace(string(b)) == img {
				t.Errorf("%s still bound to the image", bf)
			}
		}
	})
}

// TestLoopLockHeldByStoppedProcess is #17 item 9: a process that holds the
// flock on /dev/loop-control and is stopped (as a user's ^Z once stopped
// the init inside the lock) must not block other starts: attachLoop
// passes the lock over after loopLockWait and binds a device anyway.
func TestLoopLockHeldByStoppedProcess(t *testing.T) {
	img := squashfsImage(t)
	flock := testutil.RequireTool(t, "flock")
	// A process group of its own: flock(1) forks sleep, which holds the
	// lock's file description too; both are stopped and killed together.
	holder := exec.Command(flock, "/dev/loop-control", "sleep", "120")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-holder.Process.Pid, unix.SIGKILL)
		syscall.Kill(-holder.Process.Pid, unix.SIGCONT)
		holder.Wait()
	}()
	ctl, err := os.Open("/dev/loop-control")
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	for i := 0; ; i++ {
		if err := unix.Flock(int(ctl.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == unix.EWOULDBLOCK {
			break
		} else if err == nil {
			unix.Flock(int(ctl.Fd()), unix.LOCK_UN)
		}
		if i > 500 {
			t.Fatal("flock(1) did not take the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(-holder.Process.Pid, unix.SIGSTOP)

	old := loopLockWait
	loopLockWait = 300 * time.Millisecond
	defer func() { loopLockWait = old }()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan error, 1)
	go func() {
		dev, err := attachLoop(f, img)
		if err == nil {
			dev.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("attachLoop with the lock held by a stopped process: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("attachLoop hangs while a stopped process holds the lock on /dev/loop-control")
	}
}

// TestStopsDeferred: a job-control stop (^Z) that comes while the loop
// lock is held does not stop the process inside the section: it finishes
// the section (and so releases the lock) first, then stops. The test
// binary re-runs itself as the process to stop.
func TestStopsDeferred(t *testing.T) {
	if os.Getenv("MOUNTNS_TEST_STOPS_CHILD") == "1" {
		withStopsDeferred(func() {
			unix.Kill(os.Getpid(), unix.SIGTSTP)
			time.Sleep(200 * time.Millisecond)
			os.Stdout.WriteString("section-done\n")
		})
		os.Stdout.WriteString("after\n")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStopsDeferred$")
	cmd.Env = append(os.Environ(), "MOUNTNS_TEST_STOPS_CHILD=1")
	var out lockedBuf
	cmd.Stdout = &out
	// A job of its own, as a shell would start it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	// Until it stops (state T) or exits.
	stat := fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)
	stopped := false
	deadline := time.Now().Add(30 * time.Second)
wait:
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			break wait
		default:
		}
		b, _ := os.ReadFile(stat)
		if _, rest, ok := strings.Cut(string(b), ") "); ok && strings.HasPrefix(rest, "T") {
			stopped = true
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if stopped {
		// Stdout goes through a pipe copied by a goroutine.
		for i := 0; i < 100 && !strings.Contains(out.String(), "section-done"); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if got := out.String(); got != "section-done\n" {
			t.Errorf("stopped with output %q, want the section finished (and nothing after it)", got)
		}
		cmd.Process.Signal(unix.SIGCONT)
	} else {
		t.Errorf("the stop that came during the section was lost: the process was never stopped (output %q)", out.String())
	}
	<-exited
	if got := out.String(); got != "section-done\nafter\n" {
		t.Errorf("output %q, want the section finished, then the rest", got)
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
