// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestVolumes(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		data := h.mkdir("data", 0o755, testUID, testGID)
		deep := h.mkdir("deep", 0o755, testUID, testGID)
		indir := h.mkdir("indir", 0o755, testUID, testGID)
		ro := h.mkdir("ro", 0o755, testUID, testGID)
		os.WriteFile(filepath.Join(ro, "in-ro"), []byte("read only\n"), 0o644)
		file := filepath.Join(h.dir, "single-file")
		os.WriteFile(file, []byte("one file\n"), 0o644)

		ds := h.spec(mode, "sh", "-c", strings.Join([]string{
			"echo written > /data/new",                    // a path the image lacks
			"echo nested > /data/sub/deeper/f",            // nested in another volume
			"echo in-image-dir > /usr/share/doc/newdir/f", // mount point in an image directory
			"cat /ro/in-ro",
			"(echo x > /ro/f) 2>&1",
			"cat /etc2/one",
			"cat /var/tmp/.shifter-probe 2>/dev/null; true",
		}, "; "))
		ds.Volumes = data + ":/data;" + deep + ":/data/sub/deeper;" + indir + ":/usr/share/doc/newdir;" +
			ro + ":/ro:ro;" + file + ":/etc2/one"
		out := h.must(ds, asUser)

		if b, _ := os.ReadFile(filepath.Join(data, "new")); string(b) != "written\n" {
			t.Errorf("write through /data landed as %q on the host", b)
		}
		if b, _ := os.ReadFile(filepath.Join(deep, "f")); string(b) != "nested\n" {
			t.Errorf("nested volume write landed as %q", b)
		}
		// The mount point for the nested volume was made on the host, in
		// the user's directory, by the user.
		if st, err := os.Stat(filepath.Join(data, "sub/deeper")); err != nil || st.Sys().(*syscall.Stat_t).Uid != testUID {
			t.Errorf("mount point /data/sub/deeper on the host: %v, want owned by the user", err)
		}
		if b, _ := os.ReadFile(filepath.Join(indir, "f")); string(b) != "in-image-dir\n" {
			t.Errorf("write through the volume in an image directory landed as %q", b)
		}
		for _, want := range []string{"read only", "Read-only file system", "one file"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if _, err := os.Stat(filepath.Join(ro, "f")); err == nil {
			t.Error("write to the :ro volume reached the host")
		}
	})
}

// TestVolumeOwnership checks that files written through a volume belong to
// the caller.
func TestVolumeOwnership(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	data := h.mkdir("data", 0o755, testUID, testGID)
	ds := h.spec("loop", "touch", "/data/mine")
	ds.Volumes = data + ":/data"
	h.must(ds, asUser)
	out, err := exec.Command("stat", "-c", "%u %g", filepath.Join(data, "mine")).Output()
	if err != nil || strings.TrimSpace(string(out)) != "4242 4242" {
		t.Errorf("owner of the file written inside = %q (%v), want 4242 4242", out, err)
	}
}

// TestReadOnlyRecursive binds a volume whose source has a submount (a
// tmpfs, mounted in a private namespace of the caller): :ro and nosuid,nodev
// must hold on the submount too, and the user cannot remount it writable.
func TestReadOnlyRecursive(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Skip("needs unshare (util-linux)")
		}
		src := h.mkdir("rsrc", 0o755, testUID, testGID)
		h.mkdir("rsrc/sub", 0o755, testUID, testGID)
		ds := h.spec(mode, "sh", "-c", "(touch /v/top) 2>&1; (touch /v/sub/x) 2>&1; grep ' /v' /proc/self/mountinfo; (mount -o remount,rw /v/sub) 2>&1; echo done")
		ds.Volumes = src + ":/v:ro"
		// Wrap the driver: a private namespace where the source has a
		// tmpfs submount. Runs as root; the container's user is root too.
		spec := writeSpec(t, h, ds)
		cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c",
			"mount -t tmpfs -o mode=0777 sub "+src+"/sub && exec "+h.driver)
		cmd.Env = []string{driverEnv + "=" + spec, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		outb, err := cmd.CombinedOutput()
		out := string(outb)
		if err != nil {
			t.Fatalf("run: %v\n%s", err, out)
		}
		if n := strings.Count(out, "Read-only file system"); n != 2 {
			t.Errorf("want both writes refused with EROFS, got:\n%s", out)
		}
		var mounts int
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) < 6 || (f[4] != "/v" && f[4] != "/v/sub") {
				continue
			}
			mounts++
			opts := f[5]
			for _, o := range []string{"ro", "nosuid", "nodev"} {
				if !strings.Contains(","+opts+",", ","+o+",") {
					t.Errorf("mount %q lacks %s", l, o)
				}
			}
		}
		if mounts != 2 {
			t.Errorf("want /v and /v/sub in mountinfo, got %d:\n%s", mounts, out)
		}
		if !strings.Contains(out, "mount: permission denied") && !strings.Contains(out, "Operation not permitted") {
			t.Errorf("remount rw of /v/sub was not refused:\n%s", out)
		}
	})
}

