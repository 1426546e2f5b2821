// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/internal/testutil"
)

// The unprivileged caller of the tests: a uid and groups that need no
// passwd entry (the driver builds the credential from its own ids).
const (
	testUID = 4242
	testGID = 4242
)

var testGroups = []uint32{4242, 4243, 4244}

// applets are the busybox links of the test image.
var applets = []string{
	"sh", "id", "cat", "ls", "touch", "sleep", "env", "grep", "echo", "true", "false",
	"mkdir", "stat", "find", "md5sum", "readlink", "pwd", "test", "kill", "rm", "mount", "wc",
	"sort", "head", "tr",
}

// testImage is the busybox root file system, as a tree and a squashfs.
type testImage struct {
	dir      string // 0755, holds everything the tests create
	tree     string
	squashfs string
	suid     bool // /suid/suidtest is a setuid-root program
	suidSrc  string
	sigcount bool   // /bin/sigcount counts SIGINTs
	fcap     bool   // /fcap/fcaptest has cap_dac_read_search+ep
	fcapSrc  string // the program, without the capability
}

var (
	imageOnce sync.Once
	image     *testImage
	imageErr  error
)

// fcapProgram reads a root-only file: only CAP_DAC_READ_SEARCH (a file
// capability, here) lets a user do it.
const fcapProgram = `#include <stdio.h>
#include <fcntl.h>
int main(int argc, char **argv) {
	puts(open(argc > 1 ? argv[1] : "/secret/file", O_RDONLY) >= 0 ? "read-ok" : "read-denied");
	return 0;
}
`

// setFileCap gives the file the capability cap in its permitted and
// effective sets (the security.capability xattr, VFS_CAP_REVISION_2).
func setFileCap(name string, capability uint) error {
	var b [20]byte
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|0x1) // revision 2, effective
	binary.LittleEndian.PutUint32(b[4:], 1<<capability)  // permitted, low word
	return unix.Setxattr(name, "security.capability", b[:], 0)
}

// sigcountProgram counts the SIGINTs it gets in two seconds.
const sigcountProgram = `#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t n;
static void on(int s) { (void)s; n++; }
int main(void) {
	struct sigaction sa = {0};
	sa.sa_handler = on;
	sigaction(SIGINT, &sa, 0);
	puts("ready");
	fflush(stdout);
	struct timespec t = {2, 0}, rem;
	while (nanosleep(&t, &rem) != 0) t = rem;
	printf("count=%d\n", (int)n);
	return 0;
}
`

const suidProgram = `#include <stdio.h>
#include <unistd.h>
int main(void) {
	printf("%d %d ", (int)getuid(), (int)geteuid());
	puts(setuid(0) == 0 ? "setuid-ok" : "setuid-refused");
	return 0;
}
`

// buildImage builds the test image once per test process.
func buildImage(t testing.TB) *testImage {
	t.Helper()
	testutil.RequireRoot(t)
	mksquashfs := testutil.RequireTool(t, "mksquashfs")
	testutil.RequireTool(t, "busybox")
	imageOnce.Do(func() { image, imageErr = makeImage(mksquashfs) })
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return image
}

