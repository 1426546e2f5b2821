// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/internal/testutil"
)

func TestExitStatus(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		for _, tc := range []struct {
			name string
			argv []string
			want int
		}{
			{"zero", []string{"true"}, 0},
			{"one", []string{"false"}, 1},
			{"exit-42", []string{"sh", "-c", "exit 42"}, 42},
			{"killed-by-TERM", []string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
			{"killed-by-KILL", []string{"sh", "-c", "kill -KILL $$"}, 128 + 9},
			{"not-found", []string{"no-such-command"}, 127},
			{"not-found-path", []string{"/no/such/command"}, 127},
			{"not-executable", []string{"/etc/image-marker"}, 127},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := h.with(t)
				r := h.run(h.spec(mode, tc.argv...), asUser)
				if r.code != tc.want {
					t.Errorf("%q: exit %d, want %d\nstderr: %s", tc.argv, r.code, tc.want, r.stderr)
				}
			})
		}
	})
}

// TestSignalsForwarded sends signals to the driver (the process that called
// Run): the command receives them.
func TestSignalsForwarded(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		for _, tc := range []struct {
			sig  syscall.Signal
			want int
			out  string
		}{
			{unix.SIGUSR1, 10, "got USR1"},
			{unix.SIGUSR2, 12, "got USR2"},
			{unix.SIGHUP, 11, "got HUP"},
			{unix.SIGINT, 13, "got INT"},
			{unix.SIGTERM, 14, "got TERM"},
		} {
			t.Run(tc.sig.String(), func(t *testing.T) {
				h := h.with(t)
				script := `trap "echo got USR1; exit 10" USR1; trap "echo got USR2; exit 12" USR2; ` +
					`trap "echo got HUP; exit 11" HUP; trap "echo got INT; exit 13" INT; trap "echo got TERM; exit 14" TERM; ` +
					`echo ready; while :; do sleep 0.05; done`
				c := asUser
				c.onStart = func(p *os.Process, stdout *lockedBuffer) {
					deadline := time.Now().Add(20 * time.Second)
					for !strings.Contains(stdout.String(), "ready") && time.Now().Before(deadline) {
						time.Sleep(10 * time.Millisecond)
					}
					p.Signal(tc.sig)
				}
				r := h.run(h.spec(mode, "sh", "-c", script), c)
				if r.code != tc.want || !strings.Contains(r.stdout, tc.out) {
					t.Errorf("after %v: exit %d, stdout %q; want %d, %q\nstderr: %s", tc.sig, r.code, r.stdout, tc.want, tc.out, r.stderr)
				}
			})
		}
		t.Run("default-action", func(t *testing.T) {
			h := h.with(t)
			c := asUser
			c.onStart = func(p *os.Process, stdout *lockedBuffer) {
				for i := 0; i < 2000 && !strings.Contains(stdout.String(), "ready"); i++ {
					time.Sleep(10 * time.Millisecond)
				}
				p.Signal(unix.SIGTERM)
			}
			r := h.run(h.spec(mode, "sh", "-c", "echo ready; exec sleep 30"), c)
			if r.code != 128+15 {
				t.Errorf("sleep after SIGTERM: exit %d, want 143\nstderr: %s", r.code, r.stderr)
			}
		})
	})
}

func TestWorkdir(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	data := h.mkdir("wd", 0o755, testUID, testGID)
	closed := h.mkdir("closedwd", 0o700, 0, 0)
	for _, tc := range []struct {
		workdir, want string
		warn          bool
	}{
		{"", "/", false},
		{"/usr/share/doc", "/usr/share/doc", false},
		{"/data", "/data", false},
		{"/does/not/exist", "/", true},
		{"/closed", "/", true}, // exists, but the user may not enter it
	} {
		t.Run(strings.ReplaceAll(tc.workdir, "/", "_"), func(t *testing.T) {
			h := h.with(t)
			ds := h.spec("loop", "pwd")
			ds.Workdir = tc.workdir
			ds.Volumes = data + ":/data;" + closed + ":/closed"
			ds.Volumes = data + ":/data"
			if tc.workdir == "/closed" {
				ds.SiteVolumes = closed + ":/closed"
			}
			r := h.run(ds, asUser)
			if r.code != 0 || strings.TrimSpace(r.stdout) != tc.want {
				t.Fatalf("workdir %q: pwd %q exit %d, want %q\nstderr: %s", tc.workdir, r.stdout, r.code, tc.want, r.stderr)
			}
			if got := strings.Contains(r.stderr, "working directory"); got != tc.warn {
				t.Errorf("workdir %q: warning %v, want %v: %q", tc.workdir, got, tc.warn, r.stderr)
			}
		})
	}
}

