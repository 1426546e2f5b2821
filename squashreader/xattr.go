// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"encoding/binary"
	"fmt"
)

// Xattr is one extended attribute; Name has its namespace prefix.
type Xattr struct {
	Name  string
	Value []byte
}

const (
	maxXattrValue = 64 << 10 // XATTR_SIZE_MAX
	maxXattrCount = 1 << 16
	xattrOOL      = 0x100
)

var xattrPrefixes = [...]string{"user.", "trusted.", "security."}

// HasXattrs reports whether any inode of the image can have extended
// attributes: false when the image has no xattr id table or an empty one
// (every inode's xattr id is checked against the table's count).
func (r *Reader) HasXattrs() bool { return r.xattrIDs > 0 }

func (r *Reader) readXattrTable() error {
	off := int64(r.sb.XattrTableStart)
	var h [16]byte
	if err := r.readFull(h[:], off, "xattr id table header"); err != nil {
		return err
	}
	kv := binary.LittleEndian.Uint64(h[0:])
	n := binary.LittleEndian.Uint32(h[8:])
	if kv < superblockSize || kv >= uint64(off) {
		return formatErr(off, "xattr key/value table at 0x%x outside the image", kv)
	}
	idx, err := r.readIndex(off+16, uint64(n)*16, "xattr id table")
	if err != nil {
		return err
	}
	for _, b := range idx {
		if b < kv {
			return formatErr(off, "xattr id table block at 0x%x before the key/value table", b)
		}
	}
	r.xattrKV, r.xattrIDs, r.xattrIdx = int64(kv), n, idx
	return nil
}

// xattrKVEnd bounds reads of the key/value metadata.
func (r *Reader) xattrKVEnd() int64 {
	if len(r.xattrIdx) > 0 {
		return int64(r.xattrIdx[0])
	}
	return int64(r.sb.XattrTableStart)
}

func (r *Reader) xattrPos(ref uint64) (metaPos, error) {
	blk, off := ref>>16, ref&0xffff
	if off >= metadataSize || blk >= uint64(r.xattrKVEnd()-r.xattrKV) {
		return metaPos{}, formatErr(-1, "xattr reference 0x%x outside the table", ref)
	}
	return metaPos{block: r.xattrKV + int64(blk), off: int(off)}, nil
}

// XattrSize returns the size field of in's xattr id entry: the total
// length of its xattrs as mksquashfs counts it (names without their
// namespace prefix, plus values), which the kernel adds to st_blocks.
// It is 0 for an inode without xattrs.
func (r *Reader) XattrSize(in *Inode) (uint32, error) {
	if in.xattr == noXattr {
		return 0, nil
	}
	e, err := r.xattrEntry(in)
	if err != nil {
		return 0, fmt.Errorf("read xattr id of inode %d: %w", in.Ino, err)
	}
	return binary.LittleEndian.Uint32(e[12:]), nil
}

// xattrEntry reads in's 16-byte xattr id entry: reference, count, size.
func (r *Reader) xattrEntry(in *Inode) ([16]byte, error) {
	var e [16]byte
	if in.xattr >= r.xattrIDs {
		return e, formatErr(-1, "xattr id %d beyond the %d ids", in.xattr, r.xattrIDs)
	}
	err := r.tableEntry(r.xattrIdx, int64(r.sb.XattrTableStart), uint64(in.xattr), e[:], "xattr id table")
	return e, err
}

// Xattrs returns the xattrs of in, in image order.
func (r *Reader) Xattrs(in *Inode) ([]Xattr, error) {
	out, err := r.xattrs(in, "")
	if err != nil {
		return nil, fmt.Errorf("read xattrs of inode %d: %w", in.Ino, err)
	}
	return out, nil
}

// Xattr returns the value of the xattr name of in; the error wraps
// ErrNoXattr when there is none.
func (r *Reader) Xattr(in *Inode, name string) ([]byte, error) {
	out, err := r.xattrs(in, name)
	if err != nil {
		return nil, fmt.Errorf("read xattr %s of inode %d: %w", name, in.Ino, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("xattr %s of inode %d: %w", name, in.Ino, ErrNoXattr)
	}
	return out[0].Value, nil
}

// xattrs reads all xattrs of in, or only the one called only.
func (r *Reader) xattrs(in *Inode, only string) ([]Xattr, error) {
	if in.xattr == noXattr {
		return []Xattr{}, nil
	}
	le := binary.LittleEndian
	e, err := r.xattrEntry(in)
	if err != nil {
		return nil, err
	}
	ref, count := le.Uint64(e[0:]), le.Uint32(e[8:])
	if count > maxXattrCount {
		return nil, formatErr(-1, "xattr id %d with %d xattrs", in.xattr, count)
	}
	pos, err := r.xattrPos(ref)
	if err != nil {
		return nil, err
	}
	end := r.xattrKVEnd()
	out := []Xattr{}
	for i := uint32(0); i < count; i++ {
		var kh [4]byte
		if err := r.readMeta(&pos, kh[:], end); err != nil {
			return nil, err
		}
		typ, ns := le.Uint16(kh[0:]), le.Uint16(kh[2:])
		if typ&^xattrOOL > 2 {
			return nil, formatErr(pos.block, "xattr of unknown type 0x%x", typ)
		}
		if ns == 0 || ns > 255 {
			return nil, formatErr(pos.block, "xattr name of %d bytes", ns)
		}
		nb := make([]byte, ns)
		if err := r.readMeta(&pos, nb, end); err != nil {
			return nil, err
		}
		name := xattrPrefixes[typ&^xattrOOL] + string(nb)
		var vh [4]byte
		if err := r.readMeta(&pos, vh[:], end); err != nil {
			return nil, err
		}
		vs := le.Uint32(vh[:])
		want := only == "" || only == name
		if typ&xattrOOL != 0 {
			if vs != 8 {
				return nil, formatErr(pos.block, "out-of-line xattr %s reference of %d bytes", name, vs)
			}
			var rb [8]byte
			if err := r.readMeta(&pos, rb[:], end); err != nil {
				return nil, err
			}
			if !want {
				continue
			}
			vpos, err := r.xattrPos(le.Uint64(rb[:]))
			if err != nil {
				return nil, err
			}
			v, err := r.xattrValue(&vpos, end, name)
			if err != nil {
				return nil, err
			}
			out = append(out, Xattr{name, v})
		} else {
			if vs > maxXattrValue {
				return nil, formatErr(pos.block, "xattr %s value of %d bytes", name, vs)
			}
			if !want {
				if err := r.skipMeta(&pos, int64(vs), end); err != nil {
					return nil, err
				}
				continue
			}
			v := make([]byte, vs)
			if err := r.readMeta(&pos, v, end); err != nil {
				return nil, err
			}
			out = append(out, Xattr{name, v})
		}
		if only != "" {
			return out, nil
		}
	}
	return out, nil
}

func (r *Reader) xattrValue(pos *metaPos, end int64, name string) ([]byte, error) {
	var vh [4]byte
	if err := r.readMeta(pos, vh[:], end); err != nil {
		return nil, err
	}
	vs := binary.LittleEndian.Uint32(vh[:])
	if vs > maxXattrValue {
		return nil, formatErr(pos.block, "xattr %s value of %d bytes", name, vs)
	}
	v := make([]byte, vs)
	if err := r.readMeta(pos, v, end); err != nil {
		return nil, err
	}
	return v, nil
}
