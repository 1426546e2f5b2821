// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/launcher"
)

// The caller of the installed-binary tests: nobody has an NSS entry on
// every Debian system, which the front end needs.
const (
	nobodyUID = 65534
	nobodyGID = 65534
)

// installation is a shifter installed for the tests: a setuid-root
// binary, shifter-mount and udiRoot.conf in a root-owned directory (what
// a setuid shifter trusts), an image store with the test image, and a
// udiMount.
type installation struct {
	t       *testing.T
	h       *harness
	dir     string // under /run: root-owned, not writable by others
	shifter string // setuid root
	plain   string // the same binary, not setuid
	conf    string
	store   string
	id      string
}

// installed is the installation's directory and binaries, built once per
// test process (TestMain removes it); each test writes its own store and
// udiRoot.conf there.
var (
	installOnce sync.Once
	installed   *installation
	installErr  error
)

func install(t *testing.T, h *harness) *installation {
	t.Helper()
	testutil.RequireRoot(t)
	root := testutil.ModuleRoot(t)
	installOnce.Do(func() { installed, installErr = buildInstallation(root) })
	if installErr != nil {
		t.Fatal(installErr)
	}
	in := *installed
	in.t, in.h = t, h
	in.store = filepath.Join(h.dir, "images")
	os.MkdirAll(in.store, 0o755)
	sum := sha256.Sum256([]byte("runtime test image " + h.dir))
	in.id = hex.EncodeToString(sum[:])
	tmp, err := imagestore.CreateTemp(in.store)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.Open(h.img.squashfs)
	io.Copy(tmp, src)
	src.Close()
	tmp.Close()
	err = imagestore.Publish(in.store, tmp.Name(), &imagestore.Metadata{
		ID: in.id, Tags: []string{imagestore.NormalizeTag("shiftertest/busybox:1")},
		Env: []string{"PATH=/bin:/usr/bin", "IMAGE_VAR=from-image"}, WorkDir: "/usr/share/doc",
	})
	if err != nil {
		t.Fatal(err)
	}
	in.config("loop", "")
	return &in
}

// buildInstallation builds the setuid shifter, its plain copy and
// shifter-mount into a root-owned directory under /run.
func buildInstallation(moduleRoot string) (*installation, error) {
	dir, err := os.MkdirTemp("/run", "shifter-test-")
	if err != nil {
		return nil, fmt.Errorf("no root-owned directory for the installation: %w", err)
	}
	installDir = dir
	os.Chmod(dir, 0o755)
	in := &installation{dir: dir, conf: filepath.Join(dir, "udiRoot.conf")}
	in.shifter = filepath.Join(dir, "shifter")
	in.plain = filepath.Join(dir, "shifter-plain")
	helper := filepath.Join(dir, "shifter-mount")
	ldflags := fmt.Sprintf("-X github.com/shifter-go/shifter/udiroot.DefaultPath=%s -X github.com/shifter-go/shifter/launcher.DefaultMountHelper=%s", in.conf, helper)
	build := exec.Command("go", "build", "-o", in.shifter, "-ldflags", ldflags, "./cmd/shifter")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building cmd/shifter: %v\n%s", err, out)
	}
	b, err := os.ReadFile(in.shifter)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(in.plain, b, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(in.shifter, os.ModeSetuid|0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat("/dev/fuse"); err == nil {
		build := exec.Command("go", "build", "-o", helper, "./cmd/shifter-mount")
		build.Dir = moduleRoot
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building cmd/shifter-mount: %v\n%s", err, out)
		}
		os.Chmod(helper, 0o755)
	}
	return in, nil
}

// config writes udiRoot.conf for the image mount mode, plus extra lines.
func (in *installation) config(mode, extra string) {
	in.t.Helper()
	conf := fmt.Sprintf("imagePath=%s\nudiMount=%s\nsystem=default\ndefaultImageType=docker\nimageMount=%s\nsiteEnv=SHIFTER_RUNTIME=1\n%s",
		in.store, in.h.udi(), mode, extra)
	if err := os.WriteFile(in.conf, []byte(conf), 0o644); err != nil {
		in.t.Fatal(err)
	}
	os.Chown(in.conf, 0, 0)
	os.Chmod(in.conf, 0o644)
}

// run runs shifter with args as nobody (the setuid binary) and returns
// the result.
func (in *installation) run(bin string, env []string, args ...string) result {
	in.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}, env...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID, Groups: []uint32{nobodyGID}}}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Run()
	return result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

