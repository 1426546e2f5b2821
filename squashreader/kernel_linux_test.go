// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
	"golang.org/x/sys/unix"
)

// kernelMount mounts img read-only with the kernel's squashfs driver on a
// loop device, unmounted at cleanup.
func kernelMount(t *testing.T, img string) string {
	t.Helper()
	testutil.RequireLoop(t)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v\n%s", img, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})
	return mnt
}

// TestAgainstKernelMount compares every attribute the kernel reports:
// st_ino (hard links share it), nlink, st_mode, owner, size, mtime, rdev,
// symlink target, xattrs and contents.
func TestAgainstKernelMount(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		small bool
	}{
		{"gzip", nil, false},
		// (the kernel refuses xz images with BCJ filters and 4 KiB blocks, and
		// kernels since 6.7 have no IA-64 BCJ decoder)
		{"xz-bcj", []string{"-comp", "xz", "-Xbcj", "x86,arm,armthumb,powerpc,sparc", "-b", "8K"}, true},
		{"zstd-b1M-no-exports", []string{"-comp", "zstd", "-b", "1M", "-no-exports"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testutil.RequireLoop(t)
			tree := featureTree(t, tc.small)
			img := sqtest.Build(t, tree.Dir, tc.args...)
			mnt := kernelMount(t, img)
			r, err := OpenFile(img, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ins := walkInodes(t, r)
			compareKernel(t, r, ins, mnt)
			// The gzip case's sparse file (3 MiB, 128 KiB blocks) has
			// sparse blocks, so st_blocks above checked Inode.Sparse.
			if sp := ins["squashfs-root/files/sparse"]; !tc.small && (sp == nil || sp.Sparse == 0) {
				t.Errorf("files/sparse: no sparse bytes decoded")
			}
		})
	}
}

