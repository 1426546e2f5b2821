// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// applyReference extracts layers one by one into dir the way Docker's
// layer applier does (an independent implementation of the semantics the
// flattener must reproduce): whiteouts remove the named path, an opaque
// marker empties its directory of everything not unpacked by this layer,
// a new entry replaces an existing non-directory (or a directory, unless
// both are directories), hard links link to the path as it is then.
// It runs only on benign layers (all names clean, no device nodes).
func applyReference(t *testing.T, dir string, layers [][]ent) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	type dirAttr struct {
		mode     os.FileMode
		uid, gid int
	}
	dirs := map[string]dirAttr{}
	for _, layer := range layers {
		unpacked := map[string]bool{}
		for _, e := range layer {
			name := strings.TrimPrefix(path.Clean("/"+e.name), "/")
			dname, base := path.Split(name)
			dname = strings.TrimSuffix(dname, "/")
			if dname == "" {
				dname = "."
			}
			if base == ".wh..wh..opq" {
				// As Docker: walk the directory, remove what this layer did
				// not unpack (and do not descend into what was removed).
				err := fs.WalkDir(root.FS(), dname, func(p string, d fs.DirEntry, err error) error {
					if err != nil || p == dname {
						return err
					}
					if !unpacked[p] {
						if err := root.RemoveAll(p); err != nil {
							return err
						}
						if d.IsDir() {
							return fs.SkipDir
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				continue
			}
			if strings.HasPrefix(base, ".wh.") {
				if err := root.RemoveAll(path.Join(dname, base[4:])); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := root.MkdirAll(dname, 0o755); err != nil {
				t.Fatalf("mkdir %s: %v", dname, err)
			}
			unpacked[name] = true
			fi, err := root.Lstat(name)
			if err == nil && !(fi.IsDir() && e.typ == tar.TypeDir) {
				if err := root.RemoveAll(name); err != nil {
					t.Fatal(err)
				}
			}
			switch e.typ {
			case tar.TypeDir:
				if err := root.Mkdir(name, 0o755); err != nil && !os.IsExist(err) {
					t.Fatal(err)
				}
				dirs[name] = dirAttr{os.FileMode(e.mode), e.uid, e.gid}
			case tar.TypeReg, 0:
				if err := root.WriteFile(name, []byte(e.body), 0o644); err != nil {
					t.Fatal(err)
				}
			case tar.TypeSymlink:
				if err := root.Symlink(e.link, name); err != nil {
					t.Fatal(err)
				}
			case tar.TypeLink:
				if err := root.Link(strings.TrimPrefix(path.Clean("/"+e.link), "/"), name); err != nil {
					t.Fatal(err)
				}
				continue // a link shares its target's attributes
			case tar.TypeFifo:
				if err := unix.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("reference applier: unsupported type %q", e.typ)
			}
			if err := root.Lchown(name, e.uid, e.gid); err != nil {
				t.Fatal(err)
			}
			if e.typ != tar.TypeSymlink && e.typ != tar.TypeDir {
				if err := root.Chmod(name, fileMode(e.mode)); err != nil {
					t.Fatal(err)
				}
				if err := root.Chtimes(name, testTime, testTime); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range e.xattrs {
				if err := unix.Lsetxattr(filepath.Join(dir, name), k, []byte(v), 0); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for name, a := range dirs {
		if fi, err := root.Lstat(name); err == nil && fi.IsDir() {
			root.Chmod(name, fileMode(int64(a.mode)))
			root.Lchown(name, a.uid, a.gid)
		}
	}
}

// fileMode turns tar permission bits into an os.FileMode.
func fileMode(m int64) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// describeTree lists every path under dir as "path type mode uid:gid
// detail", where detail is the content hash of files (and the mtime),
// the target of symlinks, and hard link groups (files, symlinks, fifos)
// are named by their first path.
func describeTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	inodes := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		var detail string
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			detail = fmt.Sprintf("size=%d sha=%s mtime=%d", len(b), hex.EncodeToString(sum[:8]), fi.ModTime().Unix())
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			detail = "-> " + target
		}
		if !fi.IsDir() {
			if first, ok := inodes[st.Ino]; ok {
				detail += " link=" + first
			} else if st.Nlink > 1 {
				inodes[st.Ino] = rel
			}
		}
		var xattrs []string
		if sz, err := unix.Llistxattr(p, nil); err == nil && sz > 0 {
			buf := make([]byte, sz)
			n, _ := unix.Llistxattr(p, buf)
			for _, k := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
				if !strings.HasPrefix(k, "user.") {
					continue
				}
				v := make([]byte, 256)
				vn, _ := unix.Lgetxattr(p, k, v)
				xattrs = append(xattrs, k+"="+string(v[:max(vn, 0)]))
			}
		}
		sort.Strings(xattrs)
		out = append(out, fmt.Sprintf("%s %s %d:%d %s %s", rel, fi.Mode(), st.Uid, st.Gid, detail, strings.Join(xattrs, ",")))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// unsquash extracts a squashfs with the real unsquashfs into a new
// directory (as root, owners and xattrs are kept).
func unsquash(t *testing.T, sq string) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "root")
	if b, err := exec.Command("unsquashfs", "-no-progress", "-d", d, sq).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs %s: %v\n%s", sq, err, b)
	}
	return d
}
