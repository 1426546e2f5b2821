// SPDX-License-Identifier: BSD-3-Clause

package fusefs

import (
	"errors"
	"io"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/shifter-go/shifter/squashreader"
)

// Names and attributes.

// Lookup finds name in the directory header.NodeId. A missing name is
// answered with node id 0 and the negative timeout, which the kernel
// caches as a negative entry.
func (f *FS) Lookup(_ <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	f.stats.add(opLookup)
	dir, st := f.node("lookup", h.NodeId)
	if !st.Ok() {
		return st
	}
	if dir.Type != squashreader.TypeDir {
		return fuse.ENOTDIR
	}
	if len(name) > maxNameLen {
		return fuse.Status(syscall.ENAMETOOLONG)
	}
	in, err := f.r.Lookup(dir.Inode, name)
	if err != nil {
		st := f.status("lookup", h.NodeId, err)
		if st == fuse.ENOENT && f.opts.NegativeTimeout > 0 {
			*out = fuse.EntryOut{}
			out.SetEntryTimeout(f.opts.NegativeTimeout)
			return fuse.OK
		}
		return st
	}
	id := f.nodeID(in.Ref)
	child := f.cache.get(id)
	if child == nil {
		if child, err = f.newNode(in); err != nil {
			return f.status("lookup", h.NodeId, err)
		}
		f.cache.put(id, child)
	}
	f.fillEntry(id, child, out)
	return fuse.OK
}

// GetAttr returns the attributes of a node.
func (f *FS) GetAttr(_ <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	f.stats.add(opGetattr)
	n, st := f.node("getattr", in.NodeId)
	if !st.Ok() {
		return st
	}
	fillAttr(n, &out.Attr)
	out.SetTimeout(f.opts.AttrTimeout)
	return fuse.OK
}

// Readlink returns a symlink's target.
func (f *FS) Readlink(_ <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	f.stats.add(opReadlink)
	n, st := f.node("readlink", h.NodeId)
	if !st.Ok() {
		return nil, st
	}
	if n.Type != squashreader.TypeSymlink {
		return nil, fuse.EINVAL
	}
	t, err := f.r.Readlink(n.Inode)
	if err != nil {
		return nil, f.status("readlink", h.NodeId, err)
	}
	return []byte(t), fuse.OK
}

// Access is only sent without default_permissions, which Mount always
// sets; it answers writes with EROFS and leaves the rest to the kernel.
func (f *FS) Access(_ <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	f.stats.add(opAccess)
	if in.Mask&2 != 0 { // W_OK
		return fuse.EROFS
	}
	return fuse.OK
}

// Files.

// Open returns ENOSYS when the kernel supports doing without OPEN: the
// kernel then opens every file itself with FOPEN_KEEP_CACHE. Older kernels
// get FOPEN_KEEP_CACHE explicitly.
func (f *FS) Open(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	f.stats.add(opOpen)
	if in.Flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_CREAT) != 0 {
		return fuse.EROFS
	}
	f.mu.Lock()
	noOpen := f.noOpen
	f.mu.Unlock()
	if noOpen {
		return fuse.ENOSYS
	}
	out.OpenFlags = fuse.FOPEN_KEEP_CACHE
	return fuse.OK
}

// Read reads file content at an offset.
func (f *FS) Read(_ <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	f.stats.add(opRead)
	n, st := f.node("read", in.NodeId)
	if !st.Ok() {
		return nil, st
	}
	if n.Type != squashreader.TypeFile {
		return nil, fuse.EINVAL
	}
	if int(in.Size) < len(buf) {
		buf = buf[:in.Size]
	}
	got, err := f.r.ReadAt(n.Inode, buf, int64(in.Offset))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, f.status("read", in.NodeId, err)
	}
	return fuse.ReadResultData(buf[:got]), fuse.OK
}

// Release has nothing to free: file handles carry no state.
func (f *FS) Release(_ <-chan struct{}, _ *fuse.ReleaseIn) { f.stats.add(opRelease) }

// Flush answers ENOSYS, after which the kernel stops sending it.
func (f *FS) Flush(_ <-chan struct{}, _ *fuse.FlushIn) fuse.Status {
	f.stats.add(opFlush)
	return fuse.ENOSYS
}

// Directories.

// OpenDir returns ENOSYS when the kernel supports doing without OPENDIR
// (it then caches listings by itself), else FOPEN_CACHE_DIR and
// FOPEN_KEEP_CACHE.
func (f *FS) OpenDir(_ <-chan struct{}, _ *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	f.stats.add(opOpendir)
	f.mu.Lock()
	noOpendir := f.noOpendir
	f.mu.Unlock()
	if noOpendir {
		return fuse.ENOSYS
	}
	out.OpenFlags = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	return fuse.OK
}