func makeImage(mksquashfs string) (*testImage, error) {
	dir, err := os.MkdirTemp("", "shifter-runtime-")
	if err != nil {
		return nil, err
	}
	// Every path of the tests is under dir: resolve it (a symlink in
	// TMPDIR), so that they are spelled as the kernel reports them
	// (mountinfo, loop backing files, /proc/PID/exe, the setuid driver's
	// os.Executable) and as mountns resolves volume destinations.
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	img := &testImage{dir: dir, tree: filepath.Join(dir, "tree"), squashfs: filepath.Join(dir, "image.squashfs")}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command("sh", "-c", "file -L "+busybox+" 2>/dev/null || true").Output(); err == nil &&
		bytes.Contains(out, []byte("dynamically linked")) {
		return nil, fmt.Errorf("%s is dynamically linked; the image needs busybox-static", busybox)
	}
	for _, d := range []string{"bin", "etc", "usr/share/doc", "opt", "suid", "empty"} {
		if err := os.MkdirAll(filepath.Join(img.tree, d), 0o755); err != nil {
			return nil, err
		}
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(img.tree, "bin/busybox"), b, 0o755); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(img.tree, "bin", a)); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"etc/image-marker":     "from-the-image\n",
		"etc/passwd":           "root:x:0:0:root:/root:/bin/sh\nimageuser:x:999:999::/:/bin/sh\n",
		"usr/share/doc/readme": "image documentation\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(img.tree, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	// Volume destinations that try to leave the container or reach /etc.
	links := map[string]string{
		"data-to-etc":    "/etc",
		"escape-abs":     "/../../../../../../etc",
		"escape-rel":     "../../../../../../../../etc",
		"escape-new":     "../../../../../../../../shifter-escape-test",
		"usr/share/link": "../../../../../../../var/lib",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(img.tree, name)); err != nil {
			return nil, err
		}
	}
	// A setuid-root program, when a C compiler is there.
	if gcc, err := exec.LookPath("gcc"); err == nil {
		src := filepath.Join(dir, "suidtest.c")
		if err := os.WriteFile(src, []byte(suidProgram), 0o644); err != nil {
			return nil, err
		}
		bin := filepath.Join(dir, "suidtest")
		if out, err := exec.Command(gcc, "-static", "-O", "-o", bin, src).CombinedOutput(); err == nil {
			b, _ := os.ReadFile(bin)
			dst := filepath.Join(img.tree, "suid/suidtest")
			if err := os.WriteFile(dst, b, 0o755); err != nil {
				return nil, err
			}
			if err := os.Chmod(dst, os.ModeSetuid|0o755); err != nil {
				return nil, err
			}
			img.suid, img.suidSrc = true, bin
		} else {
			fmt.Fprintf(os.Stderr, "no setuid test program: %v\n%s", err, out)
		}
	}
	if gcc, err := exec.LookPath("gcc"); err == nil {
		src := filepath.Join(dir, "sigcount.c")
		os.WriteFile(src, []byte(sigcountProgram), 0o644)
		if out, err := exec.Command(gcc, "-static", "-O", "-o", filepath.Join(img.tree, "bin/sigcount"), src).CombinedOutput(); err == nil {
			img.sigcount = true
		} else {
			fmt.Fprintf(os.Stderr, "no sigcount program: %v\n%s", err, out)
		}
	}
	// A file-capability program, and a file only root can read.
	if gcc, err := exec.LookPath("gcc"); err == nil {
		src := filepath.Join(dir, "fcaptest.c")
		bin := filepath.Join(dir, "fcaptest")
		os.WriteFile(src, []byte(fcapProgram), 0o644)
		if out, err := exec.Command(gcc, "-static", "-O", "-o", bin, src).CombinedOutput(); err == nil {
			os.MkdirAll(filepath.Join(img.tree, "fcap"), 0o755)
			os.MkdirAll(filepath.Join(img.tree, "secret"), 0o700)
			os.WriteFile(filepath.Join(img.tree, "secret/file"), []byte("secret\n"), 0o600)
			dst := filepath.Join(img.tree, "fcap/fcaptest")
			b, _ := os.ReadFile(bin)
			os.WriteFile(dst, b, 0o755)
			if err := setFileCap(dst, unix.CAP_DAC_READ_SEARCH); err == nil {
				img.fcap, img.fcapSrc = true, bin
			} else {
				fmt.Fprintf(os.Stderr, "no file-capability test program: %v\n", err)
			}
		} else {
			fmt.Fprintf(os.Stderr, "no file-capability test program: %v\n%s", err, out)
		}
	}
	out, err := exec.Command(mksquashfs, img.tree, img.squashfs, "-noappend", "-quiet", "-no-progress", "-comp", "gzip").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("mksquashfs: %v\n%s", err, out)
	}
	return img, nil
}

// harness runs containers through the driver.
type harness struct {
	t      testing.TB
	img    *testImage
	dir    string // per test, 0755
	driver string // the test binary, copied where every user can run it
	suid   string // the same, setuid root
}

var (
	binOnce           sync.Once
	binPlain, binSUID string
	binErr            error
)

func newHarness(t *testing.T) *harness { return newBenchHarness(t) }

