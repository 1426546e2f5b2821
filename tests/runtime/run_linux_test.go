// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// forModes runs f once per image mount mode, each as a subtest.
func forModes(t *testing.T, f func(t *testing.T, h *harness, mode string)) {
	for _, mode := range []string{"loop", "fuse"} {
		t.Run(mode, func(t *testing.T) {
			requireMode(t, mode)
			f(t, newHarness(t), mode)
		})
	}
}

// hostID runs the host's busybox id with the credential of c: what the
// container must report.
func hostID(t *testing.T, c caller, args ...string) string {
	t.Helper()
	cmd := exec.Command("busybox", append([]string{"id"}, args...)...)
	if c.uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.gid), Groups: c.groups}}
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("host id %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func TestIdentity(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		for _, c := range []struct {
			name string
			c    caller
		}{
			{"root", asRoot},
			{"setuid-user", asUser},
		} {
			t.Run(c.name, func(t *testing.T) {
				h := h.with(t)
				got := lines(h.must(h.spec(mode, "sh", "-c", "id -u; id -g; id -G"), c.c))
				want := []string{hostID(t, c.c, "-u"), hostID(t, c.c, "-g"), hostID(t, c.c, "-G")}
				if !slices.Equal(got, want) {
					t.Errorf("id -u/-g/-G inside = %q, want the caller's %q", got, want)
				}
			})
		}
	})
}

// capLines are /proc/self/status lines that must read zero or one.
var wantStatus = map[string]string{
	"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
	"CapBnd": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1",
}

func checkStatus(t *testing.T, out string) {
	t.Helper()
	got := map[string]string{}
	for _, l := range lines(out) {
		k, v, _ := strings.Cut(l, ":")
		got[k] = strings.TrimSpace(v)
	}
	for k, want := range wantStatus {
		if got[k] != want {
			t.Errorf("/proc/self/status %s = %q, want %q", k, got[k], want)
		}
	}
}

func TestCapabilities(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		ds := h.spec(mode, "grep", "-E", "^(Cap|NoNewPrivs)", "/proc/self/status")
		for _, c := range []struct {
			name string
			c    caller
		}{
			{"root", asRoot},
			{"setuid-user", asUser},
			// The caller holds inheritable and ambient capabilities.
			{"root-ambient", caller{ambient: []uintptr{unix.CAP_DAC_READ_SEARCH, unix.CAP_SYS_ADMIN, unix.CAP_SETUID}}},
			{"user-ambient", caller{uid: testUID, gid: testGID, groups: testGroups, setuid: true,
				ambient: []uintptr{unix.CAP_DAC_READ_SEARCH, unix.CAP_NET_RAW}}},
		} {
			t.Run(c.name, func(t *testing.T) {
				h := h.with(t)
				checkStatus(t, h.must(ds, c.c))
			})
		}
	})
}

func TestOnlyStdioInherited(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		// The shell's own descriptors, as the kernel lists them.
		out := h.must(h.spec(mode, "sh", "-c", `ls -l /proc/$$/fd`), asUser)
		var fds []string
		for _, l := range lines(out) {
			f := strings.Fields(l)
			if len(f) < 3 || f[len(f)-2] != "->" {
				continue
			}
			fd, target := f[len(f)-3], f[len(f)-1]
			fds = append(fds, fd)
			for _, bad := range []string{"loop", "fuse", ".squashfs", "spec-", "pipe:"} {
				if strings.Contains(target, bad) && fd > "2" {
					t.Errorf("fd %s -> %s leaked into the container", fd, target)
				}
			}
		}
		if !slices.Equal(fds, []string{"0", "1", "2"}) {
			t.Errorf("open fds inside = %v (%q), want [0 1 2]", fds, out)
		}
	})
}

