// SPDX-License-Identifier: BSD-3-Clause

package sqtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/internal/testutil"
)

// Listing is what a program sees through a mounted tree: one WalkEntry per
// path, in sorted path order. WalkMount makes it; CompareListings reports
// the differences between two of them.
type Listing struct {
	Name    string // label used in difference reports, e.g. "kernel"
	Root    string
	Entries []WalkEntry
}

// WalkEntry is the canonical view of one entry of a mounted tree, gathered
// with lstat, readlink, llistxattr/lgetxattr, getdents64 and a read of the
// whole content.
type WalkEntry struct {
	Path     string // "/" for the root, "/a/b" below it
	Type     string // dir, file, symlink, char, block, fifo, socket
	Mode     uint32 // st_mode: type and permission bits
	UID, GID uint32
	Size     int64
	Blocks   int64 // st_blocks, 512-byte units
	Blksize  int64
	Nlink    uint64
	Ino      uint64
	InoGroup string // the first path (in sorted order) with the same st_ino
	Rdev     uint64 // devices only
	Atime    unix.Timespec
	Mtime    unix.Timespec
	Ctime    unix.Timespec
	Target   string        // symlink target
	Xattrs   []XattrValue  // in llistxattr order
	SHA256   string        // regular files: sha256 of the content
	ReadErr  string        // error reading content, xattrs or the listing
	Dirents  []DirentValue // directories: getdents64 order, "." and ".." included
}

// XattrValue is one extended attribute.
type XattrValue struct {
	Name  string
	Value []byte
}

// DirentValue is one entry returned by getdents64.
type DirentValue struct {
	Name string
	Type uint8 // d_type (DT_*)
	Ino  uint64
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFREG:
		return "file"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFCHR:
		return "char"
	case unix.S_IFBLK:
		return "block"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("unknown(%o)", mode&unix.S_IFMT)
}

// WalkMount walks the tree under root (usually a mount point) without
// following symlinks and returns its listing, labelled name. Errors reading
// an entry's content, xattrs or directory listing are recorded in
// WalkEntry.ReadErr (they are part of what a program sees); errors that
// stop the walk (lstat of the root) are returned.
func WalkMount(name, root string) (*Listing, error) {
	l := &Listing{Name: name, Root: root}
	if err := walkEntry(l, root, "/"); err != nil {
		return nil, err
	}
	groups := map[uint64]string{}
	for i := range l.Entries {
		e := &l.Entries[i]
		if g, ok := groups[e.Ino]; ok {
			e.InoGroup = g
		} else {
			groups[e.Ino] = e.Path
			e.InoGroup = e.Path
		}
	}
	return l, nil
}

func walkEntry(l *Listing, root, rel string) error {
	full := filepath.Join(root, filepath.FromSlash(rel))
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return fmt.Errorf("lstat %s: %w", full, err)
	}
	e := WalkEntry{
		Path:    rel,
		Type:    typeName(st.Mode),
		Mode:    st.Mode,
		UID:     st.Uid,
		GID:     st.Gid,
		Size:    st.Size,
		Blocks:  st.Blocks,
		Blksize: int64(st.Blksize),
		Nlink:   uint64(st.Nlink),
		Ino:     st.Ino,
		Atime:   st.Atim,
		Mtime:   st.Mtim,
		Ctime:   st.Ctim,
	}
	var errs []string
	if st.Mode&unix.S_IFMT == unix.S_IFCHR || st.Mode&unix.S_IFMT == unix.S_IFBLK {
		e.Rdev = st.Rdev
	}
	xs, err := readXattrs(full)
	if err != nil {
		errs = append(errs, err.Error())
	}
	e.Xattrs = xs
	var children []string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		t, err := os.Readlink(full)
		if err != nil {
			errs = append(errs, err.Error())
		}
		e.Target = t
	case unix.S_IFREG:
		sum, err := hashFile(full)
		if err != nil {
			errs = append(errs, err.Error())
		}
		e.SHA256 = sum
	case unix.S_IFDIR:
		ds, err := readDirents(full)
		if err != nil {
			errs = append(errs, err.Error())
		}
		e.Dirents = ds
		for _, d := range ds {
			if d.Name != "." && d.Name != ".." {
				children = append(children, d.Name)
			}
		}
		slices.Sort(children)
	}
	e.ReadErr = strings.Join(errs, "; ")
	l.Entries = append(l.Entries, e)
	for _, c := range children {
		if err := walkEntry(l, root, path.Join(rel, c)); err != nil {
			return err
		}
	}
	return nil
}