func compareKernel(t *testing.T, r *Reader, ins map[string]*Inode, mnt string) {
	t.Helper()
	seen := 0
	err := filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(mnt, p)
		key := "squashfs-root"
		if rel != "." {
			key += "/" + filepath.ToSlash(rel)
		}
		in, ok := ins[key]
		if !ok {
			t.Errorf("%s: in the kernel mount, not in the reader", rel)
			return nil
		}
		seen++
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		got := fmt.Sprintf("ino=%d mode=0%o nlink=%d uid=%d gid=%d size=%d mtime=%d rdev=%d:%d",
			in.Ino, in.UnixMode(), in.Nlink, in.UID, in.GID, in.Size, in.Mtime, in.Major(), in.Minor())
		want := fmt.Sprintf("ino=%d mode=0%o nlink=%d uid=%d gid=%d size=%d mtime=%d rdev=%d:%d",
			st.Ino, st.Mode, st.Nlink, st.Uid, st.Gid, st.Size, st.Mtim.Sec, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		if got != want {
			t.Errorf("%s:\n reader %s\n kernel %s", rel, got, want)
		}
		// st_blocks: the file's bytes less its sparse bytes, plus the xattr
		// id entry's size, in 512-byte units rounded up as the kernel does.
		blocks := uint64(0)
		if in.Type == TypeFile {
			blocks = (in.Size - in.Sparse + 511) >> 9
		}
		xsize, err := r.XattrSize(in)
		if err != nil {
			return err
		}
		if in.HasXattrs() {
			blocks += uint64((xsize-1)>>9 + 1)
		} else if xsize != 0 {
			t.Errorf("%s: xattr size %d without xattrs", rel, xsize)
		}
		if blocks != uint64(st.Blocks) {
			t.Errorf("%s: st_blocks %d (size %d, sparse %d, xattr size %d), kernel %d", rel, blocks, in.Size, in.Sparse, xsize, st.Blocks)
		}
		switch in.Type {
		case TypeDir:
			if dd, err := dotdotIno(p); err != nil {
				return err
			} else if uint64(in.Parent) != dd {
				t.Errorf("%s: parent %d, kernel's \"..\" %d", rel, in.Parent, dd)
			}
		case TypeSymlink:
			if target, _ := os.Readlink(p); target != in.Target {
				t.Errorf("%s: target %q, kernel %q", rel, in.Target, target)
			}
		case TypeFile:
			want, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got := make([]byte, len(want)+1)
			n, err := r.ReadAt(in, got, 0)
			if err != io.EOF || !bytes.Equal(got[:n], want) {
				t.Errorf("%s: contents differ from the kernel's (%d bytes, %v)", rel, n, err)
			}
		}
		hx, err := hostXattrs(p)
		if err != nil {
			return err
		}
		xs, err := r.Xattrs(in)
		if err != nil {
			return err
		}
		var names []string
		gx := map[string]string{}
		for _, x := range xs {
			gx[x.Name] = string(x.Value)
			names = append(names, x.Name)
		}
		if fmt.Sprint(gx) != fmt.Sprint(hx) {
			t.Errorf("%s: xattrs %q, kernel %q", rel, gx, hx)
		}
		// The kernel lists xattrs in image order too.
		if kl := kernelXattrNames(p); strings.Join(names, ",") != strings.Join(kl, ",") {
			t.Errorf("%s: xattr order %q, kernel %q", rel, names, kl)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(ins) {
		t.Errorf("kernel shows %d entries, reader %d", seen, len(ins))
	}
}

// dotdotIno returns the d_ino of the ".." entry of directory p.
func dotdotIno(p string) (uint64, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 1<<16)
	n, err := unix.Getdents(fd, buf)
	if err != nil {
		return 0, err
	}
	for b := buf[:n]; len(b) > 0; {
		ino := binary.LittleEndian.Uint64(b[0:])
		reclen := int(binary.LittleEndian.Uint16(b[16:]))
		name := b[19:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if string(name) == ".." {
			return ino, nil
		}
		b = b[reclen:]
	}
	return 0, fmt.Errorf("%s: no \"..\" entry", p)
}

func kernelXattrNames(p string) []string {
	buf := make([]byte, 1<<16)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
}

// TestBigFile checks a sparse file over 4 GiB (extended inode, 64-bit
// sizes and block starts) against unsquashfs -lln and the source.
func TestBigFile(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 4 GiB through mksquashfs")
	}
	src := t.TempDir()
	const size = 4<<30 + 12345
	f, err := os.Create(filepath.Join(src, "big"))
	if err != nil {
		t.Fatal(err)
	}
	marks := map[int64][]byte{
		0:            []byte("head"),
		1<<32 - 2000: bytes.Repeat([]byte("straddles 4 GiB "), 250),
		size - 4:     []byte("tail"),
	}
	for off, b := range marks {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(src, "small"), []byte("small"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := sqtest.Build(t, src)
	r, err := OpenFile(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ins := compareListing(t, r, img)
	in := ins["squashfs-root/big"]
	if in.Size != size || !in.Extended {
		t.Fatalf("big: size %d extended %v", in.Size, in.Extended)
	}
	for off, want := range marks {
		// Read a margin of zeros on both sides.
		lo := max(off-5000, 0)
		got := make([]byte, min(int64(len(want))+10000, size-lo))
		n, err := r.ReadAt(in, got, lo)
		if n != len(got) && err != io.EOF {
			t.Fatalf("ReadAt(%d): %d, %v", lo, n, err)
		}
		exp := make([]byte, len(got))
		copy(exp[off-lo:], want)
		if !bytes.Equal(got[:n], exp[:n]) {
			t.Errorf("big at %d: contents differ", lo)
		}
	}
	if n, err := r.ReadAt(in, make([]byte, 10), size); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(size) = %d, %v, want 0, EOF", n, err)
	}
}

// TestGOROOT checks a large real tree (the Go toolchain's sources, gzip)
// against unsquashfs -lln and the source files.
func TestGOROOT(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image of GOROOT/src")
	}
	src := goRootSrc(t)
	img := sqtest.Build(t, src, "-no-xattrs")
	r, err := OpenFile(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ins := compareListing(t, r, img)
	buf := make([]byte, 0, 1<<20)
	for p, in := range ins {
		if in.Type != TypeFile {
			continue
		}
		want, err := os.ReadFile(filepath.Join(src, strings.TrimPrefix(p, "squashfs-root/")))
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadFile(strings.TrimPrefix(p, "squashfs-root/"))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: contents differ (%v)", p, err)
		}
		buf = buf[:0]
	}
	if err := fsWalkCount(r); err != nil {
		t.Error(err)
	}
}

func fsWalkCount(r *Reader) error {
	n := 0
	return fs.WalkDir(r.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		n++
		return err
	})
}
