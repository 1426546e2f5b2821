// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/internal/testutil"
)

func TestMountFlagString(t *testing.T) {
	for _, tc := range []struct {
		flags uintptr
		want  string
	}{
		{unix.MS_BIND | unix.MS_REC, "MS_BIND|MS_REC"},
		{unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY, "MS_RDONLY|MS_REMOUNT|MS_BIND"},
		{unix.MS_NOSUID | 1<<30, "MS_NOSUID|0x40000000"},
		{0, ""},
	} {
		if got := mountFlagString(tc.flags); got != tc.want {
			t.Errorf("mountFlagString(%#x) = %q, want %q", tc.flags, got, tc.want)
		}
	}
	err := &mountError{op: "mount", source: "a", target: "b", flags: unix.MS_BIND, err: unix.EPERM}
	if !errors.Is(err, ErrMount) || !errors.Is(err, unix.EPERM) {
		t.Errorf("mountError does not wrap ErrMount and its errno")
	}
}

func TestHasFilesystem(t *testing.T) {
	pf := []byte("nodev\tsysfs\nnodev\ttmpfs\n\text4\n\tsquashfs\nnodev\tfuse\n")
	for name, want := range map[string]bool{"squashfs": true, "ext4": true, "fuse": true, "squash": false, "nodev": false} {
		if got := hasFilesystem(pf, name); got != want {
			t.Errorf("hasFilesystem(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestLookPathInContainerEnv(t *testing.T) {
	// Runs against the host's root: only the PATH logic is under test.
	p, err := lookPath("sh", []string{"PATH=/nonexistent:/bin"})
	if err != nil || p != "/bin/sh" {
		t.Errorf("lookPath(sh) = %q, %v", p, err)
	}
	if p, err := lookPath("./x", nil); err != nil || p != "./x" {
		t.Errorf("lookPath(./x) = %q, %v", p, err)
	}
	if _, err := lookPath("no-such-command-xyz", []string{"PATH=/bin"}); err == nil {
		t.Error("lookPath of a missing command succeeded")
	}
}

// TestSetAttrsRecursive makes a tree of two tmpfs mounts (in a temporary
// directory of the host, removed after) read-only, nosuid, nodev, with
// mount_setattr and with the bind-remount walk of kernels before 5.12,
// also when the tree is named through a symlink (mountinfo shows the
// resolved path: CI once ran with such a TMPDIR and the walk, which
// matched path prefixes, silently did nothing).
func TestSetAttrsRecursive(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		name           string
		legacy, symlnk bool
	}{
		{"mount_setattr", false, false},
		{"remount-walk", true, false},
		{"mount_setattr-via-symlink", false, true},
		{"remount-walk-via-symlink", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.legacy {
				old := mountSetattr
				mountSetattr = func(int, string, uint, *unix.MountAttr) error { return unix.ENOSYS }
				defer func() { mountSetattr = old }()
			}
			top := t.TempDir()
			if err := mount("t", top, "tmpfs", 0, ""); err != nil {
				t.Skipf("tmpfs: %v", err)
			}
			defer unix.Unmount(top, unix.MNT_DETACH)
			sub := filepath.Join(top, "sub")
			os.Mkdir(sub, 0o755)
			if err := mount("s", sub, "tmpfs", 0, ""); err != nil {
				t.Fatal(err)
			}
			defer unix.Unmount(sub, unix.MNT_DETACH)
			// A sibling whose name has top's as a prefix must stay writable.
			sibling := top + "x"
			os.Mkdir(sibling, 0o755)
			defer os.Remove(sibling)
			if err := mount("x", sibling, "tmpfs", 0, ""); err != nil {
				t.Fatal(err)
			}
			defer unix.Unmount(sibling, unix.MNT_DETACH)
			name := top
			if tc.symlnk {
				name = filepath.Join(t.TempDir(), "link")
				if err := os.Symlink(top, name); err != nil {
					t.Fatal(err)
				}
			}
			f, err := os.OpenFile(name, unix.O_PATH|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := setAttrsRecursive(int(f.Fd()), name, mountAttrs{rdonly: true, nosuid: true, nodev: true}); err != nil {
				t.Fatal(err)
			}
			want := int64(unix.ST_RDONLY | unix.ST_NOSUID | unix.ST_NODEV)
			for _, p := range []string{top, sub, sibling} {
				var st unix.Statfs_t
				if err := unix.Statfs(p, &st); err != nil {
					t.Fatal(err)
				}
				if p == sibling {
					if st.Flags&unix.ST_RDONLY != 0 {
						t.Errorf("%s: the sibling mount was made read-only", p)
					}
				} else if st.Flags&want != want {
					t.Errorf("%s: flags %#x, want ro,nosuid,nodev (%#x)", p, st.Flags, want)
				}
			}
		})
	}
}

func TestMountsUnder(t *testing.T) {
	mi := []byte(`22 1 0:20 / / rw - ext4 /dev/vda rw
30 22 0:40 / /real/top rw - tmpfs t rw
31 30 0:41 / /real/top/sub rw - tmpfs s rw
32 31 0:42 / /real/top/sub/a\040b rw - tmpfs s rw
33 22 0:43 / /real/topx rw - tmpfs x rw
34 30 0:44 / /real/top rw - tmpfs stacked rw
35 22 0:45 / /real/top/sub rw - tmpfs other-parent rw
`)
	for _, tc := range []struct {
		name    string
		top     int
		path    string
		want    []string
		wantErr bool
	}{
		{"same spelling", 30, "/real/top", []string{"/real/top", "/real/top/sub", "/real/top", "/real/top/sub/a b"}, false},
		{"via symlink", 30, "/link/", []string{"/link/", "/link/sub", "/link/", "/link/sub/a b"}, false},
		{"leaf", 32, "/x", []string{"/x"}, false},
		{"root", 22, "/", []string{"/", "/real/top", "/real/topx", "/real/top/sub", "/real/top/sub", "/real/top", "/real/top/sub/a b"}, false},
		{"missing", 99, "/real/top", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mountsUnder(mi, tc.top, tc.path)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
	if _, err := mountsUnder([]byte("x 1 0:1 / / rw - t t rw\n"), 1, "/"); err == nil {
		t.Error("a line with a bad mount id was accepted")
	}
}
