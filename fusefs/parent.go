// SPDX-License-Identifier: BSD-3-Clause

package fusefs

import (
	"strings"
	"sync"

	"github.com/shifter-go/shifter/squashreader"
)

// parents remembers, for every directory node the kernel has been given,
// the inode number of the directory it was found in: the d_ino of its ".."
// entry, which the kernel's squashfs reads from the inode's parent field.
// Every directory the kernel can list was first returned by LOOKUP or
// READDIRPLUS of its parent, except the root, whose ".." mksquashfs sets
// to the inode count plus one. The map holds one small entry per
// directory seen, never more than the image has directories.
type parents struct {
	mu sync.RWMutex
	m  map[uint64]uint32
}

func (p *parents) note(child *squashreader.Inode, id uint64, parentIno uint32) {
	if child.Type != squashreader.TypeDir {
		return
	}
	p.mu.RLock()
	v, ok := p.m[id]
	p.mu.RUnlock()
	if ok && v == parentIno {
		return
	}
	p.mu.Lock()
	if p.m == nil {
		p.m = make(map[uint64]uint32)
	}
	p.m[id] = parentIno
	p.mu.Unlock()
}

// dotdot returns the inode number for the ".." entry of directory node id.
func (f *FS) dotdot(id uint64, dir *squashreader.Inode) uint32 {
	if id == 1 {
		return f.sb.Inodes + 1
	}
	f.parents.mu.RLock()
	v, ok := f.parents.m[id]
	f.parents.mu.RUnlock()
	if ok {
		return v
	}
	return dir.Ino
}

// sparseBytes is the number of bytes of a file stored as sparse blocks, as
// the kernel subtracts it from the size for st_blocks. The reader does not
// decode it yet, so files with sparse blocks report the full size.
func sparseBytes(*squashreader.Inode) uint64 { return 0 }

// xattrSize is the size field of the inode's xattr id entry, which the
// kernel adds to st_blocks: the sum of the name (without its namespace
// prefix) and value lengths, as mksquashfs computes it. The reader does not
// expose the field, so it is recomputed from the xattrs.
func (f *FS) xattrSize(in *squashreader.Inode) (uint32, error) {
	xs, err := f.r.Xattrs(in)
	if err != nil {
		return 0, err
	}
	var n uint32
	for _, x := range xs {
		_, name, _ := strings.Cut(x.Name, ".")
		n += uint32(len(name) + len(x.Value))
	}
	return n, nil
}
