// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/launcher"
)

// These tests run the real binary on a real busybox image (mksquashfs),
// as root and through a setuid-root install run by nobody. The runtime's
// full behaviour (mounts, isolation, leaks) is tested in tests/runtime;
// here it is the front end's wiring: flags, config, image store, exit
// statuses, environment, credentials.

type fixture struct {
	dir             string // 0755, removed at the end
	store           string
	id              string // public image, tag busybox:latest
	privID          string // image only uid 4321 may use
	shifter, helper string
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func setup(t *testing.T) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	mksquashfs := testutil.RequireTool(t, "mksquashfs")
	busybox := testutil.RequireTool(t, "busybox")
	shifter := testutil.Binary(t, "shifter")
	helper := testutil.Binary(t, "shifter-mount") // next to shifter: found as its sibling
	fixOnce.Do(func() { fix, fixErr = makeFixture(mksquashfs, busybox) })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	fix.shifter, fix.helper = shifter, helper
	return fix
}

func makeFixture(mksquashfs, busybox string) (*fixture, error) {
	dir, err := os.MkdirTemp("", "shifter-cmd-test-")
	if err != nil {
		return nil, err
	}
	f := &fixture{dir: dir, store: filepath.Join(dir, "store")}
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{tree + "/bin", tree + "/etc", tree + "/app", f.store} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(tree+"/bin/busybox", b, 0o755); err != nil {
		return nil, err
	}
	for _, a := range []string{"sh", "id", "env", "pwd", "echo", "true", "cat", "kill"} {
		if err := os.Symlink("busybox", tree+"/bin/"+a); err != nil {
			return nil, err
		}
	}
	pub := func(seed string, tags []string, uids []uint32) (string, error) {
		tmp, err := imagestore.CreateTemp(f.store)
		if err != nil {
			return "", err
		}
		tmp.Close()
		if out, err := exec.Command(mksquashfs, tree, tmp.Name(), "-noappend", "-quiet", "-all-root").CombinedOutput(); err != nil {
			return "", fmt.Errorf("mksquashfs: %v: %s", err, out)
		}
		id := fmt.Sprintf("%064x", len(seed)) // distinct per seed length
		m := &imagestore.Metadata{ID: id, Tags: tags, UserACL: uids, Created: time.Now(),
			Env: []string{"PATH=/bin", "V=image", "IMG=1"}, Entrypoint: []string{"/bin/echo", "entry"}, Cmd: []string{"cmd"}, WorkDir: "/app"}
		return id, imagestore.Publish(f.store, tmp.Name(), m)
	}
	if f.id, err = pub("public", []string{"busybox:latest"}, nil); err != nil {
		return nil, err
	}
	if f.privID, err = pub("private-image", []string{"secret:1"}, []uint32{4321}); err != nil {
		return nil, err
	}
	return f, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

func (f *fixture) config(t *testing.T, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "udiRoot.conf")
	body := fmt.Sprintf("imagePath=%s\nudiMount=/var/udiMount\nsiteEnv=SITE=1 V=site-wins-over-env\n%s", f.store, extra)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs cmd and returns stdout, stderr and the exit status.
func run(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

func TestAsRoot(t *testing.T) {
	f := setup(t)
	for _, mode := range []string{"loop", "fuse"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "loop" {
				testutil.RequireLoop(t)
			} else {
				testutil.RequireFUSE(t)
			}
			cfg := f.config(t, "imageMount="+mode+"\n")
			tests := []struct {
				name string
				args []string
				out  string
				code int
			}{
				{"command", []string{"--image=busybox", "echo", "hi"}, "hi\n", 0},
				{"no command is /bin/sh", []string{"--image=busybox"}, "", 0},
				{"bare entrypoint", []string{"--image=busybox", "--entrypoint"}, "entry cmd\n", 0},
				{"bare entrypoint with args", []string{"--image=busybox", "--entrypoint", "a", "b"}, "entry a b\n", 0},
				{"entrypoint value", []string{"--image=busybox", "--entrypoint=/bin/echo", "x"}, "x\n", 0},
				{"bare workdir", []string{"--image=busybox", "--workdir", "pwd"}, "/app\n", 0},
				{"attached workdir", []string{"-i", "busybox", "-w/etc", "pwd"}, "/etc\n", 0},
				{"id image", []string{"--image=id:" + f.id, "echo", "ok"}, "ok\n", 0},
				{"env precedence", []string{"-i", "busybox", "-e", "V=flag", "sh", "-c", "echo $V $IMG $SITE $SHIFTER_IMAGE"}, "site-wins-over-env 1 1 " + f.id + "\n", 0},
				{"env flag beats image", []string{"-i", "busybox", "-e", "IMG=flag", "sh", "-c", "echo $IMG"}, "flag\n", 0},
				{"clearenv", []string{"-E", "-i", "busybox", "sh", "-c", "echo ${HOME:-none}"}, "none\n", 0},
				{"exit status", []string{"-i", "busybox", "sh", "-c", "exit 42"}, "", 42},
				{"signal", []string{"-i", "busybox", "sh", "-c", "kill -TERM $$"}, "", 143},
				{"not found", []string{"-i", "busybox", "/nonexistent"}, "", 127},
				{"unknown image", []string{"-i", "nope:1", "true"}, "", launcher.ExitUnknownImage},
				{"bad volume", []string{"-i", "busybox", "-V", "/tmp:/etc/x", "true"}, "", launcher.ExitBadVolume},
				{"usage", []string{"--bogus"}, "", launcher.ExitUsage},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					cmd := exec.Command(f.shifter, tc.args...)
					cmd.Env = append(os.Environ(), "SHIFTER_CONFIG="+cfg, "V=host")
					cmd.Stdin = strings.NewReader("")
					out, errOut, code := run(t, cmd)
					if code != tc.code || (tc.out != "" || tc.code == 0) && out != tc.out {
						t.Errorf("shifter %q: status %d, stdout %q; want %d, %q\nstderr: %s", tc.args, code, out, tc.code, tc.out, errOut)
					}
					if tc.code >= 64 && tc.code <= 78 && (strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "shifter: ")) {
						t.Errorf("setup failure stderr %q, want one line", errOut)
					}
				})
			}
		})
	}
}

