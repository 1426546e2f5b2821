// SPDX-License-Identifier: BSD-3-Clause

package fusefs_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
)

// TestGetxattrWithoutXattrs: on an image with no xattrs at all the first
// GETXATTR is answered ENOSYS, after which the kernel answers every
// getxattr on the mount itself (EOPNOTSUPP; the kernel's squashfs says
// ENODATA), also the trusted.overlay.* lookups an overlay over the mount
// makes for every name; an image with xattrs keeps ENODATA for a missing
// name and its values, as the kernel's mount of it has them.
func TestGetxattrWithoutXattrs(t *testing.T) {
	testutil.RequireLoop(t)
	src := t.TempDir()
	for i := range 20 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	withXattrs := unix.Setxattr(filepath.Join(src, "f00"), "user.u", []byte("u"), 0) == nil
	buf := make([]byte, 64)

	t.Run("none", func(t *testing.T) {
		img := sqtest.Build(t, src, "-comp", "gzip", "-no-xattrs")
		if _, err := unix.Lgetxattr(filepath.Join(sqtest.MountKernel(t, img), "f01"), "user.u", buf); !errors.Is(err, unix.ENODATA) {
			t.Errorf("kernel: getxattr of a missing name = %v, want ENODATA", err)
		}
		mnt, fsys := mountFUSE(t, img, nil)
		for i := range 5 {
			if _, err := unix.Lgetxattr(filepath.Join(mnt, fmt.Sprintf("f%02d", i)), "user.u", buf); !errors.Is(err, unix.EOPNOTSUPP) {
				t.Errorf("getxattr f%02d = %v, want EOPNOTSUPP", i, err)
			}
		}
		if n, err := unix.Llistxattr(filepath.Join(mnt, "f00"), buf); err != nil || n != 0 {
			t.Errorf("listxattr = %d, %v; want 0, nil", n, err)
		}
		// An overlay over the mount, as the runtime builds a container's root.
		ov := t.TempDir()
		for _, d := range []string{"upper", "work", "root"} {
			if err := os.Mkdir(filepath.Join(ov, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		root := filepath.Join(ov, "root")
		opts := "lowerdir=" + mnt + ",upperdir=" + filepath.Join(ov, "upper") + ",workdir=" + filepath.Join(ov, "work")
		if err := unix.Mount("overlay", root, "overlay", 0, opts); err != nil {
			t.Fatalf("mount overlay: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
		for i := range 20 {
			if _, err := os.ReadFile(filepath.Join(root, fmt.Sprintf("f%02d", i))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.ReadDir(filepath.Join(root, "d")); err != nil {
			t.Fatal(err)
		}
		if n := fsys.Stats()["GETXATTR"]; n != 1 {
			t.Errorf("GETXATTR requests: %d, want 1 (the ENOSYS)", n)
		}
	})

	t.Run("some", func(t *testing.T) {
		if !withXattrs {
			t.Skip("the test directory's file system takes no user.* xattrs")
		}
		img := sqtest.Build(t, src, "-comp", "gzip")
		kern := sqtest.MountKernel(t, img)
		mnt, fsys := mountFUSE(t, img, nil)
		for _, m := range []string{kern, mnt} {
			n, err := unix.Lgetxattr(filepath.Join(m, "f00"), "user.u", buf)
			if err != nil || string(buf[:n]) != "u" {
				t.Errorf("%s: getxattr user.u = %q, %v; want \"u\"", m, buf[:max(n, 0)], err)
			}
			if _, err := unix.Lgetxattr(filepath.Join(m, "f01"), "user.u", buf); !errors.Is(err, unix.ENODATA) {
				t.Errorf("%s: getxattr of a missing name = %v, want ENODATA", m, err)
			}
		}
		if n := fsys.Stats()["GETXATTR"]; n < 2 {
			t.Errorf("GETXATTR requests: %d, want 2", n)
		}
	})
}