func readXattrs(full string) ([]XattrValue, error) {
	var names []byte
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(full, buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<24 {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("llistxattr %s: %w", full, err)
		}
		names = buf[:n]
		break
	}
	var out []XattrValue
	var errs []error
	for _, n := range bytes.Split(names, []byte{0}) {
		if len(n) == 0 {
			continue
		}
		name := string(n)
		v, err := getXattr(full, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, XattrValue{Name: name, Value: v})
	}
	return out, errors.Join(errs...)
}

func getXattr(full, name string) ([]byte, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(full, name, buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<24 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lgetxattr %s %s: %w", full, name, err)
		}
		return buf[:n], nil
	}
}

func hashFile(full string) (string, error) {
	f, err := os.OpenFile(full, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("reading %s: %w", full, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readDirents lists a directory with getdents64, in the order the file
// system returns the entries.
func readDirents(full string) ([]DirentValue, error) {
	fd, err := unix.Open(full, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	defer unix.Close(fd)
	var out []DirentValue
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return out, &os.PathError{Op: "getdents64", Path: full, Err: err}
		}
		if n <= 0 {
			return out, nil
		}
		b := buf[:n]
		for len(b) >= 19 {
			// struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name.
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return out, fmt.Errorf("getdents64 %s: bad record length %d", full, reclen)
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			out = append(out, DirentValue{
				Name: string(name),
				Type: b[18],
				Ino:  binary.NativeEndian.Uint64(b[0:8]),
			})
			b = b[reclen:]
		}
	}
}

// Fields that CompareListings can be told to ignore.
const (
	FieldIno       = "ino"        // raw st_ino (hard-link groups are still compared)
	FieldDirentIno = "dirent-ino" // d_ino in directory listings
	FieldDotDotIno = "dotdot-ino" // d_ino of ".." entries only
	FieldDots      = "dots"       // presence of "." and ".." in listings
	FieldBlocks    = "blocks"     // st_blocks
	FieldBlksize   = "blksize"    // st_blksize
	FieldXattrs    = "xattrs"
	FieldTimes     = "atime-ctime" // st_atime and st_ctime (st_mtime is always compared)
	FieldReadErr   = "read-error"
)

// CompareListings compares got against want entry by entry and returns
// one readable line per difference ("path: field: <want.Name> X, <got.Name>
// Y"), at most max lines (max <= 0: all) plus a final line counting the
// rest. ignore names fields (Field* constants) left out of the comparison.
func CompareListings(want, got *Listing, max int, ignore ...string) []string {
	ign := func(f string) bool { return slices.Contains(ignore, f) }
	var out []string
	total := 0
	add := func(p, field string, w, g any) {
		total++
		if max <= 0 || len(out) < max {
			out = append(out, fmt.Sprintf("%s: %s: %s %v, %s %v", p, field, want.Name, w, got.Name, g))
		}
	}
	byPath := func(l *Listing) map[string]*WalkEntry {
		m := make(map[string]*WalkEntry, len(l.Entries))
		for i := range l.Entries {
			m[l.Entries[i].Path] = &l.Entries[i]
		}
		return m
	}
	wm, gm := byPath(want), byPath(got)
	var paths []string
	for p := range wm {
		paths = append(paths, p)
	}
	for p := range gm {
		if _, ok := wm[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	for _, p := range paths {
		w, g := wm[p], gm[p]
		switch {
		case g == nil:
			add(p, "entry", "present", "missing")
			continue
		case w == nil:
			add(p, "entry", "missing", "present")
			continue
		}
		cmpf := func(field string, a, b any) {
			if fmt.Sprint(a) != fmt.Sprint(b) {
				add(p, field, a, b)
			}
		}
		cmpf("type", w.Type, g.Type)
		cmpf("mode", fmt.Sprintf("%07o", w.Mode), fmt.Sprintf("%07o", g.Mode))
		cmpf("uid", w.UID, g.UID)
		cmpf("gid", w.GID, g.GID)
		cmpf("size", w.Size, g.Size)
		cmpf("nlink", w.Nlink, g.Nlink)
		cmpf("mtime", fmtTime(w.Mtime), fmtTime(g.Mtime))
		if !ign(FieldTimes) {
			cmpf("atime", fmtTime(w.Atime), fmtTime(g.Atime))
			cmpf("ctime", fmtTime(w.Ctime), fmtTime(g.Ctime))
		}
		if !ign(FieldBlocks) {
			cmpf("blocks", w.Blocks, g.Blocks)
		}
		if !ign(FieldBlksize) {
			cmpf("blksize", w.Blksize, g.Blksize)
		}
		if !ign(FieldIno) {
			cmpf("ino", w.Ino, g.Ino)
		}
		cmpf("hard-link group", w.InoGroup, g.InoGroup)
		cmpf("rdev", fmtDev(w.Rdev), fmtDev(g.Rdev))
		cmpf("target", quoteShort(w.Target), quoteShort(g.Target))
		cmpf("sha256", w.SHA256, g.SHA256)
		if !ign(FieldReadErr) {
			cmpf("read error", w.ReadErr, g.ReadErr)
		}
		if !ign(FieldXattrs) {
			cmpf("xattrs", fmtXattrs(w.Xattrs), fmtXattrs(g.Xattrs))
		}
		if w.Type == "dir" && g.Type == "dir" {
			wd, gd := fmtDirents(w.Dirents, ignore), fmtDirents(g.Dirents, ignore)
			if !slices.Equal(wd, gd) {
				add(p, "listing", direntDiff(wd, gd), "")
			}
		}
	}
	if max > 0 && total > len(out) {
		out = append(out, fmt.Sprintf("... and %d more differences", total-len(out)))
	}
	return out
}

func fmtTime(t unix.Timespec) string {
	return time.Unix(t.Sec, t.Nsec).UTC().Format(time.RFC3339Nano)
}

func fmtDev(d uint64) string {
	if d == 0 {
		return "0"
	}
	return fmt.Sprintf("%d:%d", unix.Major(d), unix.Minor(d))
}

func quoteShort(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q...(%d bytes)", s[:80], len(s))
	}
	return fmt.Sprintf("%q", s)
}

func fmtXattrs(xs []XattrValue) string {
	var parts []string
	for _, x := range xs {
		v := x.Value
		suffix := ""
		if len(v) > 40 {
			h := sha256.Sum256(v)
			suffix = fmt.Sprintf("...(%d bytes, sha256 %x)", len(v), h[:6])
			v = v[:40]
		}
		parts = append(parts, fmt.Sprintf("%s=%q%s", x.Name, v, suffix))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func fmtDirents(ds []DirentValue, ignore []string) []string {
	var out []string
	for _, d := range ds {
		dot := d.Name == "." || d.Name == ".."
		if dot && slices.Contains(ignore, FieldDots) {
			continue
		}
		s := fmt.Sprintf("%q type=%d", d.Name, d.Type)
		switch {
		case slices.Contains(ignore, FieldDirentIno):
		case d.Name == ".." && slices.Contains(ignore, FieldDotDotIno):
		default:
			s += fmt.Sprintf(" ino=%d", d.Ino)
		}
		out = append(out, s)
	}
	return out
}

// direntDiff describes the first difference between two listings.
func direntDiff(w, g []string) string {
	n := min(len(w), len(g))
	for i := 0; i < n; i++ {
		if w[i] != g[i] {
			return fmt.Sprintf("entry %d differs: want %s, got %s (lengths %d, %d)", i, w[i], g[i], len(w), len(g))
		}
	}
	extra := "want " + w[n]
	if len(g) > n {
		extra = "got " + g[n]
	}
	return fmt.Sprintf("lengths differ: %d vs %d (first extra: %s)", len(w), len(g), extra)
}

// MountKernel loop-mounts the squashfs image img read-only with the
// kernel's driver (mount -t squashfs -o loop,ro) on a new temporary
// directory and returns the directory. The mount, and with it the loop
// device (autoclear), is removed when the test ends. It skips the test (or
// fails it under CI=true) without root, loop devices or kernel squashfs.
func MountKernel(t testing.TB, img string, extraOpts ...string) string {
	t.Helper()
	testutil.RequireLoop(t)
	mnt := t.TempDir()
	opts := strings.Join(append([]string{"loop", "ro"}, extraOpts...), ",")
	if out, err := exec.Command("mount", "-t", "squashfs", "-o", opts, img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount -t squashfs -o %s %s %s: %v\n%s", opts, img, mnt, err, out)
	}
	t.Cleanup(func() { Unmount(t, mnt) })
	return mnt
}

// Unmount unmounts mnt, retrying for a few seconds while it is busy and
// detaching it lazily as a last resort; it reports a failure with t.Errorf.
func Unmount(t testing.TB, mnt string) {
	t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		err = unix.Unmount(mnt, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return // unmounted (EINVAL: not a mount point any more)
		}
		if errors.Is(err, unix.EPERM) {
			// An unprivileged FUSE mount: fusermount3 unmounts it.
			out, ferr := exec.Command("fusermount3", "-u", mnt).CombinedOutput()
			if ferr == nil {
				return
			}
			err = fmt.Errorf("%w; fusermount3 -u: %v: %s", err, ferr, bytes.TrimSpace(out))
		}
		if !errors.Is(err, unix.EBUSY) && !strings.Contains(err.Error(), "busy") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("unmount %s: %v (detaching lazily)", mnt, err)
	if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
		t.Errorf("lazy unmount %s: %v", mnt, err)
	}
}
