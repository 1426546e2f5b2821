// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(*config) bool
	}{
		{"plain", []string{"img", "mnt"}, "", func(c *config) bool { return c.image == "img" && c.mountpoint == "mnt" && !c.foreground }},
		{"options after args", []string{"img", "mnt", "-f", "-o", "ro,allow_other"}, "", func(c *config) bool { return c.foreground && c.allowOther }},
		{"squashfuse offset", []string{"-o", "offset=4096,debug", "img", "mnt"}, "", func(c *config) bool { return c.offset == 4096 && c.debug && c.logLevel == "debug" }},
		{"fsname subtype", []string{"-o", "fsname=x,subtype=y", "img", "mnt"}, "", func(c *config) bool { return c.fsName == "x" && c.subtype == "y" }},
		{"passed through", []string{"-o", "noexec", "-o", "noatime", "img", "mnt"}, "", func(c *config) bool { return strings.Join(c.extraOpts, ",") == "noexec,noatime" }},
		{"max_read", []string{"-o", "max_read=131072", "img", "mnt"}, "", func(c *config) bool { return c.maxReadKiB == 128 }},
		{"rw refused", []string{"-o", "rw", "img", "mnt"}, "read-only", nil},
		{"suid refused", []string{"-o", "suid", "img", "mnt"}, "nosuid", nil},
		{"unknown option", []string{"-o", "frobnicate", "img", "mnt"}, "unknown mount option", nil},
		{"offset needs value", []string{"-o", "offset", "img", "mnt"}, "needs a value", nil},
		{"bad offset", []string{"-o", "offset=-1", "img", "mnt"}, "byte count", nil},
		{"missing mountpoint", []string{"img"}, "want IMAGE MOUNTPOINT", nil},
		{"bad log level", []string{"--log-level", "loud", "img", "mnt"}, "log level", nil},
		{"unknown flag", []string{"--frob", "img", "mnt"}, "unknown flag", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseArgs(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errUsage) {
					t.Fatalf("parseArgs(%q) = %v, want a usage error containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tc.args, err)
			}
			if !tc.check(cfg) {
				t.Errorf("parseArgs(%q) = %+v", tc.args, cfg)
			}
		})
	}
}

// TestHelpDocumentsEveryOption checks that --help names every flag and
// every -o option the parser accepts.
func TestHelpDocumentsEveryOption(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, &out); code != 0 {
		t.Fatalf("run(--help) = %d, want 0", code)
	}
	help := out.String()
	newFlags(&config{}, io.Discard).VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(help, "--"+f.Name) || f.Usage == "" {
			t.Errorf("--help does not document --%s", f.Name)
		}
	})
	for _, o := range []string{"ro", "allow_other", "debug", "fsname=", "subtype=", "offset=", "max_read=", "noexec", "noatime", "default_permissions", "nonempty", "kernel_cache"} {
		if !strings.Contains(help, o) {
			t.Errorf("--help does not document -o %s", o)
		}
	}
}

// testImage builds a small image whose /hello holds "hello\n".
func testImage(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return sqtest.Build(t, src, "-comp", "gzip")
}

// mountEntry returns the /proc/self/mountinfo line of the mount on mnt,
// "" if nothing is mounted there.
func mountEntry(t *testing.T, mnt string) string {
	t.Helper()
	m, ok := testutil.MountAt(t, mnt)
	if !ok {
		return ""
	}
	return m.Line
}

