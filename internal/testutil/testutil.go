// SPDX-License-Identifier: BSD-3-Clause

// Package testutil holds helpers shared by the project's tests: gates for
// tests that need root, /dev/fuse, loop devices or external tools, and a
// builder for the project's own binaries.
//
// A gated test skips when what it needs is missing, except under CI=true,
// where a missing capability is a failure: CI runs as root with /dev/fuse
// and loop devices, so a skip there would hide a broken set-up.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips t with reason, or fails it under CI.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true but %s", reason)
	}
	t.Skip(reason)
}

// RequireRoot needs euid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "test needs root")
	}
}

// RequireFUSE needs a usable /dev/fuse and fusermount3 (or root).
func RequireFUSE(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		Unavailable(t, "test needs /dev/fuse: "+err.Error())
		return
	}
	f.Close()
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			Unavailable(t, "test needs fusermount3 (Debian fuse3)")
		}
	}
}

// RequireLoop needs root, /dev/loop-control and kernel squashfs.
func RequireLoop(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		Unavailable(t, "test needs /dev/loop-control")
	}
	b, _ := os.ReadFile("/proc/filesystems")
	if !strings.Contains(string(b), "squashfs") {
		Unavailable(t, "test needs kernel squashfs (/proc/filesystems)")
	}
}

// RequireTool needs an executable on PATH and returns its path.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "test needs "+name+" on PATH (make deps installs it)")
	}
	return p
}

// ModuleRoot returns the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	binMu   sync.Mutex
	binDir  string
	binDone = map[string]string{}
)

// buildFlags are the Makefile's per-binary build flags, so that tests run
// the binaries as they ship (keep in step with the Makefile's build rule).
var buildFlags = map[string][]string{
	"shifter-mount":       {"-tags", "osusergo,netgo", "-ldflags", "-s -w -linkmode=external -extldflags=-static"},
	"shifter-mount-cache": {"-tags", "osusergo,netgo,shiftercache", "-ldflags", "-s -w -linkmode=external -extldflags=-static"},
}

// binPackage names the command a binary is built from when it is not
// ./cmd/<name>: shifter-mount-cache is shifter-mount with the node cache.
var binPackage = map[string]string{"shifter-mount-cache": "shifter-mount"}

// Binary builds ./cmd/<name> (or binPackage's command) once per test
// process and returns the path of the executable. It lives in a directory that every user can traverse
// (tests run it as other users too).
func Binary(t testing.TB, name string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binDone[name]; ok {
		return p
	}
	if binDir == "" {
		d, err := os.MkdirTemp("", "shifter-testbin-")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
		binDir = d
	}
	out := filepath.Join(binDir, name)
	args := append([]string{"build", "-o", out}, buildFlags[name]...)
	pkg := name
	if p, ok := binPackage[name]; ok {
		pkg = p
	}
	cmd := exec.Command("go", append(args, "./cmd/"+pkg)...)
	cmd.Dir = ModuleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	binDone[name] = out
	return out
}
