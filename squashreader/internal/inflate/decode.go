// SPDX-License-Identifier: BSD-3-Clause

package inflate

import (
	"encoding/binary"
)

const (
	// fastInMargin: the fast loop refills at most twice (7 bytes each)
	// per iteration with 8-byte loads.
	fastInMargin = 16
	// fastOutMargin: per iteration at most 2 literals and a 258-byte
	// match whose word copy may run 15 bytes over, or 3 literals.
	fastOutMargin = 2 + 258 + 16
)

// huffman decodes one Huffman-coded block with the tables lt and dt.
func (d *decoder) huffman(lt *[litlenTableSize]uint32, dt *[distTableSize]uint32) error {
	src, out := d.src, d.out
	in, op := d.in, d.op
	bitbuf, bitcnt := d.bitbuf, d.bitcnt
	var err error

	for {
		if in <= len(src)-fastInMargin && op <= len(out)-fastOutMargin {
			var st fastStatus
			in, op, bitbuf, bitcnt, st = decodeFast(lt, dt, src, out, in, op, bitbuf, bitcnt)
			switch st {
			case fastEOB:
				goto done
			case fastBadLitlen:
				err = corrupt("invalid literal/length code", in-int((bitcnt+7)>>3))
				goto done
			case fastBadDist:
				err = corrupt("invalid distance code", in-int((bitcnt+7)>>3))
				goto done
			case fastTooFar:
				err = corrupt("distance too far back", in-int((bitcnt+7)>>3))
				goto done
			}
		}

		// Slow path: one symbol with every check, padding input with
		// zeros past its end (overread catches truncation).
		for bitcnt <= 55 {
			if in < len(src) {
				bitbuf |= uint64(src[in]) << bitcnt
			}
			in++
			bitcnt += 8
		}
		e := lt[bitbuf&litlenMask]
		if e&entFlagSub != 0 {
			bitbuf >>= e & 63
			bitcnt -= uint(e & 63)
			e = lt[(e>>16+uint32(bitbuf)&(1<<(e>>8&63)-1))&(litlenTableSize-1)]
		}
		if in*8-int(bitcnt)+int(e&63) > len(src)*8 {
			err = corrupt("unexpected end of input", len(src))
			goto done
		}
		if int32(e) < 0 {
			bitbuf >>= e & 63
			bitcnt -= uint(e & 63)
			if op >= len(out) {
				err = errTooLong
				goto done
			}
			out[op] = byte(e >> 16)
			op++
			continue
		}
		if e&entFlagExc != 0 {
			if e>>16 != 0 { // not end of block: invalid
				err = corrupt("invalid literal/length code", in-int((bitcnt+7)>>3))
				goto done
			}
			bitbuf >>= e & 63
			bitcnt -= uint(e & 63)
			goto done
		}
		saved := bitbuf
		bitbuf >>= e & 63
		bitcnt -= uint(e & 63)
		length := int(e>>16) + int(saved&(1<<(e&63)-1)>>(e>>8&63))

		e = dt[bitbuf&distMask]
		if e&entFlagSub != 0 {
			bitbuf >>= e & 63
			bitcnt -= uint(e & 63)
			e = dt[(e>>16+uint32(bitbuf)&(1<<(e>>8&63)-1))&(distTableSize-1)]
		}
		if in*8-int(bitcnt)+int(e&63) > len(src)*8 {
			err = corrupt("unexpected end of input", len(src))
			goto done
		}
		if e&entFlagExc != 0 {
			err = corrupt("invalid distance code", in-int((bitcnt+7)>>3))
			goto done
		}
		saved = bitbuf
		bitbuf >>= e & 63
		bitcnt -= uint(e & 63)
		dist := int(e>>16) + int(saved&(1<<(e&63)-1)>>(e>>8&63))
		if dist > op {
			err = corrupt("distance too far back", in-int((bitcnt+7)>>3))
			goto done
		}
		if length > len(out)-op {
			err = errTooLong
			goto done
		}
		for i := range length {
			out[op+i] = out[op-dist+i]
		}
		op += length
	}
done:
	d.in, d.op, d.bitbuf, d.bitcnt = in, op, bitbuf, bitcnt
	return err
}

type fastStatus int

const (
	fastMargin    fastStatus = iota // too close to the end of src or out
	fastEOB                         // end of block
	fastBadLitlen                   // invalid literal/length code
	fastBadDist                     // invalid distance code
	fastTooFar                      // distance before the start of out
)