func TestInstalledShifter(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	data := h.mkdir("sdata", 0o755, nobodyUID, nobodyGID)
	closed := h.mkdir("sclosed", 0o700, 0, 0)
	outputs := map[string]string{}
	for _, mode := range []string{"loop", "fuse"} {
		t.Run(mode, func(t *testing.T) {
			requireMode(t, mode)
			in.t = t
			in.config(mode, "")
			r := in.run(in.shifter, nil, "--image=id:"+in.id, "--volume="+data+":/data/nested", "--",
				"sh", "-c", "id -u; id -g; id -G; pwd; echo $IMAGE_VAR $SHIFTER_RUNTIME; grep -E '^(Cap|NoNewPrivs)' /proc/self/status; "+
					"echo hello > /data/nested/f; (touch /etc/x) 2>&1; cat /etc/image-marker")
			if r.code != 0 {
				t.Fatalf("shifter: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			l := lines(r.stdout)
			if !slices.Equal(l[:5], []string{"65534", "65534", "65534", "/", "from-image 1"}) {
				t.Errorf("id -u/-g/-G, pwd, env = %q", l[:5])
			}
			checkStatus(t, r.stdout)
			for _, want := range []string{"/etc/x: Read-only file system", "from-the-image"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, r.stdout)
				}
			}
			// The shell's descriptors, listed by a child (the "; true"
			// keeps sh from exec'ing ls in its place).
			if r := in.run(in.shifter, nil, "--image=id:"+in.id, "sh", "-c", "ls -l /proc/$$/fd; true"); strings.Count(r.stdout, " -> ") != 3 {
				t.Errorf("fds inside: %q, want 0 1 2\n%s", r.stdout, r.stderr)
			}
			if b, _ := os.ReadFile(filepath.Join(data, "f")); string(b) != "hello\n" {
				t.Errorf("volume write landed as %q", b)
			}
			outputs[mode] = r.stdout

			// The image's WORKDIR and the docker tag.
			if r := in.run(in.shifter, nil, "--image=shiftertest/busybox:1", "--workdir", "pwd"); r.code != 0 || r.stdout != "/usr/share/doc\n" {
				t.Errorf("--workdir: exit %d %q %s", r.code, r.stdout, r.stderr)
			}
			// Exit status of the command and of setup failures.
			for _, tc := range []struct {
				args []string
				code int
			}{
				{[]string{"--image=id:" + in.id, "sh", "-c", "exit 7"}, 7},
				{[]string{"--image=id:" + in.id, "sh", "-c", "kill -INT $$"}, 130},
				{[]string{"--image=id:" + in.id, "no-such-command"}, 127},
				{[]string{"--image=id:" + in.id, "--volume=" + data + ":/etc", "true"}, launcher.ExitBadVolume},
				{[]string{"--image=id:" + in.id, "--volume=" + data + ":/data-to-etc", "true"}, launcher.ExitBadVolume},
				{[]string{"--image=id:" + in.id, "--volume=" + closed + ":/c", "true"}, launcher.ExitNoPerm},
			} {
				if r := in.run(in.shifter, nil, tc.args...); r.code != tc.code {
					t.Errorf("shifter %q: exit %d, want %d\n%s", tc.args, r.code, tc.code, r.stderr)
				}
			}
		})
	}
	if outputs["loop"] != "" && outputs["fuse"] != "" && outputs["loop"] != outputs["fuse"] {
		t.Errorf("loop and fuse outputs differ:\n%s\n--\n%s", outputs["loop"], outputs["fuse"])
	}

	t.Run("config-not-root-owned", func(t *testing.T) {
		in.t = t
		in.config("loop", "")
		os.Chown(in.conf, nobodyUID, nobodyGID)
		defer os.Chown(in.conf, 0, 0)
		if r := in.run(in.shifter, nil, "--image=id:"+in.id, "true"); r.code != launcher.ExitConfig {
			t.Errorf("config owned by nobody: exit %d, want %d\n%s", r.code, launcher.ExitConfig, r.stderr)
		}
	})

	t.Run("ld-preload", func(t *testing.T) {
		h := h.with(t)
		in.t = t
		in.config("loop", "sitePreMountHook=/bin/true\n")
		gcc, err := exec.LookPath("gcc")
		if err != nil {
			t.Skip("needs gcc")
		}
		logFile := filepath.Join(h.dir, "shifter-preload.log")
		os.WriteFile(logFile, nil, 0o666)
		os.Chmod(logFile, 0o666)
		src := filepath.Join(h.dir, "evil2.c")
		os.WriteFile(src, []byte(fmt.Sprintf(`#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {
	FILE *f = fopen(%q, "a");
	if (f) { fprintf(f, "loaded euid=%%d\n", (int)geteuid()); fclose(f); }
}
`, logFile)), 0o644)
		lib := filepath.Join(h.dir, "evil2.so")
		if out, err := exec.Command(gcc, "-shared", "-fPIC", "-o", lib, src).CombinedOutput(); err != nil {
			t.Skipf("gcc: %v\n%s", err, out)
		}
		os.Chmod(lib, 0o755)
		r := in.run(in.shifter, []string{"LD_PRELOAD=" + lib, "LD_LIBRARY_PATH=" + h.dir, "GCONV_PATH=" + h.dir},
			"--image=id:"+in.id, "env")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		if b, _ := os.ReadFile(logFile); strings.Contains(string(b), "euid=0") {
			t.Errorf("the caller's LD_PRELOAD ran with euid 0:\n%s", b)
		}
		if strings.Contains(r.stdout, "LD_PRELOAD") || strings.Contains(r.stdout, "GCONV_PATH") {
			t.Errorf("loader variables reached the container:\n%s", r.stdout)
		}
	})

	t.Run("unprivileged", func(t *testing.T) {
		h := h.with(t)
		in.t = t
		in.config("auto", "")
		testutil.RequireFUSE(t)
		unshare := testutil.RequireTool(t, "unshare")
		setpriv := testutil.RequireTool(t, "setpriv")
		node := filepath.Join(h.dir, "fuse-node-shifter")
		script := fmt.Sprintf("mknod -m 666 %s c 10 229 && mount --bind %s /dev/fuse && exec %s --reuid=%d --regid=%d --clear-groups --inh-caps=-all %s --image=id:%s --volume=%s:/data sh -c 'id -u; id -g; cat /data/f; grep -E \"^(Cap|NoNewPrivs)\" /proc/self/status' 2>&1",
			node, node, setpriv, nobodyUID, nobodyGID, in.plain, in.id, data)
		cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", script)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SHIFTER_CONFIG=" + in.conf}
		cmd.Dir = "/"
		out, _ := cmd.Output()
		if cmd.ProcessState.ExitCode() != 0 || !strings.HasPrefix(string(out), "65534\n65534\nhello\n") {
			t.Fatalf("unprivileged shifter: exit %d:\n%s", cmd.ProcessState.ExitCode(), out)
		}
		checkStatus(t, string(out))
	})
}

