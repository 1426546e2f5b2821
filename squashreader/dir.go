// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"strings"
)

// DirEntry is one directory entry. Next is the cookie to pass to ReadDir to
// continue after this entry.
type DirEntry struct {
	Name string
	Ref  InodeRef
	Ino  uint32
	Type Type
	Next int64
}

const (
	dirHeaderSize = 12
	dirEntrySize  = 8
	maxDirSize    = 1 << 31
)

// dirCursor walks a directory listing.
type dirCursor struct {
	r      *Reader
	dir    *Inode
	pos    metaPos
	at     int64 // byte position in the listing
	length int64
	// current header
	hdrAt    int64
	left     uint32 // entries left under the header
	start    uint32
	baseIno  uint32
	lastName string
}

func (r *Reader) openDir(dir *Inode) (*dirCursor, error) {
	if dir.Type != TypeDir {
		return nil, fmt.Errorf("read directory: inode %d is a %s: %w", dir.Ino, dir.Type, errNotDir)
	}
	if dir.Size < 3 || dir.Size >= maxDirSize {
		return nil, formatErr(-1, "directory inode %d of size %d", dir.Ino, dir.Size)
	}
	if dir.dirOffset >= metadataSize || uint64(dir.dirBlock) >= uint64(r.dirEnd)-r.sb.DirTableStart {
		return nil, formatErr(-1, "directory inode %d listing at 0x%x:%d outside the directory table", dir.Ino, dir.dirBlock, dir.dirOffset)
	}
	return &dirCursor{
		r:      r,
		dir:    dir,
		pos:    metaPos{block: int64(r.sb.DirTableStart) + int64(dir.dirBlock), off: int(dir.dirOffset)},
		length: int64(dir.Size) - 3,
	}, nil
}

// seek moves the cursor to listing position at, which must hold a header.
func (c *dirCursor) seek(at int64, block int64) error {
	if block >= 0 {
		// From a directory index entry: block is the metadata block holding
		// position at.
		c.pos = metaPos{block: int64(c.r.sb.DirTableStart) + block, off: int((int64(c.dir.dirOffset) + at) % metadataSize)}
		c.at = at
		return nil
	}
	if err := c.r.skipMeta(&c.pos, at-c.at, c.r.dirEnd); err != nil {
		return err
	}
	c.at = at
	return nil
}

// next returns the next entry, or ok false at the end.
func (c *dirCursor) next() (e DirEntry, ok bool, err error) {
	le := binary.LittleEndian
	r := c.r
	if c.left == 0 {
		if c.at >= c.length {
			return e, false, nil
		}
		if c.length-c.at < dirHeaderSize {
			return e, false, formatErr(c.pos.block, "directory %d: truncated header at %d", c.dir.Ino, c.at)
		}
		var h [dirHeaderSize]byte
		if err := r.readMeta(&c.pos, h[:], r.dirEnd); err != nil {
			return e, false, err
		}
		c.hdrAt = c.at
		c.at += dirHeaderSize
		c.left = le.Uint32(h[0:]) + 1
		c.start = le.Uint32(h[4:])
		c.baseIno = le.Uint32(h[8:])
		if c.left > 256 || c.left == 0 {
			return e, false, formatErr(c.pos.block, "directory %d: header of %d entries", c.dir.Ino, c.left)
		}
		if uint64(c.start) >= uint64(r.inodeEnd)-r.sb.InodeTableStart {
			return e, false, formatErr(c.pos.block, "directory %d: inode block 0x%x outside the inode table", c.dir.Ino, c.start)
		}
	}
	if c.length-c.at < dirEntrySize {
		return e, false, formatErr(c.pos.block, "directory %d: truncated entry at %d", c.dir.Ino, c.at)
	}
	var h [dirEntrySize]byte
	if err := r.readMeta(&c.pos, h[:], r.dirEnd); err != nil {
		return e, false, err
	}
	off := le.Uint16(h[0:])
	delta := int16(le.Uint16(h[2:]))
	typ := le.Uint16(h[4:])
	ns := int64(le.Uint16(h[6:])) + 1
	if ns > 256 || c.length-c.at-dirEntrySize < ns {
		return e, false, formatErr(c.pos.block, "directory %d: name of %d bytes at %d", c.dir.Ino, ns, c.at)
	}
	var nb [256]byte
	if err := r.readMeta(&c.pos, nb[:ns], r.dirEnd); err != nil {
		return e, false, err
	}
	c.at += dirEntrySize + ns
	c.left--
	name := string(nb[:ns])
	if err := checkName(name); err != nil {
		return e, false, formatErr(c.pos.block, "directory %d: %v", c.dir.Ino, err)
	}
	if c.lastName != "" && name <= c.lastName {
		return e, false, formatErr(c.pos.block, "directory %d: entry %q after %q: not in name order", c.dir.Ino, name, c.lastName)
	}
	c.lastName = name
	if typ > uint16(TypeSocket) || !Type(typ).valid() {
		return e, false, formatErr(c.pos.block, "directory %d: entry %q of type %d", c.dir.Ino, name, typ)
	}
	if off >= metadataSize {
		return e, false, formatErr(c.pos.block, "directory %d: entry %q inode offset %d", c.dir.Ino, name, off)
	}
	e = DirEntry{
		Name: name,
		Ref:  InodeRef(uint64(c.start)<<16 | uint64(off)),
		Ino:  uint32(int64(c.baseIno) + int64(delta)),
		Type: Type(typ),
		Next: c.hdrAt<<32 | c.at,
	}
	return e, true, nil
}

