// SPDX-License-Identifier: BSD-3-Clause

package inflate

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// errTooLong is the error when the output would not fit in cap(dst),
// made once: the decoding loops return it without allocating.
var errTooLong = fmt.Errorf("inflate: %w", codec.ErrTooLong)

// corrupt returns an error about the input at byte off of src.
func corrupt(what string, off int) error {
	return fmt.Errorf("inflate: %s at byte %d: %w", what, off, codec.ErrCorrupt)
}

var pool = sync.Pool{New: func() any { return new(decoder) }}

// Zlib decodes the zlib stream src into dst[:0], writing at most cap(dst)
// bytes, and returns the output. It verifies the header and the adler32
// trailer; bytes after the trailer are ignored.
func Zlib(dst, src []byte) ([]byte, error) {
	if len(src) < 2 {
		return nil, corrupt("unexpected end of input", len(src))
	}
	cmf, flg := src[0], src[1]
	switch {
	case cmf&0x0f != 8:
		return nil, corrupt(fmt.Sprintf("bad zlib header: compression method %d", cmf&0x0f), 0)
	case cmf>>4 > 7:
		return nil, corrupt(fmt.Sprintf("bad zlib header: window size 2^%d", cmf>>4+8), 0)
	case (uint(cmf)<<8|uint(flg))%31 != 0:
		return nil, corrupt("bad zlib header check", 1)
	case flg&0x20 != 0:
		return nil, corrupt("zlib preset dictionary not supported", 1)
	}
	d := pool.Get().(*decoder)
	out, end, err := d.run(dst, src, 2)
	pool.Put(d)
	if err != nil {
		return nil, err
	}
	if len(src)-end < 4 {
		return nil, corrupt("unexpected end of input", len(src))
	}
	if binary.BigEndian.Uint32(src[end:]) != adler32(out) {
		return nil, corrupt("adler32 checksum mismatch", end)
	}
	return out, nil
}

// Deflate decodes the raw deflate data at the start of src into dst[:0],
// writing at most cap(dst) bytes, and returns the output and the number of
// bytes of src the deflate data took (up to the end of the byte holding
// the final block's last bit).
func Deflate(dst, src []byte) ([]byte, int, error) {
	d := pool.Get().(*decoder)
	out, end, err := d.run(dst, src, 0)
	pool.Put(d)
	if err != nil {
		return nil, 0, err
	}
	return out, end, nil
}

const (
	maxLitlenSyms = 288
	maxDistSyms   = 32
	precodeSyms   = 19
)

// decoder holds one decode's state and its dynamic Huffman tables; pooled
// because the tables are too big to zero on every call.
type decoder struct {
	src    []byte
	out    []byte // dst[:cap(dst)]
	in     int    // next byte of src to load into bitbuf
	op     int    // bytes of out written
	bitbuf uint64 // bits not yet consumed, low bits first; bits at and above bitcnt are the next input bytes or zero
	bitcnt uint   // valid bits in bitbuf, at most 63

	lens    [maxLitlenSyms + maxDistSyms]uint8
	litlen  [litlenTableSize]uint32
	dist    [distTableSize]uint32
	precode [precodeTableSize]uint32
}

// pos is the offset in src of the byte holding the next unconsumed bit.
func (d *decoder) pos() int { return d.in - int((d.bitcnt+7)>>3) }

// overread reports whether more bits were consumed than src holds: the
// refill pads past the end with zero bytes, which is how truncation shows.
func (d *decoder) overread() bool { return d.in*8-int(d.bitcnt) > len(d.src)*8 }

// refill loads whole bytes into the bit buffer until it holds at least 56
// bits (at most 63), padding with zeros past the end of src.
func (d *decoder) refill() {
	for d.bitcnt <= 55 {
		if d.in < len(d.src) {
			d.bitbuf |= uint64(d.src[d.in]) << d.bitcnt
		}
		d.in++
		d.bitcnt += 8
	}
}

// bits consumes n <= 32 bits (refilling as needed) and returns them.
func (d *decoder) bits(n uint) (uint32, error) {
	if d.bitcnt < n {
		d.refill()
	}
	v := uint32(d.bitbuf & (1<<n - 1))
	d.bitbuf >>= n
	d.bitcnt -= n
	if d.overread() {
		return 0, corrupt("unexpected end of input", len(d.src))
	}
	return v, nil
}

// run decodes the deflate data starting at src[start] and returns the
// output and the offset just after the deflate data.
func (d *decoder) run(dst, src []byte, start int) ([]byte, int, error) {
	d.src, d.out = src, dst[:cap(dst)]
	d.in, d.op = start, 0
	d.bitbuf, d.bitcnt = 0, 0
	defer func() { d.src, d.out = nil, nil }()
	for {
		hdr, err := d.bits(3)
		if err != nil {
			return nil, 0, err
		}
		switch hdr >> 1 {
		case 0:
			err = d.stored()
		case 1:
			t := fixed()
			err = d.huffman(&t.litlen, &t.dist)
		case 2:
			if err = d.dynamic(); err == nil {
				err = d.huffman(&d.litlen, &d.dist)
			}
		default:
			err = corrupt("bad block type 3", d.pos())
		}
		if err != nil {
			return nil, 0, err
		}
		if hdr&1 != 0 {
			break
		}
	}
	if d.overread() {
		return nil, 0, corrupt("unexpected end of input", len(src))
	}
	end := d.in - int(d.bitcnt>>3) // the partial last byte counts as used
	return d.out[:d.op], end, nil
}

// stored copies a stored block: byte-align, LEN, NLEN, LEN bytes.
func (d *decoder) stored() error {
	d.bitcnt &^= 7 // the bits before the byte boundary are padding
	p := d.pos()
	if p > len(d.src) {
		return corrupt("unexpected end of input", len(d.src))
	}
	d.bitbuf, d.bitcnt, d.in = 0, 0, p
	if len(d.src)-p < 4 {
		return corrupt("unexpected end of input", len(d.src))
	}
	n := int(binary.LittleEndian.Uint16(d.src[p:]))
	if nn := int(binary.LittleEndian.Uint16(d.src[p+2:])); n != nn^0xffff {
		return corrupt("stored block length check mismatch", p)
	}
	p += 4
	if len(d.src)-p < n {
		return corrupt("unexpected end of input", len(d.src))
	}
	if len(d.out)-d.op < n {
		return errTooLong
	}
	d.op += copy(d.out[d.op:], d.src[p:p+n])
	d.in = p + n
	return nil
}
