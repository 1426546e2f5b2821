// SPDX-License-Identifier: BSD-3-Clause

// Package lz4 decodes LZ4 blocks (the block format, not the frame format)
// from one buffer into another, as squashfs "lz4" blocks need, with the
// acceptance rules of liblz4's LZ4_decompress_safe (1.9), which is what
// the kernel's squashfs calls with the block size as the output capacity.
//
// Decode(dst, src) decodes src into dst[:0], writing at most cap(dst)
// bytes: it is a [codec.Decoder] as a [codec.Func]. It is safe for
// concurrent use and allocates nothing. Errors wrap the shared
// [codec.ErrCorrupt], with what is wrong and the byte offset in src
// (output that would not fit is corrupt input, as in liblz4: there is no
// [codec.ErrTooLong]). Nothing in
// src can make Decode panic, read or write outside src and
// dst[:cap(dst)], or loop without consuming input; bytes of dst past the
// returned length may be overwritten.
//
// # Acceptance rules
//
// A block is a run of sequences: a token (literal length in its high four
// bits, match length less 4 in its low four), the literal length's
// extension bytes when it is 15 (each added, until one below 255), the
// literals, then, except in the last sequence, a little-endian 16-bit
// match offset and the match length's extension bytes when it is 15.
// As in liblz4, where the output capacity is cap(dst):
//
//   - An empty src is an error; with no capacity, only the single byte 0
//     decodes (to nothing).
//   - A sequence whose literals would end within 12 bytes of the capacity,
//     or leave fewer than 8 bytes of src after them, must be the last: its
//     literals must end src exactly and fit the capacity.
//   - A literal length extension must start more than 15 bytes before the
//     end of src; a match length extension byte must leave more than 4
//     bytes of src after it.
//   - A match must not reach before the start of the output, and must not
//     end within the last 5 bytes of the capacity.
//   - An offset of 0 is an error. liblz4 does not check it, and copies
//     from bytes of the output buffer that were never written: what it
//     decodes then is undefined.
package lz4

import (
	"fmt"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// corrupt returns an error wrapping codec.ErrCorrupt, the only error
// Decode returns: as in liblz4, output that would not fit is corrupt input.
func corrupt(off int, format string, args ...any) error {
	return fmt.Errorf("lz4: %w: %s at byte %d", codec.ErrCorrupt, fmt.Sprintf(format, args...), off)
}

func badOffset(at, off, op int) error {
	if off == 0 {
		return corrupt(at, "match offset 0")
	}
	return corrupt(at, "match offset %d before the start of the output (%d bytes)", off, op)
}

// liblz4's parsing limits (lz4.c).
const (
	minMatch     = 4
	lastLiterals = 5  // the last 5 bytes of a block are literals
	mfLimit      = 12 // a match starts at least 12 bytes before the end
	runMask      = 15
)

// Decode decodes the LZ4 block src into dst[:0], writing at most cap(dst)
// bytes, and returns the output.
func Decode(dst, src []byte) ([]byte, error) {
	out := dst[:cap(dst)]
	oend, iend := len(out), len(src)
	if oend == 0 {
		if iend == 1 && src[0] == 0 {
			return out[:0], nil
		}
		return nil, corrupt(0, "no output space for a block that is not the single byte 0")
	}
	if iend == 0 {
		return nil, corrupt(0, "empty block")
	}
	ip, op := 0, 0
	for {
		// The common sequence, far from both ends: fewer than 15
		// literals and a match of at most 18 bytes, copied in fixed
		// 16-byte moves that may write past the sequence's end (into
		// the capacity, which a later sequence overwrites).
		if op+64 <= oend && ip+32 <= iend && src[ip]&0xf0 != 0xf0 && src[ip]&0x0f != 0x0f {
			token := src[ip]
			lit := int(token >> 4)
			*(*[16]byte)(out[op:]) = *(*[16]byte)(src[ip+1:])
			ip += 1 + lit
			op += lit
			off := int(src[ip]) | int(src[ip+1])<<8
			ip += 2
			ml := int(token&15) + minMatch
			if off == 0 || off > op {
				return nil, badOffset(ip-2, off, op)
			}
			if off >= 16 {
				*(*[16]byte)(out[op:]) = *(*[16]byte)(out[op-off:])
				if ml > 16 {
					*(*[16]byte)(out[op+16:]) = *(*[16]byte)(out[op-off+16:])
				}
			} else {
				for i := range ml {
					out[op+i] = out[op-off+i]
				}
			}
			op += ml
			continue
		}
		if ip >= iend {
			return nil, corrupt(ip, "block ends before a token")
		}
		token := src[ip]
		ip++
		lit := int(token >> 4)
		if lit == runMask {
			if ip >= iend-runMask {
				return nil, corrupt(ip, "literal length extension too near the end")
			}
			for {
				s := src[ip]
				ip++
				lit += int(s)
				if s != 255 {
					break
				}
				if ip >= iend-runMask {
					return nil, corrupt(ip, "literal length extension runs to the end")
				}
			}
		}
		if op+lit > oend-mfLimit || ip+lit > iend-(2+1+lastLiterals) {
			// The last sequence: literals only, ending src exactly.
			if ip+lit != iend {
				return nil, corrupt(ip, "last literals (%d bytes) do not end the block (%d bytes left)", lit, iend-ip)
			}
			if op+lit > oend {
				return nil, corrupt(ip, "%d literals overflow the output (%d bytes free)", lit, oend-op)
			}
			op += copy(out[op:], src[ip:])
			return out[:op], nil
		}
		op += copy(out[op:op+lit], src[ip:ip+lit])
		ip += lit

		off := int(src[ip]) | int(src[ip+1])<<8
		ip += 2
		ml := int(token & 15)
		if ml == runMask {
			for {
				s := src[ip]
				ip++
				ml += int(s)
				if ip >= iend-lastLiterals+1 {
					return nil, corrupt(ip, "match length extension too near the end")
				}
				if s != 255 {
					break
				}
			}
		}
		ml += minMatch
		if off == 0 || off > op {
			return nil, badOffset(ip-2, off, op)
		}
		end := op + ml
		if end > oend-lastLiterals {
			return nil, corrupt(ip, "match of %d bytes ends within the last %d bytes of the output", ml, lastLiterals)
		}
		if off >= ml {
			copy(out[op:end], out[op-off:])
		} else {
			// Overlapping: the copy repeats the last off bytes. Double
			// the copied span each time.
			for op < end {
				n := copy(out[op:end], out[op-off:op])
				op += n
				off += n
			}
		}
		op = end
	}
}