// gone reports whether process pid has exited (it may be an unreaped
// zombie of whoever adopted it).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if gone(pid) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("server %d still running", pid)
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// cleanupMount unmounts mnt and kills pid if a test left them behind.
func cleanupMount(t *testing.T, mnt string, pid *int) {
	t.Cleanup(func() {
		if mountEntry(t, mnt) != "" {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
		if *pid > 0 && !gone(*pid) {
			syscall.Kill(*pid, syscall.SIGKILL)
		}
	})
}

// TestDaemon mounts in daemon mode: the command returns once the mount
// works, the mount is listed as fuse.shifter-mount with the image as
// source and ro,nosuid,nodev,default_permissions; SIGINT to the process
// group that started it does not reach the server; umount ends it.
//
// Both ways of making the daemon run: the early fork (the C constructor
// forks before the Go runtime starts) and re-executing the command (what
// a build without cgo does, forced here by SHIFTER_MOUNT_NO_EARLY_FORK).
func TestDaemon(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	for _, way := range daemonWays {
		t.Run(way.name, func(t *testing.T) { testDaemon(t, way.env, way.how) })
	}
}

var daemonWays = []struct{ name, env, how string }{
	{"early-fork", "", "early-fork"},
	{"re-exec", "SHIFTER_MOUNT_NO_EARLY_FORK=1", "re-exec"},
}

// daemonEnv is the environment of a daemon started the given way.
func daemonEnv(env string) []string {
	e := os.Environ()
	if env != "" {
		e = append(e, env)
	}
	return e
}

func testDaemon(t *testing.T, env, how string) {
	bin := testutil.Binary(t, "shifter-mount")
	img := testImage(t)
	mnt := t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "pid")
	pid := 0
	cleanupMount(t, mnt, &pid)

	cmd := exec.Command(bin, "--pid-file", pidFile, "--log-level=debug", img, mnt)
	// inittrace: each Go runtime that starts logs its package inits.
	cmd.Env = append(daemonEnv(env), "GODEBUG=inittrace=1")
	// The starter runs in its own process group, as a shell job would.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, stderr.String())
	}
	pgid := cmd.Process.Pid
	pid = readPid(t, pidFile)
	// The daemon's debug log, before it is ready, goes to the caller's
	// stderr: it says which way it was started.
	if want := fmt.Sprintf("started_by=%s pid=%d", how, pid); !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %s:\n%s", want, stderr.String())
	}
	// The early fork's parent ends in its C constructor once mounted: only
	// the server starts a Go runtime. Re-exec starts two.
	runtimes := strings.Count(stderr.String(), "init runtime @")
	if want := map[string]int{"early-fork": 1, "re-exec": 2}[how]; runtimes != want {
		t.Errorf("%d Go runtimes started, want %d", runtimes, want)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "hello")); err != nil || string(b) != "hello\n" {
		t.Fatalf("read through the mount right after the command returned = %q, %v", b, err)
	}
	m, _ := testutil.MountAt(t, mnt)
	if m.FSType != "fuse.shifter-mount" || m.Source != img {
		t.Errorf("mountinfo %q: want type fuse.shifter-mount, source %s", m.Line, img)
	}
	for _, want := range []string{"ro", "nosuid", "nodev"} {
		if !slices.Contains(strings.Split(m.Options, ","), want) {
			t.Errorf("mountinfo %q: mount options lack %s", m.Line, want)
		}
	}
	for _, want := range []string{"default_permissions", "allow_other"} {
		if !slices.Contains(strings.Split(m.SuperOpts, ","), want) {
			t.Errorf("mountinfo %q: super options lack %s", m.Line, want)
		}
	}
	sid, _ := unix.Getsid(pid)
	if sid != pid {
		t.Errorf("server session = %d, want its own (%d)", sid, pid)
	}
	// ^C in the terminal: SIGINT to the starter's process group.
	syscall.Kill(-pgid, syscall.SIGINT)
	time.Sleep(200 * time.Millisecond)
	if gone(pid) {
		t.Fatal("server died of a SIGINT to the starting process group")
	}
	if _, err := os.Stat(filepath.Join(mnt, "hello")); err != nil {
		t.Fatalf("mount broken after SIGINT to the process group: %v", err)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatalf("umount: %v", err)
	}
	waitGone(t, pid)
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left behind: %v", err)
	}
}

