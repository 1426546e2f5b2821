// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// blockKey identifies a decompressed data or fragment block: where it is,
// its on-disk size word and the size it must decompress to.
type blockKey struct {
	off  int64
	word uint32
	want uint32
}

const uncompressedBit = 1 << 24

var errNotFile = errors.New("not a regular file")

// zeros backs sparse blocks; made on first use, not at start-up (a
// mount that never meets a sparse block should not pay for 1 MiB).
var zeros = sync.OnceValue(func() []byte { return make([]byte, 1<<20) })

// block returns the decompressed block described by k (read-only), for a
// read (ahead false) or the read-ahead workers.
func (r *Reader) block(k blockKey, ahead bool) ([]byte, error) {
	n := int64(k.word &^ uncompressedBit)
	if n == 0 {
		return zeros()[:k.want], nil
	}
	return r.data.get(k, func() ([]byte, error) {
		if ahead {
			r.nAhead.Add(1)
		} else {
			r.nDemand.Add(1)
		}
		return r.loadBlock(k)
	})
}

func (r *Reader) loadBlock(k blockKey) ([]byte, error) {
	n := int64(k.word &^ uncompressedBit)
	if n > r.bs || k.want > uint32(r.bs) {
		return nil, formatErr(k.off, "data block of %d bytes", n)
	}
	if k.word&uncompressedBit != 0 {
		if n != int64(k.want) {
			return nil, formatErr(k.off, "uncompressed block of %d bytes, want %d", n, k.want)
		}
		out := make([]byte, n)
		if err := r.readFull(out, k.off, "data block"); err != nil {
			return nil, err
		}
		return out, nil
	}
	return r.decodeBlock(make([]byte, 0, k.want), k)
}

// decodeBlock decompresses the compressed data block k into dst[:0]
// (cap(dst) >= k.want: the output is dst[:k.want]).
func (r *Reader) decodeBlock(dst []byte, k blockKey) ([]byte, error) {
	n := int64(k.word &^ uncompressedBit)
	bp := r.bufPool.Get().(*[]byte)
	defer r.bufPool.Put(bp)
	src := (*bp)[:n]
	if err := r.readFull(src, k.off, "data block"); err != nil {
		return nil, err
	}
	out, err := r.dec.Decode(dst[:0:k.want], src)
	if err != nil {
		return nil, formatErr(k.off, "decompress data block: %v", err)
	}
	if len(out) != int(k.want) {
		return nil, formatErr(k.off, "data block decompressed to %d bytes, want %d", len(out), k.want)
	}
	return out, nil
}

// readWhole decompresses block bi of f straight into p (the whole
// block, from its start) when p holds it, the block is compressed, and
// it is neither cached nor being loaded: the caller (the kernel, for a
// FUSE mount) keeps what it read, so the block is not kept here, and
// its bytes are not copied twice. ok is false when it does not apply.
func (r *Reader) readWhole(f *Inode, bi int64, p []byte) (n int, ok bool, err error) {
	if bi >= int64(len(f.sizes)) {
		return 0, false, nil // the tail, in a fragment
	}
	k := r.dataKey(f, bi)
	want := int64(k.want)
	size := int64(k.word &^ uncompressedBit)
	if int64(len(p)) < want || size == 0 || k.word&uncompressedBit != 0 || size > r.bs || r.data.peek(k) {
		return 0, false, nil
	}
	r.nDemand.Add(1)
	r.nDirect.Add(1)
	// As the data cache's loads do: a decoder panic is an error, not a crash.
	defer func() {
		if v := recover(); v != nil {
			n, err = 0, formatErr(-1, "decoder panic: %v", v)
		}
	}()
	if _, err := r.decodeBlock(p[:0:want], k); err != nil {
		return 0, true, err
	}
	return int(want), true, nil
}