// newBenchHarness is newHarness for tests and benchmarks.
func newBenchHarness(t testing.TB) *harness {
	t.Helper()
	img := buildImage(t)
	binOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			binErr = err
			return
		}
		b, err := os.ReadFile(self)
		if err != nil {
			binErr = err
			return
		}
		binPlain = filepath.Join(img.dir, "driver")
		binSUID = filepath.Join(img.dir, "driver-setuid")
		if binErr = os.WriteFile(binPlain, b, 0o755); binErr != nil {
			return
		}
		if binErr = os.WriteFile(binSUID, b, 0o755); binErr != nil {
			return
		}
		binErr = os.Chmod(binSUID, os.ModeSetuid|0o755)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	dir, err := os.MkdirTemp(img.dir, "t-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &harness{t: t, img: img, dir: dir, driver: binPlain, suid: binSUID}
	if err := os.Mkdir(h.udi(), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.with(t).checkNoLeaks() })
	return h
}

// with returns the harness reporting to t (a subtest).
func (h *harness) with(t testing.TB) *harness {
	c := *h
	c.t = t
	return &c
}

func (h *harness) udi() string { return filepath.Join(h.dir, "udi") }

// mkdir makes a directory in the test's directory, owned by uid:gid.
func (h *harness) mkdir(name string, mode os.FileMode, uid, gid int) string {
	h.t.Helper()
	p := filepath.Join(h.dir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Chown(p, uid, gid); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// caller says who runs the driver and how.
type caller struct {
	uid, gid int
	groups   []uint32
	setuid   bool // run the setuid-root copy
	env      []string
	ambient  []uintptr // ambient capabilities of the caller
	stdin    io.Reader
	onStart  func(p *os.Process, stdout *lockedBuffer)
}

var (
	asRoot = caller{}
	asUser = caller{uid: testUID, gid: testGID, groups: testGroups, setuid: true}
)

type result struct {
	stdout, stderr string
	code           int
}

// spec fills the defaults of a driver spec.
func (h *harness) spec(mode string, argv ...string) driverSpec {
	ds := driverSpec{
		Image: h.img.squashfs, Mode: mode, UDIMount: h.udi(), Argv: argv,
		Env: []string{"PATH=/bin:/usr/bin", "HOME=/", "TESTVAR=x"},
	}
	if mode == "fuse" {
		ds.MountHelper = mountHelper(h.t)
	}
	return ds
}

// run runs the driver with ds as c and returns its output and status.
func (h *harness) run(ds driverSpec, c caller) result {
	h.t.Helper()
	b, err := json.Marshal(ds)
	if err != nil {
		h.t.Fatal(err)
	}
	f, err := os.CreateTemp(h.dir, "spec-*.json")
	if err != nil {
		h.t.Fatal(err)
	}
	f.Write(b)
	f.Close()
	os.Chmod(f.Name(), 0o644)
	bin := h.driver
	if c.setuid {
		bin = h.suid
	}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{driverEnv + "=" + f.Name()}, c.env...)
	var stdout lockedBuffer
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &stdout, &stderr, c.stdin
	// A process group of its own: never the terminal's foreground group
	// (signals sent to the driver alone must be forwarded).
	cmd.SysProcAttr = &syscall.SysProcAttr{AmbientCaps: c.ambient, Setpgid: true}
	if c.uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.gid), Groups: c.groups}
	}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	if c.onStart != nil {
		c.onStart(cmd.Process, &stdout)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		h.t.Fatalf("driver %v did not finish in 60s; stderr:\n%s", ds.Argv, stderr.String())
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// must runs and fails the test unless the command exits 0.
func (h *harness) must(ds driverSpec, c caller) string {
	h.t.Helper()
	r := h.run(ds, c)
	if r.code != 0 {
		h.t.Fatalf("run %q: exit %d\nstdout:\n%s\nstderr:\n%s", ds.Argv, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mountHelper builds cmd/shifter-mount, or skips fuse mode when it does not
// build yet or FUSE is missing.
func mountHelper(t testing.TB) string {
	t.Helper()
	testutil.RequireFUSE(t)
	return testutil.Binary(t, "shifter-mount")
}

func requireMode(t *testing.T, mode string) {
	t.Helper()
	switch mode {
	case "loop":
		testutil.RequireLoop(t)
	case "fuse":
		testutil.RequireFUSE(t)
	}
}

// lines splits output into trimmed lines.
func lines(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// writeSpec writes ds for the driver and returns the file.
func writeSpec(t testing.TB, h *harness, ds driverSpec) string {
	t.Helper()
	b, err := json.Marshal(ds)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(h.dir, "spec-*.json")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b)
	f.Close()
	os.Chmod(f.Name(), 0o644)
	return f.Name()
}