// startForeground starts shifter-mount -f with --ready-fd and waits for
// the ready byte.
func startForeground(t *testing.T, img, mnt string, extra ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	bin := testutil.Binary(t, "shifter-mount")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	args := append([]string{"-f", "--ready-fd", "3"}, extra...)
	cmd := exec.Command(bin, append(args, img, mnt)...)
	cmd.ExtraFiles = []*os.File{w}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	pid := cmd.Process.Pid
	cleanupMount(t, mnt, &pid)
	b, _ := bufio.NewReader(r).ReadByte()
	if b != '\n' {
		cmd.Wait()
		t.Fatalf("no ready byte from %s: %s", cmd, stderr.String())
	}
	if mountEntry(t, mnt) == "" {
		t.Fatal("ready byte written but not mounted")
	}
	return cmd, &stderr
}

func TestForegroundSignals(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	img := testImage(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			mnt := t.TempDir()
			cmd, stderr := startForeground(t, img, mnt)
			cmd.Process.Signal(sig)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("server after %v: %v\n%s", sig, err, stderr)
			}
			if mountEntry(t, mnt) != "" {
				t.Error("still mounted after the server exited")
			}
		})
	}
	t.Run("external umount", func(t *testing.T) {
		mnt := t.TempDir()
		cmd, stderr := startForeground(t, img, mnt)
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Fatalf("umount: %v: %s", err, out)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("server after umount: %v\n%s", err, stderr)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("server still running 5 s after umount")
		}
	})
	t.Run("busy", func(t *testing.T) {
		// SIGTERM while a file is open: the mount is detached, the open
		// file still reads, and the server exits when it is closed.
		mnt := t.TempDir()
		cmd, stderr := startForeground(t, img, mnt)
		f, err := os.Open(filepath.Join(mnt, "hello"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.Now().Add(5 * time.Second)
		for mountEntry(t, mnt) != "" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if mountEntry(t, mnt) != "" {
			t.Fatal("mount not detached after SIGTERM")
		}
		b := make([]byte, 6)
		if n, err := f.ReadAt(b, 0); err != nil || string(b[:n]) != "hello\n" {
			t.Errorf("read of a file open across the lazy unmount = %q, %v", b[:n], err)
		}
		select {
		case err := <-done:
			t.Fatalf("server exited while a file was open: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		f.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("server: %v\n%s", err, stderr)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("server still running 5 s after the last file was closed")
		}
	})
}

// TestMountErrors: failures are reported by the command itself, with a
// non-zero exit status, in daemon mode too.
func TestMountErrors(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	bin := testutil.Binary(t, "shifter-mount")
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.sqfs")
	if err := os.WriteFile(corrupt, bytes.Repeat([]byte("not a squashfs image "), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	img := testImage(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		// wantStart begins stderr when set: the whole report reaches the
		// caller (the early fork's constructor reads its first byte).
		wantStart, wantMsg string
	}{
		{"missing image", []string{filepath.Join(dir, "nope"), t.TempDir()}, 1, "shifter-mount: open image: open " + filepath.Join(dir, "nope") + ": ", "no such file"},
		{"corrupt image", []string{corrupt, t.TempDir()}, 1, "shifter-mount: open image " + corrupt + ": squashfs: bad magic", "squashfs"},
		{"missing mount point", []string{img, filepath.Join(dir, "nodir")}, 1, "", "mount"},
		{"usage", []string{img}, 2, "shifter-mount: want IMAGE MOUNTPOINT", "IMAGE MOUNTPOINT"},
		{"foreground corrupt", []string{"-f", corrupt, t.TempDir()}, 1, "", "squashfs"},
	}
	for _, way := range daemonWays {
		for _, tc := range tests {
			t.Run(way.name+"/"+tc.name, func(t *testing.T) {
				cmd := exec.Command(bin, tc.args...)
				cmd.Env = daemonEnv(way.env)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != tc.wantCode {
					t.Fatalf("%v = %v, want exit status %d\n%s", tc.args, err, tc.wantCode, stderr.String())
				}
				if !strings.HasPrefix(stderr.String(), tc.wantStart) || !strings.Contains(stderr.String(), tc.wantMsg) {
					t.Errorf("stderr %q: want it to start with %q and contain %q", stderr.String(), tc.wantStart, tc.wantMsg)
				}
			})
		}
	}
}

// TestUnprivileged mounts as an ordinary user (uid 65534) through
// fusermount3, reads, and unmounts with fusermount3 -u.
func TestUnprivileged(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.RequireTool(t, "fusermount3")
	bin := testutil.Binary(t, "shifter-mount")
	img := testImage(t)
	dir, err := os.MkdirTemp("", "shifter-mount-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	mnt := filepath.Join(dir, "mnt")
	pidFile := filepath.Join(dir, "pid")
	userImg := filepath.Join(dir, "image.sqfs")
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(userImg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, mnt} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	traverse := func(d string) {
		for ; d != "/"; d = filepath.Dir(d) {
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
				os.Chmod(d, st.Mode().Perm()|0o011)
			}
		}
	}
	traverse(filepath.Dir(dir))
	pid := 0
	cleanupMount(t, mnt, &pid)
	asUser := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Dir = "/"
		return cmd
	}
	if out, err := asUser(bin, "--pid-file", pidFile, userImg, mnt).CombinedOutput(); err != nil {
		t.Fatalf("shifter-mount as uid 65534: %v\n%s", err, out)
	}
	pid = readPid(t, pidFile)
	mi := mountEntry(t, mnt)
	if !strings.Contains(mi, "user_id=65534") || strings.Contains(mi, "allow_other") {
		t.Errorf("mountinfo %q: want user_id=65534 and no allow_other", mi)
	}
	if out, err := asUser("cat", filepath.Join(mnt, "hello")).CombinedOutput(); err != nil || string(out) != "hello\n" {
		t.Errorf("cat as uid 65534 = %q, %v", out, err)
	}
	if out, err := asUser("fusermount3", "-u", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u: %v\n%s", err, out)
	}
	waitGone(t, pid)
}

// TestKilledServer: after SIGKILL of the server, the mount fails fast
// with ENOTCONN instead of hanging, and can be unmounted.
func TestKilledServer(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	img := testImage(t)
	mnt := t.TempDir()
	cmd, _ := startForeground(t, img, mnt)
	cmd.Process.Kill()
	cmd.Wait()
	done := make(chan error, 1)
	go func() {
		_, err := os.ReadFile(filepath.Join(mnt, "hello"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.ENOTCONN) {
			t.Errorf("read after the server was killed = %v, want ENOTCONN", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read after the server was killed hangs")
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Errorf("umount after the server was killed: %v", err)
	}
}

// TestDaemonPassedDescriptors: in daemon mode --ready-fd is answered by
// the command, and an image named by an inherited descriptor
// (/proc/self/fd/N) still opens in the daemon.
// A descriptor the caller leaked (fd 5, not named) must not reach the
// daemon either.
func TestDaemonPassedDescriptors(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	for _, way := range daemonWays {
		t.Run(way.name, func(t *testing.T) { testDaemonPassedDescriptors(t, way.env) })
	}
}

func testDaemonPassedDescriptors(t *testing.T, env string) {
	bin := testutil.Binary(t, "shifter-mount")
	img, err := os.Open(testImage(t))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mnt := t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "pid")
	pid := 0
	cleanupMount(t, mnt, &pid)
	// fd 3: the ready pipe, fd 4: the image (the daemon's pipe must not
	// land on either).
	leakR, leakW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer leakR.Close()
	cmd := exec.Command(bin, "--ready-fd", "3", "--pid-file", pidFile, "/proc/self/fd/4", mnt)
	cmd.Env = daemonEnv(env)
	cmd.ExtraFiles = []*os.File{w, img, leakW}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, stderr.String())
	}
	w.Close()
	leakW.Close()
	pid = readPid(t, pidFile)
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "\n" {
		t.Errorf("ready fd got %q, %v; want one newline and EOF (the daemon must not hold it)", b, err)
	}
	if b, err := io.ReadAll(leakR); err != nil || len(b) != 0 {
		t.Errorf("leaked pipe got %q, %v; want EOF (the daemon must not hold it)", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "hello")); err != nil || string(b) != "hello\n" {
		t.Errorf("read through the mount = %q, %v", b, err)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

// TestServeDevFd: the way mountns uses the command in unprivileged mode:
// the parent mounts /dev/fuse itself and hands the descriptor over as
// /dev/fd/N; the server serves it and ends when the parent unmounts.
func TestServeDevFd(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	bin := testutil.Binary(t, "shifter-mount")
	img := testImage(t)
	mnt := t.TempDir()
	fuse, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fuse.Close()
	data := "fd=" + strconv.Itoa(int(fuse.Fd())) + ",rootmode=40000,user_id=0,group_id=0,default_permissions"
	if err := unix.Mount("shifter-test", mnt, "fuse.shifter-mount", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		t.Fatalf("mount fuse: %v", err)
	}
	pid := 0
	cleanupMount(t, mnt, &pid)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(bin, "-f", "--ready-fd=3", "--kernel-readahead-kb=-1", img, "/dev/fd/4")
	cmd.ExtraFiles = []*os.File{w, fuse}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid = cmd.Process.Pid
	w.Close()
	fuse.Close()
	if b, _ := io.ReadAll(r); string(b) != "\n" {
		cmd.Wait()
		t.Fatalf("no ready byte: %q\n%s", b, stderr.String())
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "hello")); err != nil || string(b) != "hello\n" {
		t.Errorf("read through the mount = %q, %v\n%s", b, err, stderr.String())
	}
	if _, err := os.Stat("/dev/fuse"); err != nil || mountEntry(t, "/dev/fuse") != "" {
		t.Errorf("/dev/fuse disturbed: %v %q", err, mountEntry(t, "/dev/fuse"))
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server: %v\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server still running 5 s after the parent unmounted")
	}
}

// TestStartupSteps: --log-level=debug times the start-up steps, in
// order (shifter -v passes it to the helper of a fuse-mode container);
// the default level logs none of them.
func TestStartupSteps(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	img := testImage(t)
	steps := []string{"serving", "image opened", "file system built", "mounted (FUSE INIT answered)", "readiness reported"}
	for _, tc := range []struct {
		level string
		want  []string
	}{
		{"debug", steps},
		{"info", nil},
	} {
		t.Run(tc.level, func(t *testing.T) {
			mnt := t.TempDir()
			cmd, stderr := startForeground(t, img, mnt, "--log-level="+tc.level)
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("server: %v\n%s", err, stderr)
			}
			var got []string
			for _, l := range strings.Split(stderr.String(), "\n") {
				if !strings.Contains(l, `msg="start-up step"`) {
					continue
				}
				_, rest, _ := strings.Cut(l, " step=")
				name := rest
				if strings.HasPrefix(rest, `"`) {
					name, _, _ = strings.Cut(rest[1:], `"`)
				} else {
					name, _, _ = strings.Cut(rest, " ")
				}
				if !strings.Contains(l, " at=") || !strings.Contains(l, " took=") {
					t.Errorf("step without timings: %s", l)
				}
				got = append(got, name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("start-up steps logged = %q, want %q\n%s", got, tc.want, stderr)
			}
		})
	}
}

// TestDaemonStarterKilled: the command that started the daemon is killed
// while it waits for the report (^C, a batch system's timeout). Nobody
// then knows of the mount, so the daemon must unmount and exit rather
// than leave it behind. The pid file is a FIFO, which holds the daemon
// between mounting and reporting for as long as the test wants.
func TestDaemonStarterKilled(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	for _, way := range daemonWays {
		t.Run(way.name, func(t *testing.T) {
			bin := testutil.Binary(t, "shifter-mount")
			img := testImage(t)
			mnt := t.TempDir()
			fifo := filepath.Join(t.TempDir(), "pid")
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			pid := 0
			cleanupMount(t, mnt, &pid)
			cmd := exec.Command(bin, "--pid-file", fifo, img, mnt)
			cmd.Env = daemonEnv(way.env)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			for i := 0; mountEntry(t, mnt) == ""; i++ {
				if i == 200 {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatal("not mounted after 10 s")
				}
				time.Sleep(50 * time.Millisecond)
			}
			cmd.Process.Kill()
			cmd.Wait()
			// Let the daemon go on: it writes its pid, then fails to report.
			b, err := os.ReadFile(fifo)
			if err != nil {
				t.Fatal(err)
			}
			if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				t.Fatalf("pid file: %q", b)
			}
			waitGone(t, pid)
			if mi := mountEntry(t, mnt); mi != "" {
				t.Errorf("mount left behind by a daemon whose starter died: %s", mi)
			}
		})
	}
}

// TestSignalBeforeCaught: a SIGTERM that reaches the server before it has
// caught its signals (signal.Notify delayed by the notifyDelay option)
// still ends it cleanly, unmounted, and never leaves a dead mount. The
// early child holds the signals (a C handler records them until Notify),
// so its mount does not wait for Notify; re-exec waits for it. The server
// runs in this process, as the daemon would run it; the signal goes to
// this process (without a handler in place, it would kill the test).
func TestSignalBeforeCaught(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	oldDelay, oldPercent, oldLimit := gcSettleDelay, debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		gcSettleDelay = oldDelay
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})
	gcSettleDelay = 0 // serve's collector settings settle before the test ends
	img := testImage(t)
	for _, way := range daemonWays {
		t.Run(way.name, func(t *testing.T) {
			mnt := t.TempDir()
			pid := 0
			cleanupMount(t, mnt, &pid)
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			// serve closes its --ready-fd: it gets a descriptor of its own.
			readyFD, err := unix.FcntlInt(w.Fd(), unix.F_DUPFD_CLOEXEC, 3)
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := parseArgs([]string{"-f", img, mnt}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			const delay = 1500 * time.Millisecond
			cfg.readyFD = readyFD
			cfg.notifyDelay = delay
			held := way.how == "early-fork"
			if held {
				cfg.daemonHow = way.how // serve holds the signals as the early child does
			}
			var stderr lockedBuffer
			done := make(chan int, 1)
			start := time.Now()
			go func() { done <- serve(cfg, nil, &stderr) }()
			b, _ := io.ReadAll(r)
			took := time.Since(start)
			if string(b) != "\n" {
				select {
				case <-done:
				case <-time.After(10 * time.Second):
				}
				t.Fatalf("ready fd got %q\n%s", b, stderr.String())
			}
			if held != (took < delay) {
				t.Errorf("mount took %v with Notify delayed %v: want the mount to wait for it: %v", took, delay, !held)
			}
			if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if held {
				// Recorded until Notify: the server serves on meanwhile.
				time.Sleep(100 * time.Millisecond)
				if b, err := exec.Command("cat", filepath.Join(mnt, "hello")).Output(); err != nil || string(b) != "hello\n" {
					t.Errorf("read while SIGTERM is pending = %q, %v", b, err)
				}
			}
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("serve after SIGTERM = %d, want 0\n%s", code, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("serve still running 10 s after SIGTERM\n%s", stderr.String())
			}
			if e := mountEntry(t, mnt); e != "" {
				t.Errorf("mount left behind after SIGTERM: %s", e)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer that a server may write while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
