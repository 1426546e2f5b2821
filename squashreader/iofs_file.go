// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"errors"
	"io"
	"io/fs"
	"time"
)

// fileInfo is the fs.FileInfo (and fs.DirEntry) of an inode.
type fileInfo struct {
	name string
	in   *Inode
}

func (fi *fileInfo) Name() string               { return fi.name }
func (fi *fileInfo) Size() int64                { return int64(fi.in.Size) }
func (fi *fileInfo) Mode() fs.FileMode          { return fi.in.FileMode() }
func (fi *fileInfo) ModTime() time.Time         { return time.Unix(fi.in.Mtime, 0) }
func (fi *fileInfo) IsDir() bool                { return fi.in.Type == TypeDir }
func (fi *fileInfo) Sys() any                   { return fi.in }
func (fi *fileInfo) Type() fs.FileMode          { return fi.in.FileMode().Type() }
func (fi *fileInfo) Info() (fs.FileInfo, error) { return fi, nil }
func (fi *fileInfo) String() string             { return fs.FormatFileInfo(fi) }

// dirEntry is an fs.DirEntry whose inode is read on Info.
type dirEntry struct {
	r *Reader
	e DirEntry
}

func (d *dirEntry) Name() string      { return d.e.Name }
func (d *dirEntry) IsDir() bool       { return d.e.Type == TypeDir }
func (d *dirEntry) Type() fs.FileMode { return (&Inode{Type: d.e.Type}).FileMode().Type() }
func (d *dirEntry) String() string    { return fs.FormatDirEntry(d) }
func (d *dirEntry) Info() (fs.FileInfo, error) {
	in, err := d.r.Inode(d.e.Ref)
	if err != nil {
		return nil, err
	}
	if in.Type != d.e.Type {
		return nil, formatErr(-1, "entry %q of type %s names an inode of type %s", d.e.Name, d.e.Type, in.Type)
	}
	return &fileInfo{name: d.e.Name, in: in}, nil
}

// file is an open non-directory.
type file struct {
	r      *Reader
	fi     *fileInfo
	off    int64
	closed bool
}

var errClosed = fs.ErrClosed

func (f *file) Stat() (fs.FileInfo, error) { return f.fi, nil }
func (f *file) Close() error {
	if f.closed {
		return errClosed
	}
	f.closed = true
	return nil
}

func (f *file) Read(p []byte) (int, error) {
	if f.closed {
		return 0, errClosed
	}
	if f.fi.in.Type != TypeFile {
		return 0, io.EOF // devices, fifos and sockets have no contents in an image
	}
	n, err := f.r.ReadAt(f.fi.in, p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, errClosed
	}
	if f.fi.in.Type != TypeFile {
		return 0, io.EOF
	}
	return f.r.ReadAt(f.fi.in, p, off)
}

func (f *file) Seek(offset int64, whence int) (int64, error) {
	if f.closed {
		return 0, errClosed
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += int64(f.fi.in.Size)
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	f.off = offset
	return offset, nil
}

// dirFile is an open directory.
type dirFile struct {
	r      *Reader
	fi     *fileInfo
	cookie int64
	eof    bool
	closed bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.fi, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.fi.name, Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error {
	if d.closed {
		return errClosed
	}
	d.closed = true
	return nil
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.closed {
		return nil, errClosed
	}
	if d.eof {
		if n > 0 {
			return nil, io.EOF
		}
		return []fs.DirEntry{}, nil
	}
	des, err := d.r.ReadDir(d.fi.in, d.cookie, n)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: d.fi.name, Err: err}
	}
	out := make([]fs.DirEntry, len(des))
	for i, e := range des {
		out[i] = &dirEntry{r: d.r, e: e}
		d.cookie = e.Next
	}
	if n <= 0 || len(des) < n {
		d.eof = true
	}
	if n > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}
