// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseCacheArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(*config) bool
	}{
		{"cache", []string{"--cache-dir", "/c", "--cache-size", "2G", "img", "mnt"}, "", func(c *config) bool { return c.cacheDir == "/c" && c.cacheSize == 2<<30 }},
		{"default size", []string{"--cache-dir", "/c", "img", "mnt"}, "", func(c *config) bool { return c.cacheSize == 10<<30 && !c.cacheOptional }},
		{"optional", []string{"--cache-dir", "/c", "--cache-optional", "--chunks", "x.chunks", "img", "mnt"}, "", func(c *config) bool { return c.cacheOptional && c.chunks == "x.chunks" }},
		{"source", []string{"--cache-dir", "/c", "--source", "http://h/i", "--chunks-sha256", testID, testID, "mnt"}, "", func(c *config) bool { return c.source == "http://h/i" && c.image == testID }},
		{"source with file", []string{"--cache-dir", "/c", "--source", "http://h/i", "--chunks-sha256", testID, "--image-id", testID, "/proc/self/fd/4", "mnt"}, "", func(c *config) bool { return c.imageID == testID }},
		{"source with the store's chunks", []string{"--cache-dir", "/c", "--source", "http://h/i", "--chunks", "x", testID, "mnt"}, "", func(c *config) bool { return c.chunks == "x" }},
		{"source unpinned", []string{"--cache-dir", "/c", "--source", "http://h/i", testID, "mnt"}, "must be pinned", nil},
		{"bad pin", []string{"--cache-dir", "/c", "--source", "http://h/i", "--chunks-sha256", "xyz", testID, "mnt"}, "not a sha256", nil},
		{"bad size", []string{"--cache-dir", "/c", "--cache-size", "lots", "img", "mnt"}, "--cache-size", nil},
		{"tiny size", []string{"--cache-dir", "/c", "--cache-size", "1k", "img", "mnt"}, "at least 1M", nil},
		{"source needs cache", []string{"--source", "http://h/i", testID, "mnt"}, "--source needs --cache-dir", nil},
		{"chunks need cache", []string{"--chunks", "x", "img", "mnt"}, "--chunks needs --cache-dir", nil},
		{"source wants id", []string{"--cache-dir", "/c", "--source", "http://h/i", "--chunks-sha256", testID, "img", "mnt"}, "IMAGE is the image id", nil},
		{"bad image id", []string{"--cache-dir", "/c", "--image-id", "ABC", "img", "mnt"}, "not an image id", nil},
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

// storeImage builds the feature tree's image into a new image store
// directory as <id>.squashfs (id: the file's sha256) with its chunk list
// of 4 KiB chunks (many chunks for a small image), and returns the
// directory, the id and the kernel mount's listing.
func storeImage(t *testing.T) (dir, id string, want *sqtest.Listing) {
	t.Helper()
	src := t.TempDir()
	sqtest.MakeFeatureTree(t, src, sqtest.TreeOptions{})
	tmp := sqtest.Build(t, src, "-comp", "gzip")
	b, err := os.ReadFile(tmp)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	id = hex.EncodeToString(sum[:])
	dir = t.TempDir()
	img := filepath.Join(dir, id+".squashfs")
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cl, err := imagestore.ComputeChunkListFile(img, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := imagestore.WriteChunkList(dir, id, cl); err != nil {
		t.Fatal(err)
	}
	want, err = sqtest.WalkMount("kernel", sqtest.MountKernel(t, img))
	if err != nil {
		t.Fatal(err)
	}
	return dir, id, want
}

// cacheCounters are the counters of the "node cache" log line.
type cacheCounters map[string]int64

var counterRE = regexp.MustCompile(`(hits|misses|source_bytes|evicted_bytes|verify_failures)=(\d+)`)

// parseCounters returns the counters of the last "node cache" line of a
// log, nil if there is none.
func parseCounters(log string) cacheCounters {
	var last string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="node cache"`) {
			last = l
		}
	}
	if last == "" {
		return nil
	}
	c := cacheCounters{}
	for _, m := range counterRE.FindAllStringSubmatch(last, -1) {
		c[m[1]], _ = strconv.ParseInt(m[2], 10, 64)
	}
	return c
}

// mountWalk serves img on a new mount point in the foreground with args,
// walks it, compares it with want, unmounts it with SIGTERM, and returns
// the server's log.
func mountWalk(t *testing.T, want *sqtest.Listing, img string, args ...string) string {
	t.Helper()
	mnt := t.TempDir()
	cmd, stderr := startForeground(t, img, mnt, append([]string{"--stats"}, args...)...)
	got, err := sqtest.WalkMount("shifter-mount", mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range sqtest.CompareListings(want, got, 40) {
		t.Error(d)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("server: %v\n%s", err, stderr)
	}
	return stderr.String()
}

// TestCacheMount serves an image through the node cache, cold then warm:
// both trees are the kernel mount's, and the warm mount reads nothing
// from the image file, which is junk by then.
func TestCacheMount(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.Binary(t, "shifter-mount-cache")
	dir, id, want := storeImage(t)
	img := filepath.Join(dir, id+".squashfs")
	cache := filepath.Join(t.TempDir(), "cache")
	args := []string{"--cache-dir", cache, "--cache-size", "64M"}

	cold := parseCounters(mountWalk(t, want, img, args...))
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if cold == nil || cold["misses"] == 0 || cold["source_bytes"] == 0 || cold["verify_failures"] != 0 {
		t.Fatalf("cold counters %v: want misses and source bytes, no verification failure", cold)
	}
	if cold["source_bytes"] > st.Size() {
		t.Errorf("cold mount read %d bytes from a %d-byte image", cold["source_bytes"], st.Size())
	}

	// The image file becomes junk of the same size: a warm mount must not
	// read it at all.
	if err := os.WriteFile(img, bytes.Repeat([]byte{0xa5}, int(st.Size())), 0o644); err != nil {
		t.Fatal(err)
	}
	warm := parseCounters(mountWalk(t, want, img, args...))
	if warm == nil || warm["source_bytes"] != 0 || warm["misses"] != 0 || warm["hits"] == 0 || warm["verify_failures"] != 0 {
		t.Fatalf("warm counters %v: want hits only, 0 bytes from the source", warm)
	}

	// Without the cache the junk is what is read: the cache was the
	// only source of the tree above.
	cmd := exec.Command(testutil.Binary(t, "shifter-mount"), "-f", img, t.TempDir())
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "squashfs") {
		t.Errorf("plain mount of the junk image: %v, %s; want a squashfs error", err, out)
	}
}

// TestCacheExplicitChunks: an image file not named by its id, with
// --image-id and --chunks; and one without a chunk list, read through.
func TestCacheExplicitChunks(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.Binary(t, "shifter-mount-cache")
	dir, id, want := storeImage(t)
	other := t.TempDir()
	img := filepath.Join(other, "image.sqfs")
	if err := os.Link(filepath.Join(dir, id+".squashfs"), img); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(t.TempDir(), "cache")
	c := parseCounters(mountWalk(t, want, img, "--cache-dir", cache, "--image-id", id, "--chunks", imagestore.ChunksPath(dir, id)))
	if c == nil || c["misses"] == 0 {
		t.Errorf("counters %v: want chunk misses", c)
	}
	// No chunk list: read through, uncached, and said at debug level.
	log := mountWalk(t, want, img, "--cache-dir", cache, "--image-id", id, "--log-level=debug")
	if c := parseCounters(log); c == nil || c["misses"] != 0 || c["hits"] != 0 || c["source_bytes"] == 0 {
		t.Errorf("counters %v: want no chunk read, bytes read through", c)
	}
	if !strings.Contains(log, "no chunk list") {
		t.Errorf("log does not say the image has no chunk list:\n%s", log)
	}
	// A name that is not an id, without --image-id: a clear error.
	cmd := exec.Command(testutil.Binary(t, "shifter-mount"), "-f", "--cache-dir", cache, img, t.TempDir())
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--image-id") {
		t.Errorf("image not named by its id: %v, %s; want an error asking for --image-id", err, out)
	}
}

// TestCacheHTTPSource serves an image fetched over HTTP (Range requests
// answered by http.ServeContent) through the cache.
func TestCacheHTTPSource(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.Binary(t, "shifter-mount-cache")
	dir, id, want := storeImage(t)
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		name := filepath.Base(r.URL.Path)
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		st, _ := f.Stat()
		http.ServeContent(w, r, name, st.ModTime(), f)
	}))
	defer srv.Close()
	cache := filepath.Join(t.TempDir(), "cache")
	cl, err := imagestore.LoadChunkList(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	pin := cl.Digest()
	// A chunk list the pin does not match is refused: a mirror that
	// serves a consistent pair of altered image and list changes nothing.
	bin := testutil.Binary(t, "shifter-mount")
	out, err := exec.Command(bin, "-f", "--cache-dir", cache, "--source", srv.URL+"/images/", "--chunks-sha256", testID, id, t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--chunks-sha256 pins") {
		t.Fatalf("a chunk list that does not match its pin: %v\n%s", err, out)
	}
	c := parseCounters(mountWalk(t, want, id, "--cache-dir", cache, "--source", srv.URL+"/images/", "--chunks-sha256", pin))
	if c == nil || c["source_bytes"] == 0 || c["verify_failures"] != 0 || requests.Load() == 0 {
		t.Fatalf("counters %v after %d requests: want bytes from the source", c, requests.Load())
	}
	// Warm: no request for chunks (the chunk list is fetched again).
	requests.Store(0)
	c = parseCounters(mountWalk(t, want, id, "--cache-dir", cache, "--source", srv.URL+"/images/", "--chunks-sha256", pin))
	if c == nil || c["source_bytes"] != 0 || requests.Load() != 1 {
		t.Errorf("warm counters %v after %d requests: want 0 source bytes and only the chunk list's request", c, requests.Load())
	}
}

// TestCacheInUse: a second server on the same cache directory fails with
// "in use by PID N", in daemon mode too; with --cache-optional it serves
// the image uncached.
func TestCacheInUse(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.Binary(t, "shifter-mount-cache")
	bin := testutil.Binary(t, "shifter-mount")
	dir, id, want := storeImage(t)
	img := filepath.Join(dir, id+".squashfs")
	cache := filepath.Join(t.TempDir(), "cache")
	first, stderr := startForeground(t, img, t.TempDir(), "--cache-dir", cache)
	defer func() {
		first.Process.Signal(syscall.SIGTERM)
		if err := first.Wait(); err != nil {
			t.Errorf("first server: %v\n%s", err, stderr)
		}
	}()
	wantMsg := "in use by PID " + strconv.Itoa(first.Process.Pid)
	for _, way := range daemonWays {
		for _, fg := range []bool{false, true} {
			args := []string{"--cache-dir", cache, img, t.TempDir()}
			if fg {
				args = append([]string{"-f"}, args...)
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = daemonEnv(way.env)
			var out bytes.Buffer
			cmd.Stderr = &out
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out.String(), wantMsg) {
					t.Errorf("%s foreground=%v: second server on the cache: %v, %q; want exit status 1 and %q", way.name, fg, err, out.String(), wantMsg)
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("%s: second server still running", way.name)
			}
		}
	}
	log := mountWalk(t, want, img, "--cache-dir", cache, "--cache-optional")
	if !strings.Contains(log, "node cache unavailable") || !strings.Contains(log, wantMsg) {
		t.Errorf("--cache-optional: log does not warn that the cache is in use:\n%s", log)
	}
	// An HTTP source cannot be read without the cache, even optional.
	cmd := exec.Command(bin, "-f", "--cache-dir", cache, "--cache-optional", "--source", "http://127.0.0.1:1/", "--chunks-sha256", testID, id, t.TempDir())
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), wantMsg) {
		t.Errorf("--source with the cache in use: %v, %s; want the in-use error", err, out)
	}
	// ... unless a local copy of the image is given.
	mountWalk(t, want, img, "--cache-dir", cache, "--cache-optional", "--source", "http://127.0.0.1:1/", "--chunks-sha256", testID, "--image-id", id)
}

// TestCacheBuildMissing: without shifter-mount-cache beside it,
// shifter-mount --cache-dir fails with a message naming it, in the
// foreground and from the early child alike.
func TestCacheBuildMissing(t *testing.T) {
	src, err := os.ReadFile(testutil.Binary(t, "shifter-mount"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "shifter-mount")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, way := range daemonWays {
		for _, fg := range []bool{false, true} {
			args := []string{"--cache-dir", t.TempDir(), filepath.Join(t.TempDir(), testID+".squashfs"), t.TempDir()}
			if fg {
				args = append([]string{"-f"}, args...)
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = daemonEnv(way.env)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "shifter-mount-cache") {
				t.Errorf("%s foreground=%v: %v, %q; want exit status 1 naming shifter-mount-cache", way.name, fg, err, out)
			}
		}
	}
	// --cache-optional: the image is served uncached, with a warning.
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	img := testImage(t)
	for _, way := range daemonWays {
		mnt := t.TempDir()
		pidFile := filepath.Join(t.TempDir(), "pid")
		pid := 0
		cleanupMount(t, mnt, &pid)
		cmd := exec.Command(bin, "--pid-file", pidFile, "--cache-dir", t.TempDir(), "--cache-optional", "--image-id", testID, img, mnt)
		cmd.Env = daemonEnv(way.env)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "serving the image file uncached") {
			t.Fatalf("%s: --cache-optional without shifter-mount-cache: %v, %q; want a mount and a warning", way.name, err, out)
		}
		pid = readPid(t, pidFile)
		if b, err := os.ReadFile(filepath.Join(mnt, "hello")); err != nil || string(b) != "hello\n" {
			t.Errorf("%s: read through the mount: %q, %v", way.name, b, err)
		}
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Fatalf("umount: %v: %s", err, out)
		}
		waitGone(t, pid)
	}
}

// TestCacheRelativeDir: a daemon given a relative --cache-dir keeps using
// that directory after it moved to / (a regression: badger then retried
// creating its tables under / for ever and the daemon never exited).
func TestCacheRelativeDir(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	testutil.Binary(t, "shifter-mount-cache")
	dir, id, want := storeImage(t)
	cwd := t.TempDir()
	mnt := t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "pid")
	pid := 0
	cleanupMount(t, mnt, &pid)
	cmd := exec.Command(testutil.Binary(t, "shifter-mount"), "--pid-file", pidFile, "--cache-dir", "cache", filepath.Join(dir, id+".squashfs"), mnt)
	cmd.Dir = cwd
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	pid = readPid(t, pidFile)
	got, err := sqtest.WalkMount("shifter-mount", mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range sqtest.CompareListings(want, got, 40) {
		t.Error(d)
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	waitGone(t, pid)
	if _, err := os.Stat(filepath.Join(cwd, "cache", "db")); err != nil {
		t.Errorf("the cache is not in the directory named relative to the command's: %v", err)
	}
}

// TestCacheBuildExecEarly: the plain build's constructor execs
// shifter-mount-cache for a command line naming --cache-dir, in the
// process that was started (before any fork, so no report pipe is handed
// on), and only a cache build as trusted as the Go side requires; an empty
// --cache-dir= or one after "--" is not a cache command line. When the
// exec fails, the Go side tries again and reports why.
func TestCacheBuildExecEarly(t *testing.T) {
	src, err := os.ReadFile(testutil.Binary(t, "shifter-mount"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mode    os.FileMode // the fake cache build's
		args    []string
		env     string
		execed  bool // the constructor ran the fake
		wantOut string
	}{
		{"daemon", 0o755, []string{"--cache-dir", "CACHE", "IMG", "MNT"}, "", true, ""},
		{"daemon, --cache-dir=", 0o755, []string{"--cache-dir=CACHE", "IMG", "MNT"}, "", true, ""},
		{"foreground", 0o755, []string{"-f", "--cache-dir", "CACHE", "IMG", "MNT"}, "", true, ""},
		{"no early fork", 0o755, []string{"--cache-dir", "CACHE", "IMG", "MNT"}, "SHIFTER_MOUNT_NO_EARLY_FORK=1", true, ""},
		{"empty --cache-dir=", 0o755, []string{"-f", "--cache-dir=", "IMG", "MNT"}, "", false, ""},
		{"after --", 0o755, []string{"-f", "--", "--cache-dir", "MNT"}, "", false, ""},
		{"group-writable", 0o775, []string{"-f", "--cache-dir", "CACHE", "IMG", "MNT"}, "", false, "writable only by its owner"},
		{"not executable", 0o644, []string{"-f", "--cache-dir", "CACHE", "IMG", "MNT"}, "", false, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "shifter-mount")
			if err := os.WriteFile(bin, src, 0o755); err != nil {
				t.Fatal(err)
			}
			rec := filepath.Join(dir, "ran")
			fake := filepath.Join(dir, "shifter-mount-cache")
			script := "#!/bin/sh\necho \"$$ ${_SHIFTER_MOUNT_READY_PIPE-none} $*\" > " + rec + "\nexit 7\n"
			if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(fake, tt.mode); err != nil {
				t.Fatal(err)
			}
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				a = strings.ReplaceAll(a, "CACHE", filepath.Join(dir, "cache"))
				a = strings.ReplaceAll(a, "IMG", filepath.Join(dir, testID+".squashfs"))
				args[i] = strings.ReplaceAll(a, "MNT", dir)
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = daemonEnv(tt.env)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			werr := cmd.Wait()
			got, rerr := os.ReadFile(rec)
			if !tt.execed {
				if rerr == nil {
					t.Fatalf("the cache build ran: %q", got)
				}
				if !strings.Contains(out.String(), tt.wantOut) {
					t.Errorf("output %q, want it to contain %q", out.String(), tt.wantOut)
				}
				return
			}
			if rerr != nil {
				t.Fatalf("the cache build did not run (%v): %v, %q", rerr, werr, out.String())
			}
			var ee *exec.ExitError
			if !errors.As(werr, &ee) || ee.ExitCode() != 7 {
				t.Errorf("exit: %v, want the fake's status 7", werr)
			}
			want := fmt.Sprintf("%d none %s\n", cmd.Process.Pid, strings.Join(args, " "))
			if string(got) != want {
				t.Errorf("the cache build recorded %q, want %q (the started process itself, no report pipe, the same arguments)", got, want)
			}
		})
	}
}