// TestSetuid installs shifter setuid root in a root-owned directory with
// its configuration at the build-time path, and runs it as nobody.
func TestSetuid(t *testing.T) {
	f := setup(t)
	testutil.RequireTool(t, "setpriv")
	// The configuration and every directory above it must be root-owned
	// and not writable by others: not under /tmp.
	prefix, err := os.MkdirTemp("/var/lib", "shifter-setuid-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(prefix) })
	if err := os.Chmod(prefix, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(prefix, "udiRoot.conf")
	bin := filepath.Join(prefix, "shifter")
	build := exec.Command("go", "build", "-o", bin, "-ldflags",
		"-X github.com/shifter-go/shifter/udiroot.DefaultPath="+conf+" -X github.com/shifter-go/shifter/launcher.DefaultMountHelper="+f.helper, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if err := os.Chmod(bin, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	writeConf := func(extra string) {
		if err := os.WriteFile(conf, []byte(fmt.Sprintf("imagePath=%s\n%s", f.store, extra)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConf("")
	// Under /tmp, which the container has too (--env-file is read in the
	// container, as the user).
	tmpDir, err := os.MkdirTemp("/tmp", "shifter-setuid-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmpDir) })
	if err := os.Chmod(tmpDir, 0o755); err != nil {
		t.Fatal(err)
	}
	shadowLike := filepath.Join(tmpDir, "root-only.env")
	if err := os.WriteFile(shadowLike, []byte("SECRET=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nobody := func(env []string, args ...string) (string, string, int) {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", bin}, args...)...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
		cmd.Dir = "/"
		return run(t, cmd)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		out  string
		code int
		msg  string
	}{
		{"identity", nil, []string{"-i", "busybox", "id", "-u"}, "65534\n", 0, ""},
		{"caps and no_new_privs", nil, []string{"-i", "busybox", "sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '"}, "CapEff: 0000000000000000\nCapBnd: 0000000000000000\nNoNewPrivs: 1\n", 0, ""},
		{"loader variables dropped", []string{"LD_PRELOAD=/nonexistent/x.so", "LD_LIBRARY_PATH=/tmp", "GCONV_PATH=/tmp"}, []string{"-i", "busybox", "sh", "-c", "env | grep -cE '^(LD_|GCONV|GOTRACEBACK)' || true"}, "0\n", 0, ""},
		{"SHIFTER_CONFIG ignored", []string{"SHIFTER_CONFIG=/nonexistent"}, []string{"-i", "busybox", "true"}, "", 0, ""},
		{"env-file of the host's /etc/shadow", nil, []string{"-i", "busybox", "--env-file=/etc/shadow", "true"}, "", launcher.ExitUsage, "not found in the container"},
		{"env-file only root can read", nil, []string{"-i", "busybox", "--env-file=" + shadowLike, "true"}, "", launcher.ExitNoPerm, "not readable by uid 65534"},
		{"private image by id", nil, []string{"-i", "id:" + f.privID, "true"}, "", launcher.ExitNoPerm, "access denied"},
		{"private image by tag", nil, []string{"-i", "secret:1", "true"}, "", launcher.ExitUnknownImage, "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := nobody(tc.env, tc.args...)
			if code != tc.code || tc.code == 0 && out != tc.out || !strings.Contains(errOut, tc.msg) {
				t.Errorf("status %d stdout %q stderr %q; want %d %q containing %q", code, out, errOut, tc.code, tc.out, tc.msg)
			}
		})
	}
	// Issue #17 item 13: the caller's Go runtime variables do not reach
	// the setuid runtime (GODEBUG=inittrace=1 made it print a trace of its
	// package initialisation on stderr), and the command still gets them.
	t.Run("Go runtime variables", func(t *testing.T) {
		env := []string{"GODEBUG=inittrace=1", "GOTRACEBACK=crash", "GOMAXPROCS=1", "GOGC=off", "GOMEMLIMIT=1MiB", "TZ=UTC0"}
		out, errOut, code := nobody(env, "-i", "busybox", "sh", "-c", `echo "$GODEBUG $GOTRACEBACK $GOMAXPROCS $GOGC $GOMEMLIMIT $TZ"`)
		if code != 0 || out != "inittrace=1 crash 1 off 1MiB UTC0\n" || errOut != "" {
			t.Errorf("status %d stdout %q stderr %q; want 0, the caller's values, no runtime trace", code, out, errOut)
		}
	})
	// Issue #17 item 12: the setuid runtime starts under a low ulimit -v,
	// and the command runs under the caller's limit.
	t.Run("address-space limit", func(t *testing.T) {
		prlimit := testutil.RequireTool(t, "prlimit")
		// A setuid-root process's permitted set is the bounding set.
		canRaise := hasCap(t, "CapBnd", capSysResource)
		for _, soft := range asLimits {
			for _, hard := range []uint64{0, soft} {
				hardArg := "unlimited"
				if hard != 0 {
					hardArg = fmt.Sprint(hard)
				}
				cmd := exec.Command(prlimit, fmt.Sprintf("--as=%d:%s", soft, hardArg), "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
					bin, "-i", "busybox", "sh", "-c", "ulimit -S -v; ulimit -H -v")
				cmd.Env = []string{"PATH=/usr/bin:/bin"}
				cmd.Dir = "/"
				out, errOut, code := run(t, cmd)
				checkLimitRun(t, soft, hard, canRaise, out, errOut, code)
			}
		}
	})
	t.Run("config not owned by root", func(t *testing.T) {
		if err := os.Chown(conf, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		defer os.Chown(conf, 0, 0)
		_, errOut, code := nobody(nil, "-i", "busybox", "true")
		if code != launcher.ExitConfig || !strings.Contains(errOut, "not trusted") {
			t.Errorf("status %d stderr %q, want %d not trusted", code, errOut, launcher.ExitConfig)
		}
	})
	t.Run("config group-writable", func(t *testing.T) {
		if err := os.Chmod(conf, 0o664); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(conf, 0o644)
		_, errOut, code := nobody(nil, "-i", "busybox", "true")
		if code != launcher.ExitConfig || !strings.Contains(errOut, "not trusted") {
			t.Errorf("status %d stderr %q, want %d not trusted", code, errOut, launcher.ExitConfig)
		}
	})
}

// TestUnprivileged runs the binary without the setuid bit as nobody: the
// container is built in a user namespace with the FUSE mount where
// /dev/fuse and user namespaces are usable, else shifter says what is
// missing (exit status 69).
func TestUnprivileged(t *testing.T) {
	f := setup(t)
	testutil.RequireTool(t, "setpriv")
	dir, err := os.MkdirTemp("", "shifter-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "udiRoot.conf")
	if err := os.WriteFile(conf, []byte("imagePath="+f.store+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", f.shifter, "-i", "busybox", "id", "-u")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "SHIFTER_CONFIG=" + conf}
	cmd.Dir = "/"
	out, errOut, code := run(t, cmd)
	fuseOK := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", "test -r /dev/fuse -a -w /dev/fuse").Run() == nil
	switch {
	case code == 0:
		if out != "65534\n" {
			t.Errorf("id -u = %q, want 65534", out)
		}
	case code == launcher.ExitUnavailable && !fuseOK:
		if !strings.Contains(errOut, "/dev/fuse") {
			t.Errorf("stderr %q does not say /dev/fuse is missing", errOut)
		}
		t.Logf("unprivileged mode unavailable here, as reported: %s", errOut)
	default:
		t.Errorf("status %d stdout %q stderr %q (nobody can use /dev/fuse: %v)", code, out, errOut, fuseOK)
	}
}