// TestFUSEHelperFailure: in fuse mode the runtime starts the helper
// before the namespace init and the init does not wait for it; an image
// the helper cannot read (not a squashfs, a damaged superblock) must still
// end the start with the helper's own message, exit status 69 and nothing
// left behind: no mount, no helper, no namespace.
func TestFUSEHelperFailure(t *testing.T) {
	requireMode(t, "fuse")
	for _, tc := range []struct {
		name    string
		corrupt func(b []byte) []byte
		want    string
	}{
		// The size stays the metadata's: the runtime checks it itself.
		{"not a squashfs", func(b []byte) []byte { return bytes.Repeat([]byte{'x'}, len(b)) }, "magic"},
		{"superblock zeroed", func(b []byte) []byte { clear(b[:96]); return b }, "magic"},
		{"tables past the end", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[64:], uint64(len(b))*4) // the inode table's start
			return b
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			in := install(t, h)
			in.config("fuse", "")
			sq, _ := imagestore.Paths(in.store, in.id)
			b, err := os.ReadFile(sq)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(sq, tc.corrupt(b), 0o644); err != nil {
				t.Fatal(err)
			}
			done := make(chan result, 1)
			go func() { done <- in.run(in.shifter, nil, "--image=id:"+in.id, "cat", "/etc/image-marker") }()
			var r result
			select {
			case r = <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("the start hangs on a helper that failed")
			}
			if r.code == 0 || !strings.Contains(r.stderr, "shifter-mount") || (tc.want != "" && !strings.Contains(r.stderr, tc.want)) {
				t.Fatalf("exit %d, want a failure naming the helper's error %q\n%s%s", r.code, tc.want, r.stdout, r.stderr)
			}
			t.Logf("exit %d: %s", r.code, r.stderr)
			if p := processesWith(sq); len(p) > 0 {
				t.Errorf("left running: %v", p)
			}
			for _, m := range testutil.Mounts(t) {
				if strings.Contains(m.Source, in.id) || strings.HasPrefix(m.MountPoint, h.udi()) {
					t.Errorf("mount left: %+v", m)
				}
			}
		})
	}
}