// TestSetuidInImageGivesNothing runs a setuid-root program from the image
// and from a volume: it keeps the caller's uid. On the host, the same file
// does make its caller root, so the test would notice a broken nosuid.
func TestSetuidInImageGivesNothing(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		if !h.img.suid {
			t.Skip("no C compiler to build the setuid test program")
		}
		// Host baseline: a setuid copy outside nosuid mounts works. The
		// container reaches it through its bind of the host's /tmp or
		// /var/tmp, at the same path (h.dir is resolved); with TMPDIR
		// elsewhere, the copy goes in a directory of its own in /tmp.
		hostDir := h.dir
		if !underHostTmp(hostDir) {
			d, err := os.MkdirTemp("/tmp", "shifter-suid-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(d) })
			if hostDir, err = filepath.EvalSymlinks(d); err != nil {
				t.Fatal(err)
			}
			if !underHostTmp(hostDir) {
				t.Fatalf("%s resolves to %s, not under /tmp or /var/tmp", d, hostDir)
			}
			if err := os.Chmod(hostDir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		hostCopy := filepath.Join(hostDir, "suidtest")
		b, _ := os.ReadFile(h.img.suidSrc)
		os.WriteFile(hostCopy, b, 0o755)
		os.Chmod(hostCopy, os.ModeSetuid|0o755)
		cmd := exec.Command(hostCopy)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testUID, Gid: testGID}}
		base, err := cmd.Output()
		if err != nil || !strings.Contains(string(base), "4242 0 setuid-ok") {
			t.Skipf("setuid does not work on the host here (%q, %v)", base, err)
		}
		vol := h.mkdir("suidvol", 0o755, testUID, testGID)
		os.WriteFile(filepath.Join(vol, "suidtest"), b, 0o755)
		os.Chmod(filepath.Join(vol, "suidtest"), os.ModeSetuid|0o755)
		ds := h.spec(mode, "sh", "-c", "/suid/suidtest; /v/suidtest; "+hostCopy)
		ds.Volumes = vol + ":/v"
		out := h.must(ds, asUser)
		if n := strings.Count(out, "4242 4242 setuid-refused"); n != 3 {
			t.Errorf("setuid programs inside: %q, want 3 x \"4242 4242 setuid-refused\"", out)
		}
	})
}

// underHostTmp reports whether the resolved path p lies in the host's /tmp
// or /var/tmp, which the container binds at the same place.
func underHostTmp(p string) bool {
	return strings.HasPrefix(p, "/tmp/") || strings.HasPrefix(p, "/var/tmp/")
}

// TestLDPreloadNeverPrivileged: the caller's loader variables reach no
// privileged step. The preloaded library records every process that loads
// it, with its effective uid.
func TestLDPreloadNeverPrivileged(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		gcc, err := exec.LookPath("gcc")
		if err != nil {
			t.Skip("needs gcc to build the preload library")
		}
		logFile := filepath.Join(h.dir, "preload.log")
		os.WriteFile(logFile, nil, 0o666)
		os.Chmod(logFile, 0o666)
		src := filepath.Join(h.dir, "evil.c")
		os.WriteFile(src, []byte(fmt.Sprintf(`#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {
	FILE *f = fopen(%q, "a");
	if (f) { fprintf(f, "loaded euid=%%d pid=%%d\n", (int)geteuid(), (int)getpid()); fclose(f); }
}
`, logFile)), 0o644)
		lib := filepath.Join(h.dir, "evil.so")
		if out, err := exec.Command(gcc, "-shared", "-fPIC", "-o", lib, src).CombinedOutput(); err != nil {
			t.Skipf("building the preload library: %v\n%s", err, out)
		}
		os.Chmod(lib, 0o755)
		// It does work on an ordinary dynamic program.
		probe := exec.Command("/bin/true")
		probe.Env = []string{"LD_PRELOAD=" + lib}
		probe.Run()
		if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "loaded") {
			t.Fatalf("the preload library does not load even into /bin/true: %q", b)
		}
		os.WriteFile(logFile, nil, 0o666)

		hookOut := filepath.Join(h.dir, "hook-env")
		ds := h.spec(mode, "true")
		ds.PreMountHook = "env > " + hookOut + "; /bin/true"
		ds.PostMountHook = "/bin/true"
		c := asUser
		c.env = []string{"LD_PRELOAD=" + lib, "LD_LIBRARY_PATH=" + h.dir, "GCONV_PATH=" + h.dir, "LD_AUDIT=" + lib,
			"GLIBC_TUNABLES=glibc.malloc.check=3", "PATH=" + h.dir + ":/usr/bin:/bin"}
		h.must(ds, c)
		if b, _ := os.ReadFile(logFile); len(b) > 0 {
			t.Errorf("the caller's LD_PRELOAD library was loaded:\n%s", b)
		}
		env, _ := os.ReadFile(hookOut)
		for _, v := range []string{"LD_", "GCONV", "GLIBC_TUNABLES", h.dir + ":"} {
			if strings.Contains(string(env), v) {
				t.Errorf("the root hook's environment has %q:\n%s", v, env)
			}
		}
	})
}