// ReleaseDir has nothing to free.
func (f *FS) ReleaseDir(_ *fuse.ReleaseIn) { f.stats.add(opRelease) }

// ReadDir lists a directory: ".", "..", then the entries in image order.
func (f *FS) ReadDir(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	f.stats.add(opReaddir)
	return f.readDir(in, out, false)
}

// ReadDirPlus is ReadDir with each entry's attributes, so that a listing
// followed by stat of every entry costs no further requests.
func (f *FS) ReadDirPlus(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	f.stats.add(opReaddirplus)
	return f.readDir(in, out, true)
}

// Directory offsets: 0 is the start, 1 follows ".", 2 follows "..", and a
// reader cookie c (c >= 1) is offset c+2.
const firstEntryOffset = 2

func (f *FS) readDir(in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	dir, st := f.node("readdir", in.NodeId)
	if !st.Ok() {
		return st
	}
	if dir.Type != squashreader.TypeDir {
		return fuse.ENOTDIR
	}
	add := func(d fuse.DirEntry, id uint64, child *node) bool {
		if !plus {
			return out.AddDirEntry(d)
		}
		eo := out.AddDirLookupEntry(d)
		if eo == nil {
			return false
		}
		if child != nil { // nil: "." and "..", or an unreadable inode: a plain entry
			f.fillEntry(id, child, eo)
		}
		return true
	}
	off := in.Offset
	if off == 0 {
		if !add(fuse.DirEntry{Name: ".", Ino: uint64(dir.Ino), Mode: syscall.S_IFDIR, Off: 1}, 0, nil) {
			return fuse.OK
		}
		off = 1
	}
	if off == 1 {
		if !add(fuse.DirEntry{Name: "..", Ino: uint64(dir.Parent), Mode: syscall.S_IFDIR, Off: 2}, 0, nil) {
			return fuse.OK
		}
		off = firstEntryOffset
	}
	cookie := int64(off - firstEntryOffset)
	// Entries that fit a reply: about 32 bytes each plus 128 of attributes.
	batch := int(in.Size)/40 + 1
	if plus {
		batch = int(in.Size)/160 + 1
	}
	for {
		ents, err := f.r.ReadDir(dir.Inode, cookie, batch)
		if err != nil {
			return f.status("readdir", in.NodeId, err)
		}
		if len(ents) == 0 {
			return fuse.OK
		}
		for _, e := range ents {
			id := f.nodeID(e.Ref)
			var child *node
			if plus {
				var cst fuse.Status
				if child, cst = f.node("readdirplus", id); !cst.Ok() {
					child = nil // listed like the kernel lists it; LOOKUP will fail
				}
			}
			d := fuse.DirEntry{Name: e.Name, Ino: uint64(e.Ino), Mode: typeMode(e.Type), Off: uint64(e.Next) + firstEntryOffset}
			if !add(d, id, child) {
				return fuse.OK
			}
			cookie = e.Next
		}
		if len(ents) < batch {
			return fuse.OK // the end of the listing: no need to ask again
		}
	}
}

func typeMode(t squashreader.Type) uint32 {
	switch t {
	case squashreader.TypeDir:
		return syscall.S_IFDIR
	case squashreader.TypeFile:
		return syscall.S_IFREG
	case squashreader.TypeSymlink:
		return syscall.S_IFLNK
	case squashreader.TypeBlockDev:
		return syscall.S_IFBLK
	case squashreader.TypeCharDev:
		return syscall.S_IFCHR
	case squashreader.TypeFifo:
		return syscall.S_IFIFO
	case squashreader.TypeSocket:
		return syscall.S_IFSOCK
	}
	return 0
}

// Extended attributes.

// GetXAttr returns one xattr value. (The kernel itself refuses trusted.*
// to callers without CAP_SYS_ADMIN before asking.) On an image without
// xattrs it answers ENOSYS: getxattr on the mount then fails with
// EOPNOTSUPP where the kernel's squashfs says ENODATA, the one way this
// view differs from the kernel's (docs/ARCHITECTURE.md).
func (f *FS) GetXAttr(_ <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	f.stats.add(opGetxattr)
	if !f.r.HasXattrs() {
		// The image has no xattrs at all: ENOSYS makes the kernel answer
		// every later getxattr on this mount itself (EOPNOTSUPP), with no
		// round trip. overlayfs asks its lower layer for trusted.overlay.*
		// on every lookup: about 180 requests per python start.
		return 0, fuse.ENOSYS
	}
	n, st := f.node("getxattr", h.NodeId)
	if !st.Ok() {
		return 0, st
	}
	if !n.HasXattrs() {
		return 0, fuse.ENOATTR
	}
	v, err := f.r.Xattr(n.Inode, attr)
	if err != nil {
		return 0, f.status("getxattr", h.NodeId, err)
	}
	if len(dest) < len(v) {
		return uint32(len(v)), fuse.ERANGE
	}
	return uint32(copy(dest, v)), fuse.OK
}

