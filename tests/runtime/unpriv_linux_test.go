// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shifter-go/shifter/internal/testutil"
)

// unprivRun runs the plain (not setuid) driver as the test user in
// unprivileged mode. The host's /dev/fuse may be root-only (some test
// machines have it 0600, where Debian has 0666); the caller gets a private
// mount namespace with a /dev/fuse node of mode fuseMode bound over it, so
// the host is left as it is.
func (h *harness) unprivRun(ds driverSpec, fuseMode string) result {
	h.t.Helper()
	testutil.RequireRoot(h.t)
	testutil.RequireFUSE(h.t)
	unshare := testutil.RequireTool(h.t, "unshare")
	setpriv := testutil.RequireTool(h.t, "setpriv")
	ds.Unprivileged = true
	ds.Mode = "fuse"
	ds.MountHelper = mountHelper(h.t)
	spec := writeSpec(h.t, h, ds)
	node := filepath.Join(h.dir, fmt.Sprintf("fuse-node-%d", nodeSeq.Add(1)))
	script := fmt.Sprintf("mknod -m %s %s c 10 229 && mount --bind %s /dev/fuse && exec %s --reuid=%d --regid=%d --init-groups --inh-caps=-all %s 2>&1",
		fuseMode, node, node, setpriv, testUID, testGID, h.driver)
	// setpriv --init-groups needs a passwd entry; without one, clear groups.
	script = strings.Replace(script, "--init-groups", "--clear-groups", 1)
	cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", script)
	cmd.Env = []string{driverEnv + "=" + spec, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	out, _ := cmd.Output()
	return result{stdout: string(out), code: cmd.ProcessState.ExitCode()}
}

var nodeSeq atomic.Int64

func TestUnprivileged(t *testing.T) {
	h := newHarness(t)
	data := h.mkdir("data", 0o755, testUID, testGID)
	ro := h.mkdir("ro", 0o755, testUID, testGID)
	closed := h.mkdir("closed", 0o700, 0, 0)
	nested := h.mkdir("nested", 0o755, testUID, testGID)

	t.Run("identity-caps-volumes", func(t *testing.T) {
		h := h.with(t)
		ds := h.spec("", "sh", "-c", strings.Join([]string{
			"id -u; id -g",
			"grep -E '^(Cap|NoNewPrivs)' /proc/self/status",
			"echo hi > /data/f; echo nested > /usr/share/doc/new/f; (touch /ro/x) 2>&1; (touch /etc/x) 2>&1; cat /etc/image-marker",
			"ls -l /proc/$$/fd",
		}, "; "))
		ds.Volumes = data + ":/data;" + ro + ":/ro:ro;" + nested + ":/usr/share/doc/new"
		r := h.unprivRun(ds, "666")
		if r.code != 0 {
			t.Fatalf("exit %d:\n%s", r.code, r.stdout)
		}
		l := lines(r.stdout)
		if len(l) < 2 || l[0] != "4242" || l[1] != "4242" {
			t.Errorf("id -u, -g = %q, want 4242 4242", l)
		}
		checkStatus(t, r.stdout)
		for dir, want := range map[string]string{data: "hi\n", nested: "nested\n"} {
			if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != want {
				t.Errorf("host %s/f = %q, want %q", dir, b, want)
			}
		}
		for _, want := range []string{"/ro/x: Read-only file system", "/etc/x: Read-only file system", "from-the-image"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, r.stdout)
			}
		}
		if n := strings.Count(r.stdout, " -> "); n != 3 {
			t.Errorf("open fds inside = %d, want 3:\n%s", n, r.stdout)
		}
	})

	t.Run("same-output-as-setuid", func(t *testing.T) {
		h := h.with(t)
		script := "id -u; id -g; cat /etc/passwd; find /bin /usr | sort | md5sum; stat -c '%a' /suid/suidtest 2>/dev/null; true"
		un := h.unprivRun(h.spec("", "sh", "-c", script), "666")
		c := asUser
		c.groups = []uint32{testGID}
		su := h.run(h.spec("loop", "sh", "-c", script), c)
		if un.code != 0 || su.code != 0 || un.stdout != su.stdout {
			t.Errorf("unprivileged (exit %d):\n%s\nsetuid loop (exit %d):\n%s%s", un.code, un.stdout, su.code, su.stdout, su.stderr)
		}
	})

	t.Run("unreadable-source", func(t *testing.T) {
		h := h.with(t)
		ds := h.spec("", "true")
		ds.Volumes = closed + ":/v"
		if r := h.unprivRun(ds, "666"); r.code != 202 {
			t.Errorf("exit %d, want 202 (ErrAccess):\n%s", r.code, r.stdout)
		}
	})

	t.Run("no-fuse-access", func(t *testing.T) {
		h := h.with(t)
		r := h.unprivRun(h.spec("", "true"), "600")
		if r.code != 207 || !strings.Contains(r.stdout, "/dev/fuse") {
			t.Errorf("exit %d, want 207 (ErrFUSE) naming /dev/fuse:\n%s", r.code, r.stdout)
		}
	})

	t.Run("missing-udiMount", func(t *testing.T) {
		h := h.with(t)
		before, _ := filepath.Glob("/tmp/shifter-udi-*")
		ds := h.spec("", "sh", "-c", "cat /etc/image-marker; grep ' /tmp/' /proc/self/mountinfo; echo end")
		ds.UDIMount = filepath.Join(h.dir, "no-such-udi")
		r := h.unprivRun(ds, "666")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "from-the-image\n") {
			t.Fatalf("exit %d:\n%s", r.code, r.stdout)
		}
		// No copy of the container under its own /tmp.
		if strings.Contains(r.stdout, "shifter-udi-") {
			t.Errorf("the container's own mounts show under its /tmp:\n%s", r.stdout)
		}
		after, _ := filepath.Glob("/tmp/shifter-udi-*")
		if len(after) > len(before) {
			t.Errorf("temporary udiMount left behind: %v", after)
		}
	})

	t.Run("setuid-program", func(t *testing.T) {
		h := h.with(t)
		if !h.img.suid {
			t.Skip("no setuid test program")
		}
		r := h.unprivRun(h.spec("", "/suid/suidtest"), "666")
		if r.code != 0 || !slices.Contains(lines(r.stdout), "4242 4242 setuid-refused") {
			t.Errorf("exit %d: %q", r.code, r.stdout)
		}
	})
}