// TestVolumeDestinationAttacks: destinations that are symlinks in the
// image to /etc or out of the root, lexical tricks, and forbidden places.
func TestVolumeDestinationAttacks(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		src := h.mkdir("src", 0o755, testUID, testGID)
		for _, tc := range []struct {
			dest string
			code int // driver status: 201 refused (ErrBadVolume), 0 allowed
		}{
			{"/etc", 201},
			{"/./etc", 201},
			{"//etc", 201},
			{"/var/../etc", 201},
			{"/etc/x", 201},
			{"/opt", 201},
			{"/opt/udiImage/x", 201},
			{"/var", 201},
			{"/var/lib", 201},
			{"/proc", 201},
			{"/sys/x", 201},
			{"/dev/x", 201},
			{"/", 201},
			{"/data-to-etc", 201},      // symlink -> /etc
			{"/data-to-etc/x", 201},    // through it
			{"/escape-abs", 201},       // -> /../../../etc
			{"/escape-rel/sub", 201},   // -> ../../../etc
			{"/usr/share/link/x", 201}, // -> ../../../var/lib
			{"/escape-new/x", 201},     // dangling -> ../../shifter-escape-test: refused, nothing created
			{"/var/tmp/mine", 0},
		} {
			t.Run(strings.ReplaceAll(tc.dest, "/", "_"), func(t *testing.T) {
				h := h.with(t)
				ds := h.spec(mode, "sh", "-c", "echo inside > "+filepathJoinSlash(tc.dest, "f")+" && cat /shifter-escape-test/x/f 2>/dev/null; true")
				ds.Volumes = src + ":" + tc.dest
				r := h.run(ds, asUser)
				if r.code != tc.code {
					t.Fatalf("-V %s:%s: exit %d, want %d\nstderr: %s", src, tc.dest, r.code, tc.code, r.stderr)
				}
				if _, err := os.Stat("/shifter-escape-test"); err == nil {
					t.Fatal("a volume created /shifter-escape-test on the host")
				}
				if tc.code == 0 {
					if b, _ := os.ReadFile(filepath.Join(src, "f")); string(b) != "inside\n" {
						t.Errorf("volume at %s: host file %q", tc.dest, b)
					}
					os.Remove(filepath.Join(src, "f"))
				}
			})
		}
	})
}

func filepathJoinSlash(dir, name string) string { return strings.TrimSuffix(dir, "/") + "/" + name }

// TestVolumeSourceAccess: a source the caller cannot read is refused, even
// though the runtime runs as root.
func TestVolumeSourceAccess(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		closed := h.mkdir("closed", 0o700, 0, 0)
		os.WriteFile(filepath.Join(closed, "secret"), []byte("secret\n"), 0o600)
		hidden := h.mkdir("hidden/inner", 0o755, 0, 0)
		os.Chmod(filepath.Dir(hidden), 0o700)
		secretFile := filepath.Join(h.dir, "secret-file")
		os.WriteFile(secretFile, []byte("secret\n"), 0o600)
		otherGroup := h.mkdir("group-only", 0o750, 0, 4243) // the caller is in 4243
		for _, tc := range []struct {
			name, src string
			code      int
		}{
			{"unreadable-dir", closed, 202},
			{"untraversable-parent", hidden, 202},
			{"unreadable-file", secretFile, 202},
			{"missing", filepath.Join(h.dir, "missing"), 201},
			{"readable-through-group", otherGroup, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := h.with(t)
				ds := h.spec(mode, "sh", "-c", "cat /v/secret /v 2>/dev/null; true")
				ds.Volumes = tc.src + ":/v"
				r := h.run(ds, asUser)
				if r.code != tc.code {
					t.Fatalf("-V %s:/v: exit %d, want %d\nstderr: %s", tc.src, r.code, tc.code, r.stderr)
				}
				if strings.Contains(r.stdout, "secret") {
					t.Errorf("secret readable inside: %q", r.stdout)
				}
			})
		}
	})
}