// ListXAttr lists xattr names in image order. Like the kernel's squashfs,
// which lists trusted.* only to CAP_SYS_ADMIN, it lists them only to uid 0
// (FUSE does not tell the caller's capabilities).
func (f *FS) ListXAttr(_ <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	f.stats.add(opListxattr)
	n, st := f.node("listxattr", h.NodeId)
	if !st.Ok() {
		return 0, st
	}
	if !n.HasXattrs() {
		return 0, fuse.OK
	}
	xs, err := f.r.Xattrs(n.Inode)
	if err != nil {
		return 0, f.status("listxattr", h.NodeId, err)
	}
	var b strings.Builder
	for _, x := range xs {
		if h.Uid != 0 && strings.HasPrefix(x.Name, "trusted.") {
			continue
		}
		b.WriteString(x.Name)
		b.WriteByte(0)
	}
	if len(dest) < b.Len() {
		return uint32(b.Len()), fuse.ERANGE
	}
	return uint32(copy(dest, b.String())), fuse.OK
}

// StatFs reports the figures of the kernel's squashfs_statfs.
func (f *FS) StatFs(_ <-chan struct{}, _ *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	f.stats.add(opStatfs)
	bs := uint64(f.sb.BlockSize)
	*out = fuse.StatfsOut{
		Bsize:   uint32(bs),
		Frsize:  uint32(bs),
		Files:   uint64(f.sb.Inodes),
		NameLen: maxNameLen,
	}
	if bs > 0 && f.sb.BytesUsed > 0 {
		out.Blocks = (f.sb.BytesUsed-1)/bs + 1
	}
	return fuse.OK
}

// Everything that would modify the image fails with EROFS (the read-only
// mount stops most of it in the kernel already).

func (f *FS) erofs() fuse.Status { f.stats.add(opModify); return fuse.EROFS }

func (f *FS) SetAttr(_ <-chan struct{}, _ *fuse.SetAttrIn, _ *fuse.AttrOut) fuse.Status {
	return f.erofs()
}
func (f *FS) Mknod(_ <-chan struct{}, _ *fuse.MknodIn, _ string, _ *fuse.EntryOut) fuse.Status {
	return f.erofs()
}
func (f *FS) Mkdir(_ <-chan struct{}, _ *fuse.MkdirIn, _ string, _ *fuse.EntryOut) fuse.Status {
	return f.erofs()
}
func (f *FS) Unlink(_ <-chan struct{}, _ *fuse.InHeader, _ string) fuse.Status { return f.erofs() }
func (f *FS) Rmdir(_ <-chan struct{}, _ *fuse.InHeader, _ string) fuse.Status  { return f.erofs() }
func (f *FS) Rename(_ <-chan struct{}, _ *fuse.RenameIn, _, _ string) fuse.Status {
	return f.erofs()
}
func (f *FS) Link(_ <-chan struct{}, _ *fuse.LinkIn, _ string, _ *fuse.EntryOut) fuse.Status {
	return f.erofs()
}
func (f *FS) Symlink(_ <-chan struct{}, _ *fuse.InHeader, _, _ string, _ *fuse.EntryOut) fuse.Status {
	return f.erofs()
}
func (f *FS) SetXAttr(_ <-chan struct{}, _ *fuse.SetXAttrIn, _ string, _ []byte) fuse.Status {
	return f.erofs()
}
func (f *FS) RemoveXAttr(_ <-chan struct{}, _ *fuse.InHeader, _ string) fuse.Status {
	return f.erofs()
}
func (f *FS) Create(_ <-chan struct{}, _ *fuse.CreateIn, _ string, _ *fuse.CreateOut) fuse.Status {
	return f.erofs()
}
func (f *FS) Tmpfile(_ <-chan struct{}, _ *fuse.CreateIn, _ *fuse.CreateOut) fuse.Status {
	return f.erofs()
}
func (f *FS) Write(_ <-chan struct{}, _ *fuse.WriteIn, _ []byte) (uint32, fuse.Status) {
	return 0, f.erofs()
}
func (f *FS) Fallocate(_ <-chan struct{}, _ *fuse.FallocateIn) fuse.Status { return f.erofs() }
func (f *FS) CopyFileRange(_ <-chan struct{}, _ *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	return 0, f.erofs()
}
