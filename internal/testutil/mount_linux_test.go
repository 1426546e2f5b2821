// SPDX-License-Identifier: BSD-3-Clause

package testutil_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/internal/testutil"
)

// TestMountAt: a mount is found by the path its test spells, through a
// symlink and with a space and a backslash in its name (escaped in
// mountinfo); of two stacked mounts, the top one; nothing once unmounted;
// nothing at a directory that only contains mounts.
func TestMountAt(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	real := filepath.Join(dir, "real dir")
	link := filepath.Join(dir, "link")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(link, `mount point\x`)
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	resolved, err := filepath.EvalSymlinks(real)
	if err != nil {
		t.Fatal(err)
	}
	resolved = filepath.Join(resolved, `mount point\x`)

	if m, ok := testutil.MountAt(t, mnt); ok {
		t.Fatalf("MountAt before mounting = %+v", m)
	}
	for _, src := range []string{"first src", "second src"} {
		if err := unix.Mount(src, mnt, "tmpfs", unix.MS_NOSUID, "size=64k"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
		m, ok := testutil.MountAt(t, mnt)
		if !ok {
			t.Fatalf("MountAt(%s) found nothing after mounting %q", mnt, src)
		}
		if m.FSType != "tmpfs" || m.Source != src || m.MountPoint != resolved || m.Root != "/" {
			t.Errorf("MountAt after mounting %q = %+v", src, m)
		}
		for _, p := range []string{real, link, dir} {
			if m, ok := testutil.MountAt(t, p); ok {
				t.Errorf("MountAt(%s), a directory that is no mount point = %+v", p, m)
			}
		}
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	if m, ok := testutil.MountAt(t, mnt); !ok || m.Source != "first src" {
		t.Errorf("MountAt after unmounting the top mount = %+v, %v, want the first", m, ok)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	if m, ok := testutil.MountAt(t, mnt); ok {
		t.Errorf("MountAt after unmounting = %+v", m)
	}
}
