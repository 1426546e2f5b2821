// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Reader implements the io/fs interfaces except fs.ReadDirFS, whose
// ReadDir(name) would clash with the inode-level ReadDir; FS adds it.
var (
	_ fs.FS         = (*Reader)(nil)
	_ fs.ReadFileFS = (*Reader)(nil)
	_ fs.StatFS     = (*Reader)(nil)
	_ fs.ReadLinkFS = (*Reader)(nil)

	_ fs.FS         = FS{}
	_ fs.ReadDirFS  = FS{}
	_ fs.ReadFileFS = FS{}
	_ fs.StatFS     = FS{}
	_ fs.ReadLinkFS = FS{}
)

// FS is the io/fs view of a Reader: fs.FS, fs.ReadDirFS, fs.ReadFileFS,
// fs.StatFS and fs.ReadLinkFS. fs.FileInfo.Sys() returns *Inode.
type FS struct{ r *Reader }

// FS returns the io/fs view of r.
func (r *Reader) FS() FS { return FS{r} }

// Open opens name, following symlinks.
func (f FS) Open(name string) (fs.File, error) { return f.r.Open(name) }

// Stat returns the FileInfo of name, following symlinks.
func (f FS) Stat(name string) (fs.FileInfo, error) { return f.r.Stat(name) }

// Lstat returns the FileInfo of name without following a final symlink.
func (f FS) Lstat(name string) (fs.FileInfo, error) { return f.r.Lstat(name) }

// ReadLink returns the target of the symlink name.
func (f FS) ReadLink(name string) (string, error) { return f.r.ReadLink(name) }

// ReadFile returns the contents of name.
func (f FS) ReadFile(name string) ([]byte, error) { return f.r.ReadFile(name) }

// Reader returns the underlying Reader.
func (f FS) Reader() *Reader { return f.r }

const (
	maxSymlinkHops = 40
	maxPathDepth   = 4096
)

var (
	errLoop  = errors.New("too many levels of symbolic links")
	errIsDir = errors.New("is a directory")
)

// LookupPath resolves an io/fs-style path ("." is the root) without
// following a final symlink. Symlinks in the middle are followed; absolute
// targets resolve from the image root.
func (r *Reader) LookupPath(name string) (*Inode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "lookup", Path: name, Err: fs.ErrInvalid}
	}
	in, err := r.resolve(name, false)
	if err != nil {
		return nil, &fs.PathError{Op: "lookup", Path: name, Err: err}
	}
	return in, nil
}

type resolver struct {
	r     *Reader
	hops  int
	steps int
}

// resolve walks name from the root; follow says whether a final symlink is
// followed.
func (r *Reader) resolve(name string, follow bool) (*Inode, error) {
	root, err := r.Root()
	if err != nil {
		return nil, err
	}
	rs := &resolver{r: r}
	in, _, err := rs.walk([]*Inode{root}, name, follow)
	return in, err
}

// walk resolves rel against the directory stack (the last element is the
// current directory, the first the root) and returns the inode and the
// stack of its parent directories.
func (rs *resolver) walk(stack []*Inode, rel string, follow bool) (*Inode, []*Inode, error) {
	cur := stack[len(stack)-1]
	if rel == "." || rel == "" {
		return cur, stack[:len(stack)-1], nil
	}
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		rs.steps++
		if rs.steps > maxPathDepth {
			return nil, nil, errLoop
		}
		switch p {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			cur = stack[len(stack)-1]
			continue
		}
		if cur.Type != TypeDir {
			return nil, nil, errNotDir
		}
		next, err := rs.r.Lookup(cur, p)
		if err != nil {
			return nil, nil, err
		}
		last := i == len(parts)-1
		if next.Type == TypeSymlink && (!last || follow) {
			rs.hops++
			if rs.hops > maxSymlinkHops {
				return nil, nil, errLoop
			}
			base := stack
			t := next.Target
			if strings.HasPrefix(t, "/") {
				base = stack[:1]
			}
			target, parents, err := rs.walk(slices.Clone(base), strings.TrimLeft(t, "/"), true)
			if err != nil {
				return nil, nil, err
			}
			next = target
			stack = parents
			if next.Type == TypeDir {
				stack = append(stack, next)
			}
			cur = next
			if last {
				return next, parents, nil
			}
			continue
		}
		if next.Type == TypeDir {
			for _, a := range stack {
				if a.Ref == next.Ref {
					return nil, nil, formatErr(-1, "directory %d contains its ancestor %d as %q", cur.Ino, next.Ino, p)
				}
			}
			if len(stack) >= maxPathDepth {
				return nil, nil, errLoop
			}
			stack = append(stack, next)
		} else if !last {
			return nil, nil, errNotDir
		}
		cur = next
		if last {
			if next.Type == TypeDir {
				stack = stack[:len(stack)-1]
			}
			return next, stack, nil
		}
	}
	if cur.Type == TypeDir && len(stack) > 1 {
		return cur, stack[:len(stack)-1], nil
	}
	return cur, stack, nil
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

