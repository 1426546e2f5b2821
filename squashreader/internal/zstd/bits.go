// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"encoding/binary"
	"math/bits"
)

// bitReader reads a zstd backward bit stream: the stream is read from its
// last byte towards its first, the highest set bit of the last byte is the
// start marker, and bits are taken from the top of a 64-bit window loaded
// little-endian. Past the stream's first bit it reads zeros and counts
// on, so that the end checks can tell an exact end from an overrun. Bits
// read past the end are what libzstd 1.5's reader gives there (shifts
// modulo 64, in its two ways of reading: BIT_readBitsFast for the extra
// bits of sequences, inline in decodeSeqsGeneric, and BIT_readBits for FSE
// states, state here), so that a corrupt stream that overruns, and that
// libzstd accepts, decodes as it does in libzstd.
type bitReader struct {
	src      []byte
	pos      int    // the window is src[pos:pos+8], or src[0:len] for short streams
	c        uint64 // the window
	consumed uint   // bits of c used, from its top
}

// init starts reading src; false if src is empty or its last byte is 0
// (no start marker).
func (br *bitReader) init(src []byte) bool {
	n := len(src)
	if n == 0 || src[n-1] == 0 {
		return false
	}
	br.src = src
	skip := uint(bits.LeadingZeros8(src[n-1])) + 1
	if n >= 8 {
		br.pos = n - 8
		br.c = binary.LittleEndian.Uint64(src[n-8:])
		br.consumed = skip
		return true
	}
	var c uint64
	for i := n - 1; i >= 0; i-- {
		c = c<<8 | uint64(src[i])
	}
	br.pos = 0
	br.c = c
	br.consumed = skip + uint(8-n)*8
	return true
}

// state reads n <= 56 bits as libzstd's BIT_readBits does (on x86-64):
// the next n bits, unless they run past the window.
func (br *bitReader) state(n uint8) uint64 {
	v := (br.c >> ((64 - br.consumed - uint(n)) & 63)) & (1<<n - 1)
	br.consumed += uint(n)
	return v
}

// reload refills the window: afterwards either consumed < 8 or the window
// is the stream's first 8 bytes (pos 0).
func (br *bitReader) reload() {
	if br.pos >= 8 {
		br.pos -= int(br.consumed >> 3)
		br.consumed &= 7
		br.c = binary.LittleEndian.Uint64(br.src[br.pos:])
		return
	}
	if br.pos == 0 || br.consumed < 8 {
		return
	}
	nb := int(br.consumed >> 3)
	if nb > br.pos {
		nb = br.pos
	}
	br.pos -= nb
	br.consumed -= uint(nb) * 8
	br.c = binary.LittleEndian.Uint64(br.src[br.pos:])
}

// finished reports, after a reload, whether every bit was read, no more.
func (br *bitReader) finished() bool {
	return br.pos == 0 && br.consumed == 64
}

// overflowed reports, after a reload, whether more bits were read than the
// stream has.
func (br *bitReader) overflowed() bool {
	return br.pos == 0 && br.consumed > 64
}