func TestHooks(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	site := h.mkdir("site", 0o755, 0, 0)
	os.WriteFile(filepath.Join(site, "site-file"), []byte("site\n"), 0o644)
	script := filepath.Join(h.dir, "post.sh")
	// Shifter's form: a script file run by /bin/sh, relative paths.
	os.WriteFile(script, []byte("mkdir -p site-mnt && mount --bind "+site+" site-mnt && test -d data && echo post-saw-volume > /dev/stderr\n"), 0o644)
	data := h.mkdir("data", 0o755, testUID, testGID)
	ds := h.spec("loop", "sh", "-c", "cat /pre-made; cat /site-mnt/site-file; id -u")
	ds.PreMountHook = "echo made-by-pre-hook > pre-made; id -u > pre-uid"
	ds.PostMountHook = script
	ds.Volumes = data + ":/data"
	r := h.run(ds, asUser)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if want := "made-by-pre-hook\nsite\n4242\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "post-saw-volume") {
		t.Errorf("the post hook ran before the volumes: %q", r.stderr)
	}
	// Failing hook.
	ds = h.spec("loop", "true")
	ds.PreMountHook = "exit 3"
	if r := h.run(ds, asUser); r.code != 205 {
		t.Errorf("failing hook: exit %d, want 205 (ErrHook)\n%s", r.code, r.stderr)
	}
}

// TestLoopAndFUSEIdentical lists the image in both modes.
func TestLoopAndFUSEIdentical(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	requireMode(t, "fuse")
	script := `for d in /bin /usr /suid /empty /etc/image-marker /data-to-etc /escape-abs; do find $d; done | sort | while read f; do
		stat -c '%n %f %u %g %s %Y %N' "$f"; test -f "$f" && ! test -L "$f" && md5sum "$f"; done; true`
	var outs []string
	for _, mode := range []string{"loop", "fuse"} {
		outs = append(outs, h.must(h.spec(mode, "sh", "-c", script), asUser))
	}
	if outs[0] != outs[1] {
		t.Errorf("loop and fuse differ:\nloop:\n%s\nfuse:\n%s", outs[0], outs[1])
	}
	if n := len(lines(outs[0])); n < 30 {
		t.Errorf("listing has only %d lines:\n%s", n, outs[0])
	}
}

// TestLocalRoot runs a host directory as the root.
func TestLocalRoot(t *testing.T) {
	h := newHarness(t)
	ds := h.spec("", "sh", "-c", "cat /etc/image-marker; id -u; (touch /x) 2>&1; true")
	ds.Image, ds.LocalRoot = "", h.img.tree
	out := h.must(ds, asUser)
	if !strings.Contains(out, "from-the-image\n4242\n") || !strings.Contains(out, "Read-only") {
		t.Errorf("local root: %q", out)
	}
}

// TestStdinPassed checks that the command reads the caller's stdin.
func TestStdinPassed(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	c := asUser
	c.stdin = bufio.NewReader(strings.NewReader("line one\nline two\n"))
	if out := h.must(h.spec("loop", "wc", "-l"), c); strings.TrimSpace(out) != "2" {
		t.Errorf("wc -l of stdin = %q", out)
	}
}