func (r *Reader) lookupFS(op, name string, follow bool) (*Inode, error) {
	if !fs.ValidPath(name) {
		return nil, pathErr(op, name, fs.ErrInvalid)
	}
	in, err := r.resolve(name, follow)
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	return in, nil
}

// Open opens name, following symlinks.
func (r *Reader) Open(name string) (fs.File, error) {
	in, err := r.lookupFS("open", name, true)
	if err != nil {
		return nil, err
	}
	fi := &fileInfo{name: path.Base(name), in: in}
	if in.Type == TypeDir {
		return &dirFile{r: r, fi: fi}, nil
	}
	return &file{r: r, fi: fi}, nil
}

// Stat returns the FileInfo of name, following symlinks.
func (r *Reader) Stat(name string) (fs.FileInfo, error) {
	in, err := r.lookupFS("stat", name, true)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(name), in: in}, nil
}

// Lstat returns the FileInfo of name without following a final symlink.
func (r *Reader) Lstat(name string) (fs.FileInfo, error) {
	in, err := r.lookupFS("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(name), in: in}, nil
}

// ReadLink returns the target of the symlink name.
func (r *Reader) ReadLink(name string) (string, error) {
	in, err := r.lookupFS("readlink", name, false)
	if err != nil {
		return "", err
	}
	if in.Type != TypeSymlink {
		return "", pathErr("readlink", name, fs.ErrInvalid)
	}
	return in.Target, nil
}

// ReadFile returns the contents of name.
func (r *Reader) ReadFile(name string) ([]byte, error) {
	in, err := r.lookupFS("readfile", name, true)
	if err != nil {
		return nil, err
	}
	switch in.Type {
	case TypeDir:
		return nil, pathErr("readfile", name, errIsDir)
	case TypeFile:
	default:
		return []byte{}, nil // devices, fifos and sockets have no contents in an image
	}
	// Grow with the data actually read, up to 8 blocks at a time: a
	// claimed size alone never drives the allocation (sparse blocks let a
	// few bytes of image claim terabytes).
	b := []byte{}
	for uint64(len(b)) < in.Size {
		n := int(min(in.Size-uint64(len(b)), uint64(r.bs)*8))
		if cap(b)-len(b) < n {
			nb := make([]byte, len(b), max(2*cap(b), len(b)+n))
			copy(nb, b)
			b = nb
		}
		m, err := r.ReadAt(in, b[len(b):len(b)+n], int64(len(b)))
		b = b[:len(b)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, pathErr("readfile", name, err)
		}
	}
	return b, nil
}

// ReadDir returns the entries of the directory name, sorted by name.
func (f FS) ReadDir(name string) ([]fs.DirEntry, error) {
	r := f.r
	in, err := r.lookupFS("readdir", name, true)
	if err != nil {
		return nil, err
	}
	ents, err := r.readDirEntries(in, 0, 0)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, nil
}

func (r *Reader) readDirEntries(in *Inode, cookie int64, n int) ([]fs.DirEntry, error) {
	des, err := r.ReadDir(in, cookie, n)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, len(des))
	for i, d := range des {
		out[i] = &dirEntry{r: r, e: d}
	}
	return out, nil
}