// decodeFast decodes symbols of a Huffman block while at least
// fastInMargin bytes of src and fastOutMargin bytes of out remain, and
// returns the updated state and why it stopped. A function of its own so
// that its few live values stay in registers.
func decodeFast(lt *[litlenTableSize]uint32, dt *[distTableSize]uint32, src, out []byte, in, op int, bitbuf uint64, bitcnt uint) (int, int, uint64, uint, fastStatus) {
	// No end checks per symbol. At the top of each
	// iteration the bit buffer was just refilled (at least 56 bits:
	// enough for a length code with its extra bits and a distance
	// code with its extra bits, 15+5+15+13 = 48) and e is the
	// literal/length table's main entry for the next bits.
	if in <= len(src)-fastInMargin && op <= len(out)-fastOutMargin {
		bitbuf |= binary.LittleEndian.Uint64(src[in:]) << (bitcnt & 63)
		in += int((63 - bitcnt) >> 3)
		bitcnt |= 56
	}
	e := lt[bitbuf&litlenMask]
	for in <= len(src)-fastInMargin && op <= len(out)-fastOutMargin {
		if int32(e) < 0 {
			// Up to three literals per refill: 3*15 bits.
			bitbuf >>= e & 63
			bitcnt -= uint(e & 63)
			out[op] = byte(e >> 16)
			op++
			e = lt[bitbuf&litlenMask]
			if int32(e) < 0 {
				bitbuf >>= e & 63
				bitcnt -= uint(e & 63)
				out[op] = byte(e >> 16)
				op++
				e = lt[bitbuf&litlenMask]
				if int32(e) < 0 {
					bitbuf >>= e & 63
					bitcnt -= uint(e & 63)
					out[op] = byte(e >> 16)
					op++
					bitbuf |= binary.LittleEndian.Uint64(src[in:]) << (bitcnt & 63)
					in += int((63 - bitcnt) >> 3)
					bitcnt |= 56
					e = lt[bitbuf&litlenMask]
					continue
				}
			}
			// A length or end of block follows: refill for it (e
			// was looked up with at least 26 bits, still valid).
			bitbuf |= binary.LittleEndian.Uint64(src[in:]) << (bitcnt & 63)
			in += int((63 - bitcnt) >> 3)
			bitcnt |= 56
		}
		if e&entFlagSub != 0 {
			bitbuf >>= e & 63
			bitcnt -= uint(e & 63)
			e = lt[(e>>16+uint32(bitbuf)&(1<<(e>>8&63)-1))&(litlenTableSize-1)]
			if int32(e) < 0 {
				bitbuf >>= e & 63
				bitcnt -= uint(e & 63)
				out[op] = byte(e >> 16)
				op++
				bitbuf |= binary.LittleEndian.Uint64(src[in:]) << (bitcnt & 63)
				in += int((63 - bitcnt) >> 3)
				bitcnt |= 56
				e = lt[bitbuf&litlenMask]
				continue
			}
		}
		if e&entFlagExc != 0 {
			if e>>16 != 0 { // not end of block: invalid
				return in, op, bitbuf, bitcnt, fastBadLitlen
			}
			bitbuf >>= e & 63
			bitcnt -= uint(e & 63)
			return in, op, bitbuf, bitcnt, fastEOB
		}
		saved := bitbuf
		bitbuf >>= e & 63
		bitcnt -= uint(e & 63)
		length := int(e>>16) + int(saved&(1<<(e&63)-1)>>(e>>8&63))

		e = dt[bitbuf&distMask]
		if e&entFlagSub != 0 {
			bitbuf >>= e & 63
			bitcnt -= uint(e & 63)
			e = dt[(e>>16+uint32(bitbuf)&(1<<(e>>8&63)-1))&(distTableSize-1)]
		}
		if e&entFlagExc != 0 {
			return in, op, bitbuf, bitcnt, fastBadDist
		}
		saved = bitbuf
		bitbuf >>= e & 63
		bitcnt -= uint(e & 63)
		dist := int(e>>16) + int(saved&(1<<(e&63)-1)>>(e>>8&63))
		if dist > op {
			return in, op, bitbuf, bitcnt, fastTooFar
		}
		// Refill and look up the next symbol before copying, so
		// the lookup overlaps the copy.
		bitbuf |= binary.LittleEndian.Uint64(src[in:]) << (bitcnt & 63)
		in += int((63 - bitcnt) >> 3)
		bitcnt |= 56
		e = lt[bitbuf&litlenMask]

		end := op + length
		s := op - dist
		if dist >= 8 {
			// 16 bytes unconditionally (most matches are short),
			// then words; the margin allows running 15 bytes over.
			binary.LittleEndian.PutUint64(out[op:], binary.LittleEndian.Uint64(out[s:]))
			binary.LittleEndian.PutUint64(out[op+8:], binary.LittleEndian.Uint64(out[s+8:]))
			s += 16
			for op += 16; op < end; op, s = op+8, s+8 {
				binary.LittleEndian.PutUint64(out[op:], binary.LittleEndian.Uint64(out[s:]))
			}
			op = end
			continue
		}
		op = copyShort(out, op, dist, length)
	}
	return in, op, bitbuf, bitcnt, fastMargin
}

// copyShort copies a match with dist < 8: length bytes from dist back in
// out to out[op:], and returns the new op. It may write up to 8 bytes past
// op+length; the caller guarantees that room and 0 < dist <= op.
func copyShort(out []byte, op, dist, length int) int {
	end := op + length
	if dist == 1 {
		v := uint64(out[op-1]) * 0x0101010101010101
		for op < end {
			binary.LittleEndian.PutUint64(out[op:], v)
			op += 8
		}
		return end
	}
	// Write the first 8 bytes one at a time, then copy words from a
	// multiple of the period at least 8 back, which the bytes written so
	// far make valid.
	s := op - dist
	for i := range 8 {
		out[op+i] = out[s+i]
	}
	step := dist * periodMul[dist]
	for op += 8; op < end; op += 8 {
		binary.LittleEndian.PutUint64(out[op:], binary.LittleEndian.Uint64(out[op-step:]))
	}
	return end
}

// periodMul[d] is the smallest m with m*d >= 8.
var periodMul = [8]int{0, 8, 4, 3, 2, 2, 2, 2}