// fragment returns the location of fragment block i.
func (r *Reader) fragment(i uint32) (blockKey, error) {
	var b [16]byte
	if err := r.tableEntry(r.fragIndex, int64(r.sb.FragTableStart), uint64(i), b[:], "fragment table"); err != nil {
		return blockKey{}, fmt.Errorf("read fragment %d: %w", i, err)
	}
	k := blockKey{off: int64(binary.LittleEndian.Uint64(b[0:])), word: binary.LittleEndian.Uint32(b[8:])}
	n := int64(k.word &^ uncompressedBit)
	if k.word&^(uncompressedBit|0xffffff) != 0 || n == 0 || n > r.bs || k.off < superblockSize || k.off > r.size-n {
		return blockKey{}, formatErr(-1, "fragment %d at 0x%x size word 0x%x", i, k.off, k.word)
	}
	return k, nil
}

// dataKey is the key of full block bi of f (bi < len(f.sizes)).
func (r *Reader) dataKey(f *Inode, bi int64) blockKey {
	want := min(r.bs, int64(f.Size)-bi*r.bs)
	return blockKey{off: f.starts[bi], word: f.sizes[bi], want: uint32(want)}
}

// fileBlock returns the decompressed bytes of block bi of f (bi == number
// of full blocks: the tail in the fragment).
func (r *Reader) fileBlock(f *Inode, bi int64) ([]byte, error) {
	if bi < int64(len(f.sizes)) {
		return r.block(r.dataKey(f, bi), false)
	}
	if f.frag == noFragment {
		return nil, formatErr(-1, "file %d: block %d beyond its block list", f.Ino, bi)
	}
	tail := int64(f.Size) - bi*r.bs
	k, err := r.fragment(f.frag)
	if err != nil {
		return nil, err
	}
	// The fragment block's decompressed size is not stored: ask for up to
	// a whole block.
	k.want = uint32(r.bs)
	b, err := r.data.get(k, func() ([]byte, error) {
		r.nDemand.Add(1)
		return r.loadFragment(k)
	})
	if err != nil {
		return nil, err
	}
	if int64(f.fragOffset)+tail > int64(len(b)) {
		return nil, formatErr(k.off, "file %d: tail of %d bytes at %d beyond fragment of %d bytes", f.Ino, tail, f.fragOffset, len(b))
	}
	return b[f.fragOffset : int64(f.fragOffset)+tail], nil
}

func (r *Reader) loadFragment(k blockKey) ([]byte, error) {
	n := int64(k.word &^ uncompressedBit)
	src := make([]byte, n)
	if err := r.readFull(src, k.off, "fragment block"); err != nil {
		return nil, err
	}
	if k.word&uncompressedBit != 0 {
		return src, nil
	}
	out, err := r.dec.Decode(make([]byte, 0, r.bs), src)
	if err != nil {
		return nil, formatErr(k.off, "decompress fragment block: %v", err)
	}
	return out, nil
}

// ReadAt reads len(p) bytes of file f at off, with io.ReaderAt semantics.
// Sparse blocks read as zeros.
func (r *Reader) ReadAt(f *Inode, p []byte, off int64) (int, error) {
	if f.Type != TypeFile {
		return 0, fmt.Errorf("read inode %d: %w", f.Ino, errNotFile)
	}
	if off < 0 {
		return 0, fmt.Errorf("read inode %d: negative offset", f.Ino)
	}
	size := int64(f.Size)
	if off >= size {
		return 0, io.EOF
	}
	if r.ra8 != nil {
		r.ra8.access(f, off, int64(len(p)))
	}
	n := 0
	for n < len(p) && off < size {
		bi := off / r.bs
		if off == bi*r.bs && r.direct {
			m, ok, err := r.readWhole(f, bi, p[n:])
			if err != nil {
				return n, fmt.Errorf("read inode %d at %d: %w", f.Ino, off, err)
			}
			if ok {
				n += m
				off += int64(m)
				continue
			}
		}
		b, err := r.fileBlock(f, bi)
		if err != nil {
			return n, fmt.Errorf("read inode %d at %d: %w", f.Ino, off, err)
		}
		m := copy(p[n:], b[off-bi*r.bs:])
		n += m
		off += int64(m)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Readlink returns the target of a symlink.
func (r *Reader) Readlink(in *Inode) (string, error) {
	if in.Type != TypeSymlink {
		return "", fmt.Errorf("readlink inode %d: not a symlink", in.Ino)
	}
	return in.Target, nil
}
