// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"os"
	"path/filepath"
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

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:    "/a b",
		`/tab\011x`:  "/tab\tx",
		`/back\134s`: `/back\s`,
		`/plain`:     "/plain",
		`/end\04`:    `/end\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
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
// mount_setattr and with the bind-remount walk of kernels before 5.12.
func TestSetAttrsRecursive(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		name   string
		legacy bool
	}{{"mount_setattr", false}, {"remount-walk", true}} {
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
			f, err := os.OpenFile(top, unix.O_PATH|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := setAttrsRecursive(int(f.Fd()), top, mountAttrs{rdonly: true, nosuid: true, nodev: true}); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{top, sub} {
				var st unix.Statfs_t
				if err := unix.Statfs(p, &st); err != nil {
					t.Fatal(err)
				}
				want := int64(unix.ST_RDONLY | unix.ST_NOSUID | unix.ST_NODEV)
				if st.Flags&want != want {
					t.Errorf("%s: flags %#x, want ro,nosuid,nodev (%#x)", p, st.Flags, want)
				}
			}
		})
	}
}