// TestClosedStdio starts the caller with stdin closed: the image, opened
// by the caller, must not become the command's stdin.
func TestClosedStdio(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	spec := writeSpec(t, h, h.spec("loop", "sh", "-c", "readlink /proc/$$/fd/0; head -c 4 2>/dev/null; true"))
	for _, c := range []struct {
		name, bin string
		cred      *syscall.Credential
	}{
		// The setuid Go runtime puts a harmless file on closed 0-2.
		{"setuid-user", h.suid, &syscall.Credential{Uid: testUID, Gid: testGID}},
		// Not setuid: whatever the caller's process opens first takes fd
		// 0 (the Go runtime's epoll descriptor, here); were it the image,
		// Run would refuse it (204).
		{"root", h.driver, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", "exec "+c.bin+" <&-")
			cmd.Env = []string{driverEnv + "=" + spec}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, _ := cmd.Output()
			code := cmd.ProcessState.ExitCode()
			if code != 0 && code != 204 || strings.Contains(string(out), "hsqs") || strings.Contains(string(out), ".squashfs") {
				t.Errorf("exit %d, stdout %q, stderr %q; want the image neither as stdin nor read", code, out, stderr.String())
			}
		})
	}
}

// TestSetuidDriverRefusesForeignSpec: the setuid copy of the test binary
// exists while the tests run; it must not run a spec (with a root hook)
// written by someone else.
func TestSetuidDriverRefusesForeignSpec(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	userDir := h.mkdir("userdir", 0o755, testUID, testGID)
	marker := filepath.Join(h.dir, "pwned")
	ds := h.spec("loop", "true")
	ds.PreMountHook = "touch " + marker
	spec := writeSpec(t, h, ds)
	foreign := filepath.Join(userDir, "spec.json")
	b, _ := os.ReadFile(spec)
	os.WriteFile(foreign, b, 0o644)
	os.Chown(foreign, testUID, testGID)
	cmd := exec.Command(h.suid)
	cmd.Env = []string{driverEnv + "=" + foreign}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testUID, Gid: testGID}}
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 250 {
		t.Errorf("setuid driver with a user's spec: exit %d, want 250\n%s", cmd.ProcessState.ExitCode(), out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the user's hook ran as root")
	}
}

// TestFileCapabilityGivesNothing runs a cap_dac_read_search+ep program of
// the image: it cannot read a root-only file inside. On the host, the same
// program with the same xattr can, so the test would notice.
func TestFileCapabilityGivesNothing(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		if !h.img.fcap {
			t.Skip("no C compiler or no security xattrs here")
		}
		hostCopy := filepath.Join(h.dir, "fcaptest")
		b, _ := os.ReadFile(h.img.fcapSrc)
		os.WriteFile(hostCopy, b, 0o755)
		if err := setFileCap(hostCopy, unix.CAP_DAC_READ_SEARCH); err != nil {
			t.Skipf("setting a file capability: %v", err)
		}
		cmd := exec.Command(hostCopy, filepath.Join(h.img.tree, "secret/file"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testUID, Gid: testGID}}
		if base, err := cmd.Output(); err != nil || string(base) != "read-ok\n" {
			t.Skipf("file capabilities do not work on the host here (%q, %v)", base, err)
		}
		if out := h.must(h.spec(mode, "/fcap/fcaptest"), asUser); out != "read-denied\n" {
			t.Errorf("file-capability program inside: %q, want read-denied", out)
		}
	})
}

// TestCallerUmaskAndLimits: the command gets the caller's umask and
// resource limits, not the runtime's.
func TestCallerUmaskAndLimits(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	prlimit := testutil.RequireTool(t, "prlimit")
	data := h.mkdir("umaskdata", 0o755, testUID, testGID)
	ds := h.spec("loop", "sh", "-c", "umask; ulimit -n; ulimit -s; touch /data/f; stat -c %a /data/f")
	ds.Volumes = data + ":/data"
	spec := writeSpec(t, h, ds)
	cmd := exec.Command("/bin/sh", "-c", "umask 027; exec "+prlimit+" --nofile=64:4096 --stack=4194304:unlimited "+h.suid)
	cmd.Env = []string{driverEnv + "=" + spec}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testUID, Gid: testGID}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got, want := lines(string(out)), []string{"0027", "64", "4096", "640"}; !slices.Equal(got, want) {
		t.Errorf("umask, nofile, stack (KiB), mode of a new file = %q, want %q", got, want)
	}
}