func TestHostFilesInvisible(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		// A file of the host's own, outside the paths the container shares
		// with the host (/tmp, /var/tmp, /dev, /proc, /sys): the test tree
		// itself may live under /tmp.
		dir, err := os.MkdirTemp("/var/lib", "shifter-hostonly-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		marker := filepath.Join(dir, "host-only")
		if err := os.WriteFile(marker, []byte("host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		hostOnly := []string{marker, "/etc/hostname", "/usr/bin/mksquashfs", "/root", "/etc/shadow"}
		var check []string
		for _, p := range hostOnly {
			if _, err := os.Stat(p); err == nil {
				check = append(check, p)
			}
		}
		if len(check) == 0 {
			t.Fatal("no host-only file to look for")
		}
		script := ""
		for _, p := range check {
			script += fmt.Sprintf("test -e %s && echo visible: %s; ", p, p)
		}
		out := h.must(h.spec(mode, "sh", "-c", script+"cat /etc/image-marker"), asUser)
		if strings.Contains(out, "visible") {
			t.Errorf("host files visible in the container:\n%s", out)
		}
		if !strings.Contains(out, "from-the-image") {
			t.Errorf("image file not visible: %q", out)
		}
	})
}

func TestImageReadOnly(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		for _, c := range []struct {
			name string
			c    caller
		}{{"root", asRoot}, {"setuid-user", asUser}} {
			for _, target := range []string{"/etc/image-marker", "/newfile", "/bin/newfile", "/usr/share/doc/new", "/etc/passwd"} {
				t.Run(c.name+target, func(t *testing.T) {
					h := h.with(t)
					r := h.run(h.spec(mode, "sh", "-c", "echo x >> "+target), c.c)
					if r.code == 0 {
						t.Fatalf("writing %s in the image succeeded", target)
					}
					// Root inside owns the image's files but has no
					// capability: only the read-only mount stops it.
					if c.c.uid == 0 && !strings.Contains(r.stderr, "Read-only file system") {
						t.Errorf("writing %s as root: %q, want EROFS", target, r.stderr)
					}
				})
			}
		}
	})
}

func TestSiteFiles(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	out := h.must(h.spec("loop", "sh", "-c", "cat /etc/passwd; echo --; cat /etc/group; echo --; readlink /etc/mtab; echo --; stat -c '%a %u %g' /etc/passwd /etc/group"), asUser)
	parts := strings.Split(out, "--\n")
	if len(parts) != 4 {
		t.Fatalf("output %q", out)
	}
	if want := fmt.Sprintf("user%d:x:%d:%d::/:/bin/sh\n", testUID, testUID, testGID); !strings.Contains(parts[0], want) {
		t.Errorf("/etc/passwd = %q, want a line %q", parts[0], want)
	}
	if strings.Contains(parts[0], "imageuser") {
		t.Errorf("/etc/passwd still has the image's entries: %q", parts[0])
	}
	for _, g := range testGroups[1:] {
		if want := fmt.Sprintf("grp%d:x:%d:user%d\n", g, g, testUID); !strings.Contains(parts[1], want) {
			t.Errorf("/etc/group = %q, want a line %q", parts[1], want)
		}
	}
	if strings.TrimSpace(parts[2]) != "/proc/mounts" {
		t.Errorf("/etc/mtab -> %q, want /proc/mounts", parts[2])
	}
	if got := lines(parts[3]); !slices.Equal(got, []string{"644 0 0", "644 0 0"}) {
		t.Errorf("modes of passwd, group = %q", got)
	}

	// Site /etc files are copied from the host.
	host := filepath.Join(h.dir, "resolv.conf")
	os.WriteFile(host, []byte("nameserver 127.0.0.1\n"), 0o644)
	ds := h.spec("loop", "cat", "/etc/resolv.conf")
	ds.EtcFiles = map[string]string{"resolv.conf": host}
	if got := h.must(ds, asUser); got != "nameserver 127.0.0.1\n" {
		t.Errorf("/etc/resolv.conf = %q", got)
	}
}

func TestEnvironmentExact(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	ds := h.spec("loop", "env")
	ds.Env = []string{"PATH=/bin", "A=1", "B=two words", "EMPTY="}
	c := asUser
	c.env = []string{"LEAK=caller", "GODEBUG=x", "SHIFTER_X=1"}
	got := lines(h.must(ds, c))
	slices.Sort(got)
	want := slices.Clone(ds.Env)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("env inside = %q, want exactly %q", got, want)
	}
}
