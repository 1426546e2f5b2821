// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"syscall"
)

// InodeRef locates an inode: the start of its metadata block relative to
// the inode table, shifted left by 16, or'ed with the offset in the block.
type InodeRef uint64

func (ref InodeRef) block() uint64 { return uint64(ref) >> 16 }
func (ref InodeRef) offset() int   { return int(ref & 0xffff) }

// Type is the type of an inode.
type Type uint8

// Inode types (the basic squashfs type numbers).
const (
	TypeDir      Type = 1
	TypeFile     Type = 2
	TypeSymlink  Type = 3
	TypeBlockDev Type = 4
	TypeCharDev  Type = 5
	TypeFifo     Type = 6
	TypeSocket   Type = 7
)

// extendedType is what an extended inode adds to its basic type on disk
// (SQUASHFS_LDIR_TYPE is SQUASHFS_DIR_TYPE + 7, and so on to
// SQUASHFS_LSOCKET_TYPE, 14).
const extendedType = 7

// valid reports whether t is one of the seven basic types.
func (t Type) valid() bool { return t >= TypeDir && t <= TypeSocket }

func (t Type) String() string {
	switch t {
	case TypeDir:
		return "dir"
	case TypeFile:
		return "file"
	case TypeSymlink:
		return "symlink"
	case TypeBlockDev:
		return "blockdev"
	case TypeCharDev:
		return "chardev"
	case TypeFifo:
		return "fifo"
	case TypeSocket:
		return "socket"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

const noXattr = 0xffffffff

// Inode is a decoded inode. Treat it as read-only.
type Inode struct {
	Ref   InodeRef
	Ino   uint32 // squashfs inode number (st_ino of the kernel driver)
	Type  Type
	Perm  uint16 // permission bits incl. setuid, setgid, sticky
	UID   uint32
	GID   uint32
	Mtime int64
	Nlink uint32
	Size  uint64 // file: bytes; dir: the inode's file_size; symlink: target length
	// Sparse is the count of a file's bytes stored as sparse (zero)
	// blocks, from an extended file inode (0 in basic ones). The kernel
	// subtracts it from Size for st_blocks. It is informational: reads
	// never depend on it.
	Sparse uint64
	// Parent is a directory's parent_inode field: the inode number of its
	// parent directory (the d_ino of its ".."), for the root the inode
	// count plus one as mksquashfs writes it. 0 for other types.
	Parent uint32
	Rdev   uint32 // device number in the kernel's new_encode_dev form
	Target string // symlink target

	Extended bool // stored as an extended inode

	xattr uint32 // xattr id, noXattr when none

	// directories
	dirBlock  uint32 // metadata block relative to the directory table
	dirOffset uint16
	index     []dirIndex

	// regular files
	blocksStart uint64
	frag        uint32
	fragOffset  uint32
	sizes       []uint32 // on-disk size words of the data blocks
	starts      []int64  // disk offset of each data block
}

type dirIndex struct {
	index uint32 // byte position of a directory header in the listing
	start uint32 // its metadata block, relative to the directory table
	name  string // the first name under that header
}

// Major returns the major device number, decoded like the kernel's
// new_decode_dev.
func (i *Inode) Major() uint32 { return (i.Rdev & 0xfff00) >> 8 }

// Minor returns the minor device number.
func (i *Inode) Minor() uint32 { return (i.Rdev & 0xff) | ((i.Rdev >> 12) & 0xfff00) }

// HasXattrs reports whether the inode has xattrs.
func (i *Inode) HasXattrs() bool { return i.xattr != noXattr }

// UnixMode returns st_mode: the S_IFxxx type bits or'ed with Perm.
func (i *Inode) UnixMode() uint32 {
	m := uint32(i.Perm)
	switch i.Type {
	case TypeDir:
		m |= syscall.S_IFDIR
	case TypeFile:
		m |= syscall.S_IFREG
	case TypeSymlink:
		m |= syscall.S_IFLNK
	case TypeBlockDev:
		m |= syscall.S_IFBLK
	case TypeCharDev:
		m |= syscall.S_IFCHR
	case TypeFifo:
		m |= syscall.S_IFIFO
	case TypeSocket:
		m |= syscall.S_IFSOCK
	}
	return m
}

// FileMode returns the io/fs mode.
func (i *Inode) FileMode() fs.FileMode {
	m := fs.FileMode(i.Perm & 0o777)
	if i.Perm&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if i.Perm&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if i.Perm&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch i.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeBlockDev:
		m |= fs.ModeDevice
	case TypeCharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeFifo:
		m |= fs.ModeNamedPipe
	case TypeSocket:
		m |= fs.ModeSocket
	}
	return m
}

// Root returns the root directory inode.
func (r *Reader) Root() (*Inode, error) {
	in, err := r.Inode(r.sb.RootInode)
	if err != nil {
		return nil, err
	}
	if in.Type != TypeDir {
		return nil, formatErr(32, "root inode is a %s", in.Type)
	}
	return in, nil
}

// maxSymlink bounds symlink targets (the kernel's PATH_MAX).
const maxSymlink = 4096

// Inode reads the inode at ref.
func (r *Reader) Inode(ref InodeRef) (*Inode, error) {
	if ref.offset() >= metadataSize || ref.block() >= uint64(r.inodeEnd)-r.sb.InodeTableStart {
		return nil, formatErr(-1, "inode reference 0x%x outside the inode table", uint64(ref))
	}
	pos := metaPos{block: int64(r.sb.InodeTableStart + ref.block()), off: ref.offset()}
	in, err := r.parseInode(&pos)
	if err != nil {
		return nil, fmt.Errorf("read inode 0x%x: %w", uint64(ref), err)
	}
	in.Ref = ref
	return in, nil
}

// inodeReader reads one inode's fields from the inode table.
type inodeReader struct {
	r   *Reader
	pos *metaPos
	at  int64 // the inode's metadata block, for errors
	buf [40]byte
}

// read returns the next n (at most 40) bytes of the inode.
func (ir *inodeReader) read(n int) ([]byte, error) {
	if err := ir.r.readMeta(ir.pos, ir.buf[:n], ir.r.inodeEnd); err != nil {
		return nil, err
	}
	return ir.buf[:n], nil
}

// readBytes returns the next n bytes of the inode in a new slice.
func (ir *inodeReader) readBytes(n uint32) ([]byte, error) {
	b := make([]byte, n)
	if err := ir.r.readMeta(ir.pos, b, ir.r.inodeEnd); err != nil {
		return nil, err
	}
	return b, nil
}

// The size of an inode's header, the fields every type shares.
const inodeHeaderSize = 16

func (r *Reader) parseInode(pos *metaPos) (*Inode, error) {
	le := binary.LittleEndian
	ir := &inodeReader{r: r, pos: pos, at: pos.block}
	h, err := ir.read(inodeHeaderSize)
	if err != nil {
		return nil, err
	}
	typ := le.Uint16(h[0:])
	in := &Inode{
		Perm:  le.Uint16(h[2:]) & 0o7777,
		Mtime: int64(le.Uint32(h[8:])),
		Ino:   le.Uint32(h[12:]),
		xattr: noXattr,
		Nlink: 1,
	}
	in.Type, in.Extended = Type(typ), false
	if typ > extendedType {
		in.Type, in.Extended = Type(typ-extendedType), true
	}
	if typ > extendedType+uint16(TypeSocket) || !in.Type.valid() {
		return nil, formatErr(ir.at, "unknown inode type %d", typ)
	}
	uidx, gidx := le.Uint16(h[4:]), le.Uint16(h[6:])
	if int(uidx) >= len(r.ids) || int(gidx) >= len(r.ids) {
		return nil, formatErr(ir.at, "uid index %d or gid index %d beyond the %d ids", uidx, gidx, len(r.ids))
	}
	in.UID, in.GID = r.ids[uidx], r.ids[gidx]
	if in.Ino == 0 || in.Ino > r.sb.Inodes {
		return nil, formatErr(ir.at, "inode number %d outside 1..%d", in.Ino, r.sb.Inodes)
	}
	switch in.Type {
	case TypeDir:
		err = ir.dir(in)
	case TypeFile:
		err = ir.file(in)
	case TypeSymlink:
		err = ir.symlink(in)
	case TypeBlockDev, TypeCharDev, TypeFifo, TypeSocket:
		err = ir.special(in)
	}
	if err != nil {
		return nil, err
	}
	if in.xattr != noXattr && in.xattr >= r.xattrIDs {
		return nil, formatErr(ir.at, "xattr id %d beyond the %d xattr ids", in.xattr, r.xattrIDs)
	}
	return in, nil
}

// dir reads the rest of a directory inode, with an extended one's index.
func (ir *inodeReader) dir(in *Inode) error {
	le := binary.LittleEndian
	if !in.Extended {
		p, err := ir.read(16)
		if err != nil {
			return err
		}
		in.dirBlock = le.Uint32(p[0:])
		in.Nlink = le.Uint32(p[4:])
		in.Size = uint64(le.Uint16(p[8:]))
		in.dirOffset = le.Uint16(p[10:])
		in.Parent = le.Uint32(p[12:])
		return nil
	}
	p, err := ir.read(24)
	if err != nil {
		return err
	}
	in.Nlink = le.Uint32(p[0:])
	in.Size = uint64(le.Uint32(p[4:]))
	in.dirBlock = le.Uint32(p[8:])
	in.Parent = le.Uint32(p[12:])
	n := int(le.Uint16(p[16:]))
	in.dirOffset = le.Uint16(p[18:])
	in.xattr = le.Uint32(p[20:])
	for i := 0; i < n; i++ {
		p, err := ir.read(12)
		if err != nil {
			return err
		}
		ix := dirIndex{index: le.Uint32(p[0:]), start: le.Uint32(p[4:])}
		ns := le.Uint32(p[8:]) + 1
		if ns > 256 {
			return formatErr(ir.at, "directory index name of %d bytes", ns)
		}
		name, err := ir.readBytes(ns)
		if err != nil {
			return err
		}
		ix.name = string(name)
		in.index = append(in.index, ix)
	}
	return nil
}

// file reads the rest of a regular file inode and its block list.
func (ir *inodeReader) file(in *Inode) error {
	le := binary.LittleEndian
	r := ir.r
	if !in.Extended {
		p, err := ir.read(16)
		if err != nil {
			return err
		}
		in.blocksStart = uint64(le.Uint32(p[0:]))
		in.frag = le.Uint32(p[4:])
		in.fragOffset = le.Uint32(p[8:])
		in.Size = uint64(le.Uint32(p[12:]))
	} else {
		p, err := ir.read(40)
		if err != nil {
			return err
		}
		f := fields{b: p} // the extended file inode's fields, in order
		in.blocksStart = f.u64()
		in.Size = f.u64()
		in.Sparse = f.u64()
		in.Nlink = f.u32()
		in.frag = f.u32()
		in.fragOffset = f.u32()
		in.xattr = f.u32()
	}
	if in.Size > 1<<62 {
		return formatErr(ir.at, "file size %d", in.Size)
	}
	nb := in.Size / uint64(r.bs)
	if in.frag == noFragment {
		nb = (in.Size + uint64(r.bs) - 1) / uint64(r.bs)
	} else {
		if in.frag >= r.sb.Fragments {
			return formatErr(ir.at, "fragment %d beyond the %d fragments", in.frag, r.sb.Fragments)
		}
		if in.Size%uint64(r.bs) == 0 {
			return formatErr(ir.at, "file of whole blocks with a fragment")
		}
		if uint64(in.fragOffset) >= uint64(r.bs) {
			return formatErr(ir.at, "fragment offset %d beyond the block size", in.fragOffset)
		}
	}
	// Each block size word is 4 bytes of this table: a list longer than
	// the rest of the table is corrupt; read it in chunks so a claimed
	// count never drives the allocation.
	return r.readBlockList(in, ir.pos, nb, ir.at)
}

// symlink reads the rest of a symlink inode and its target.
func (ir *inodeReader) symlink(in *Inode) error {
	le := binary.LittleEndian
	p, err := ir.read(8)
	if err != nil {
		return err
	}
	in.Nlink = le.Uint32(p[0:])
	n := le.Uint32(p[4:])
	if n > maxSymlink {
		return formatErr(ir.at, "symlink target of %d bytes", n)
	}
	t, err := ir.readBytes(n)
	if err != nil {
		return err
	}
	in.Target = string(t)
	in.Size = uint64(n)
	if in.Extended {
		p, err := ir.read(4)
		if err != nil {
			return err
		}
		in.xattr = le.Uint32(p)
	}
	return nil
}

// special reads the rest of a device, fifo or socket inode: the link
// count, a device's number, an extended inode's xattr id.
func (ir *inodeReader) special(in *Inode) error {
	le := binary.LittleEndian
	dev := in.Type == TypeBlockDev || in.Type == TypeCharDev
	n := 4
	if dev {
		n += 4
	}
	if in.Extended {
		n += 4
	}
	p, err := ir.read(n)
	if err != nil {
		return err
	}
	in.Nlink, p = le.Uint32(p), p[4:]
	if dev {
		in.Rdev, p = le.Uint32(p), p[4:]
	}
	if in.Extended {
		in.xattr = le.Uint32(p)
	}
	return nil
}

func (r *Reader) readBlockList(in *Inode, pos *metaPos, nb uint64, at int64) error {
	if nb == 0 {
		return nil
	}
	// At most 8192 bytes per metadata block of at least 3 bytes on disk.
	if nb*4 > uint64(r.inodeEnd-pos.block)/3*metadataSize+metadataSize {
		return formatErr(at, "block list of %d blocks longer than the inode table", nb)
	}
	const chunk = 2048
	var buf [chunk * 4]byte
	in.sizes = make([]uint32, 0, min(nb, chunk))
	in.starts = make([]int64, 0, min(nb, chunk))
	off := in.blocksStart
	for left := nb; left > 0; {
		n := min(left, chunk)
		if err := r.readMeta(pos, buf[:n*4], r.inodeEnd); err != nil {
			return err
		}
		for i := uint64(0); i < n; i++ {
			w := binary.LittleEndian.Uint32(buf[i*4:])
			sz := uint64(w & 0xffffff)
			if w&^0x1ffffff != 0 || sz > uint64(r.bs) {
				return formatErr(at, "block %d size word 0x%x", len(in.sizes), w)
			}
			if off+sz > uint64(r.size) {
				return formatErr(at, "block %d at 0x%x of %d bytes past the end of the image", len(in.sizes), off, sz)
			}
			in.sizes = append(in.sizes, w)
			in.starts = append(in.starts, int64(off))
			off += sz
		}
		left -= n
	}
	return nil
}

// fields reads consecutive little-endian fields of b; the caller has
// checked that b holds them all.
type fields struct {
	b   []byte
	off int
}

func (f *fields) u32() uint32 { v := binary.LittleEndian.Uint32(f.b[f.off:]); f.off += 4; return v }
func (f *fields) u64() uint64 { v := binary.LittleEndian.Uint64(f.b[f.off:]); f.off += 8; return v }
