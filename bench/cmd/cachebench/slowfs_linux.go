// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// slowFS is a read-only FUSE passthrough of the files of one directory,
// the simulated loaded shared filesystem that a node without a cache
// reads: every READ waits latency and all of them share the limiter's
// bandwidth (as the slow HTTP server does). The kernel caches what it
// reads (as a Lustre or NFS client does) until the page cache is
// dropped. Served by the driver's process.
type slowFS struct {
	fs.Inode
	dir     string
	latency time.Duration
	l       *limiter // nil: no bandwidth cap
	bytes   atomic.Int64
	reads   atomic.Int64
}

type slowFile struct {
	fs.Inode
	sfs  *slowFS
	f    *os.File
	size int64
}

var (
	_ fs.NodeOnAdder   = (*slowFS)(nil)
	_ fs.NodeGetattrer = (*slowFile)(nil)
	_ fs.NodeOpener    = (*slowFile)(nil)
	_ fs.NodeReader    = (*slowFile)(nil)
)

func (s *slowFS) OnAdd(ctx context.Context) {
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(s.dir, e.Name()))
		if err != nil {
			continue
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			continue
		}
		ch := s.NewPersistentInode(ctx, &slowFile{sfs: s, f: f, size: st.Size()}, fs.StableAttr{Mode: syscall.S_IFREG})
		s.AddChild(e.Name(), ch, false)
	}
}

func (f *slowFile) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Size = uint64(f.size)
	return 0
}

func (f *slowFile) Open(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (f *slowFile) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if f.sfs.latency > 0 {
		time.Sleep(f.sfs.latency)
	}
	n, err := f.f.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, syscall.EIO
	}
	if f.sfs.l != nil {
		f.sfs.l.wait(n)
	}
	f.sfs.reads.Add(1)
	f.sfs.bytes.Add(int64(n))
	return fuse.ReadResultData(dest[:n]), 0
}

// mountSlow serves dir's files at mnt through a slowFS; the returned
// function unmounts it.
func mountSlow(dir, mnt string, latency time.Duration, bps float64) (*slowFS, func() error, error) {
	s := &slowFS{dir: dir, latency: latency}
	if bps > 0 {
		s.l = &limiter{bps: bps}
	}
	srv, err := fs.Mount(mnt, s, &fs.Options{MountOptions: fuse.MountOptions{
		AllowOther: true, FsName: "cachebench-slow", Name: "cachebench", MaxBackground: 64,
	}})
	if err != nil {
		return nil, nil, err
	}
	return s, srv.Unmount, nil
}