// TestSiteVolumes: site volumes may go where users may not (/var/lib),
// are nosuid,nodev (and ro when asked), and come before user volumes. A
// user volume that needs a new mount point inside a site volume gets it
// only if the user may create it there.
func TestSiteVolumes(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	site := h.mkdir("site", 0o755, 0, 0)
	os.WriteFile(filepath.Join(site, "f"), []byte("site file\n"), 0o644)
	open := h.mkdir("site-open", 0o777, 0, 0)
	user := h.mkdir("user", 0o755, testUID, testGID)
	ds := h.spec("loop", "sh", "-c", "cat /var/lib/site/f; grep -E ' /var/lib/site | /open/user ' /proc/self/mountinfo; echo x > /open/user/f")
	ds.SiteVolumes = site + ":/var/lib/site:ro;" + site + ":/global;" + open + ":/open"
	ds.Volumes = user + ":/open/user"
	out := h.must(ds, asUser)
	if !strings.HasPrefix(out, "site file\n") {
		t.Errorf("site volume content: %q", out)
	}
	for _, l := range lines(out)[1:] {
		f := strings.Fields(l)
		opts := "," + f[5] + ","
		for _, o := range []string{"nosuid", "nodev"} {
			if !strings.Contains(opts, ","+o+",") {
				t.Errorf("mount %s lacks %s: %s", f[4], o, l)
			}
		}
		if f[4] == "/var/lib/site" && !strings.Contains(opts, ",ro,") {
			t.Errorf("site :ro volume is writable: %s", l)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(user, "f")); string(b) != "x\n" {
		t.Errorf("user volume nested in a site volume: host file %q", b)
	}
	if st, err := os.Stat(filepath.Join(open, "user")); err != nil || st.Sys().(*syscall.Stat_t).Uid != testUID {
		t.Errorf("mount point made in the site volume: %v, want one owned by the user", err)
	}

	// A mount point in a site directory the user may not write: refused,
	// and nothing is created there on the host.
	ds = h.spec("loop", "true")
	ds.SiteVolumes = site + ":/global"
	ds.Volumes = user + ":/global/newdir"
	if r := h.run(ds, asUser); r.code != 201 {
		t.Errorf("user volume needing a mount point in a root-owned site volume: exit %d, want 201\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(site, "newdir")); err == nil {
		t.Error("root made a directory for the user in the site file system")
	}
	// The same destination as a site volume is refused to a user.
	ds = h.spec("loop", "true")
	ds.Volumes = user + ":/var/lib/site"
	if r := h.run(ds, asUser); r.code != 201 {
		t.Errorf("user volume on /var/lib/site: exit %d, want 201", r.code)
	}
}

// TestUDIMountThroughSymlink: a site's udiMount may be a symlink (or lie
// under one). The container still gets /proc, its volumes and its site
// files, and a destination that escapes is still refused.
func TestUDIMountThroughSymlink(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		real := h.mkdir("udi-real", 0o755, 0, 0)
		link := filepath.Join(h.dir, "udi-link")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		data := h.mkdir("data", 0o755, testUID, testGID)
		ds := h.spec(mode, "sh", "-c", "echo via-link > /data/f; cat /proc/self/comm; id -u")
		ds.UDIMount = filepath.Join(link, "udi")
		ds.Volumes = data + ":/data"
		out := h.must(ds, asUser)
		if b, _ := os.ReadFile(filepath.Join(data, "f")); string(b) != "via-link\n" {
			t.Errorf("write through /data landed as %q", b)
		}
		for _, want := range []string{"cat\n", fmt.Sprintf("%d\n", testUID)} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		// The image's escaping symlinks are still refused (201:
		// ErrBadVolume), and nothing is made outside.
		for _, dest := range []string{"/etc", "/data-to-etc/x", "/escape-abs", "/escape-rel/sub", "/escape-new/x", "/proc"} {
			bad := h.spec(mode, "true")
			bad.UDIMount = ds.UDIMount
			bad.Volumes = data + ":" + dest
			if r := h.run(bad, asUser); r.code != 201 {
				t.Errorf("-V %s:%s with a symlinked udiMount: exit %d, want 201\nstderr: %s", data, dest, r.code, r.stderr)
			}
		}
		if _, err := os.Stat("/shifter-escape-test"); err == nil {
			t.Fatal("a volume created /shifter-escape-test on the host")
		}
	})
}