// checkName rejects names that must never reach a caller.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("invalid entry name %q", name)
	}
	return nil
}

var errNotDir = fmt.Errorf("not a directory")

// ReadDir returns up to n (all when n <= 0) entries of dir that follow the
// cookie offset (0: from the start). "." and ".." are not included. At the
// end it returns an empty slice and no error.
func (r *Reader) ReadDir(dir *Inode, offset int64, n int) ([]DirEntry, error) {
	c, err := r.openDir(dir)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("read directory %d: negative offset %d", dir.Ino, offset)
	}
	var resume int64
	if offset > 0 {
		hdr, at := offset>>32, offset&0xffffffff
		if hdr >= at || at > c.length {
			return []DirEntry{}, nil
		}
		if err := c.seekHeader(hdr); err != nil {
			return nil, err
		}
		resume = at
	}
	var out []DirEntry
	for n <= 0 || len(out) < n {
		e, ok, err := c.next()
		if err != nil {
			return nil, fmt.Errorf("read directory %d: %w", dir.Ino, err)
		}
		if !ok {
			break
		}
		if c.at <= resume {
			continue
		}
		out = append(out, e)
	}
	if out == nil {
		out = []DirEntry{}
	}
	return out, nil
}

// seekHeader positions the cursor at the header at listing position at,
// using the directory index when it helps.
func (c *dirCursor) seekHeader(at int64) error {
	blk := int64(-1)
	from := int64(0)
	for _, ix := range c.dir.index {
		if int64(ix.index) <= at && int64(ix.index) > from {
			from, blk = int64(ix.index), int64(ix.start)
		}
	}
	if blk >= 0 {
		if err := c.seek(from, blk); err != nil {
			return err
		}
	}
	return c.seek(at, -1)
}

// Lookup finds name in dir. The error wraps fs.ErrNotExist when absent.
func (r *Reader) Lookup(dir *Inode, name string) (*Inode, error) {
	e, err := r.lookupEntry(dir, name)
	if err != nil {
		return nil, err
	}
	in, err := r.Inode(e.Ref)
	if err != nil {
		return nil, err
	}
	if in.Type != e.Type {
		return nil, formatErr(-1, "directory %d: entry %q of type %s names an inode of type %s", dir.Ino, name, e.Type, in.Type)
	}
	return in, nil
}

func (r *Reader) lookupEntry(dir *Inode, name string) (DirEntry, error) {
	c, err := r.openDir(dir)
	if err != nil {
		return DirEntry{}, err
	}
	if checkName(name) != nil {
		return DirEntry{}, fmt.Errorf("lookup %q: %w", name, fs.ErrNotExist)
	}
	// The index names the first entry of some headers, in name order.
	blk, from := int64(-1), int64(0)
	for _, ix := range dir.index {
		if ix.name > name {
			break
		}
		if int64(ix.index) >= c.length || int64(ix.index) < from {
			return DirEntry{}, formatErr(-1, "directory %d: bad index entry at %d", dir.Ino, ix.index)
		}
		blk, from = int64(ix.start), int64(ix.index)
	}
	if blk >= 0 {
		if err := c.seek(from, blk); err != nil {
			return DirEntry{}, err
		}
	}
	for {
		e, ok, err := c.next()
		if err != nil {
			return DirEntry{}, fmt.Errorf("lookup %q in directory %d: %w", name, dir.Ino, err)
		}
		if !ok || e.Name > name {
			return DirEntry{}, fmt.Errorf("lookup %q: %w", name, fs.ErrNotExist)
		}
		if e.Name == name {
			return e, nil
		}
	}
}
