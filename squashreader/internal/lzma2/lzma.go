// SPDX-License-Identifier: BSD-3-Clause

package lzma2

import "encoding/binary"

// The LZMA decoder of one LZMA2 chunk: a range decoder (32-bit range and
// code, one byte shifted in whenever the range drops below 2^24) over
// adaptive binary probabilities (11 bits, moved 1/32 of the way towards
// the decoded bit), decoding literals (coded with the previous byte and
// the position as context, and after a match with the byte at the last
// distance too), matches with a length and a distance (6-bit slot, then
// extra bits: reverse bit trees up to distance 127, direct bits and a
// 4-bit reverse tree above), and repeats of one of the last four
// distances. The state machine (12 states) remembers the kinds of the last
// few symbols.

const (
	probInit   = 1 << 10 // a probability of one half, of 1<<11
	numStates  = 12
	litStates  = 7 // states below it follow a literal
	kTop       = 1 << 24
	probBits   = 11
	moveBits   = 5
	litSize    = 0x300 // probabilities per literal coder
	endMarker  = 0xFFFFFFFF
	lenLowSyms = 8
)

// lenCoder holds the probabilities of a match or repeat length: a choice
// between 8 low (2-9), 8 middle (10-17) and 256 high (18-273) lengths,
// the low and middle ones per position state.
type lenCoder struct {
	choice  uint16
	choice2 uint16
	low     [16][8]uint16
	mid     [16][8]uint16
	high    [256]uint16
}

// probs are the probabilities other than the literal ones, initialised
// together by one copy from initProbs. Arrays indexed by state or
// position state are padded to powers of two so that masked indices need
// no bounds check.
type probs struct {
	isMatch    [256]uint16 // state<<4 | posState
	isRep      [16]uint16
	isRepG0    [16]uint16
	isRepG1    [16]uint16
	isRepG2    [16]uint16
	isRep0Long [256]uint16 // state<<4 | posState
	distSlot   [4][64]uint16
	distSpec   [128]uint16 // the reverse trees of slots 4-13 (115 used)
	align      [16]uint16
	matchLen   lenCoder
	repLen     lenCoder
}

// decoder is the state of one Decode call that survives between chunks.
type decoder struct {
	probs
	lit    [16][0x400]uint16 // per (position, previous byte) context; 0x300 used
	in     inBuf
	lc     uint32
	lpMask uint32
	pbMask uint32
	state  uint32
	rep    [4]uint32 // the last four distances, minus one
}

// initProbs and initLit are read-only after package initialisation.
var (
	initProbs probs
	initLit   [0x400]uint16
)

func init() {
	fill := func(s []uint16) {
		for i := range s {
			s[i] = probInit
		}
	}
	p := &initProbs
	fill(p.isMatch[:])
	fill(p.isRep[:])
	fill(p.isRepG0[:])
	fill(p.isRepG1[:])
	fill(p.isRepG2[:])
	fill(p.isRep0Long[:])
	for i := range p.distSlot {
		fill(p.distSlot[i][:])
	}
	fill(p.distSpec[:])
	fill(p.align[:])
	for _, l := range []*lenCoder{&p.matchLen, &p.repLen} {
		l.choice, l.choice2 = probInit, probInit
		for i := range l.low {
			fill(l.low[i][:])
			fill(l.mid[i][:])
		}
		fill(l.high[:])
	}
	fill(initLit[:])
}

// reset resets the probabilities (the literal ones for the current lc
// and lp), the state and the distances.
func (d *decoder) reset() {
	d.probs = initProbs
	n := 1 << (d.lc + uint32(bitsLen(d.lpMask)))
	for i := range d.lit[:n] {
		copy(d.lit[i][:litSize], initLit[:litSize])
	}
	d.state = 0
	d.rep = [4]uint32{}
}

func bitsLen(mask uint32) int {
	n := 0
	for mask != 0 {
		n++
		mask >>= 1
	}
	return n
}

// bitMask decodes one bit with probability *p without a branch. It
// returns the new range and code, and m: all ones for a 0 bit and 0 for a
// 1 bit (so the bit is m+1). The probability update p += (2048-p)>>5 for
// a 0 and p -= p>>5 for a 1 is one arithmetic shift: p -= (p-t)>>5 with
// t = 2048-31 or 0.
func bitMask(rng, code uint32, p *uint16) (uint32, uint32, uint32) {
	pv := uint32(*p)
	bound := (rng >> probBits) * pv
	m := uint32((uint64(code) - uint64(bound)) >> 32)
	r1 := rng - bound
	rng = r1 ^ (r1^bound)&m
	code -= bound &^ m
	*p = uint16(int32(pv) - (int32(pv)-int32(m&(1<<probBits-(1<<moveBits-1))))>>moveBits)
	return rng, code, m
}

// normalize shifts in the next byte of in when the range is below 2^24,
// without a branch; past the chunk's data it shifts in zeros or (far
// past, on corrupt data) stale bytes: decodeChunk fails at the end if it
// used more than the data.
func normalize(rng, code uint32, in *inBuf, ip uint) (uint32, uint32, uint) {
	b := uint32(0)
	if rng < kTop {
		b = 1
	}
	s := b << 3
	rng <<= s
	code = code<<s | uint32(in[ip&uint(len(in)-1)])&-b
	return rng, code, ip + uint(b)
}

// inBuf holds a chunk's packed data (at most 64 KiB) followed by zeros,
// so that normalize can load a byte unconditionally at any masked index.
type inBuf [1 << 17]byte

// literal decodes a literal's 8 bits with the probabilities lp, most
// significant bit first. It is kept out of decodeChunk so that its loop
// has few live values to keep in registers.
func literal(rng, code uint32, in *inBuf, ip uint, lp *[0x400]uint16) (uint32, uint32, uint, uint32) {
	var m uint32
	sym := uint32(1)
	for range 8 {
		rng, code, m = bitMask(rng, code, &lp[sym&0xFF])
		rng, code, ip = normalize(rng, code, in, ip)
		sym = sym<<1 + 1 + m
	}
	return rng, code, ip, sym
}

// matchedLiteral decodes a literal after a match: also with the bits of mb
// (the byte at rep0) while the decoded bits agree with them. offs is 0x100
// while they do, then 0.
func matchedLiteral(rng, code uint32, in *inBuf, ip uint, lp *[0x400]uint16, mb uint32) (uint32, uint32, uint, uint32) {
	var m uint32
	sym := uint32(1)
	offs := uint32(0x100)
	for sym < 0x100 {
		mb <<= 1
		mbit := mb & offs
		rng, code, m = bitMask(rng, code, &lp[(offs+mbit+sym)&0x3FF])
		rng, code, ip = normalize(rng, code, in, ip)
		sym = sym<<1 + 1 + m
		offs &= mbit ^ m
	}
	return rng, code, ip, sym
}

// tree decodes a bit tree of n bits with the probabilities t[1:1<<n].
func tree(rng, code uint32, in *inBuf, ip uint, t []uint16, n uint) (uint32, uint32, uint, uint32) {
	var m uint32
	sym := uint32(1)
	for range n {
		rng, code, m = bitMask(rng, code, &t[sym])
		rng, code, ip = normalize(rng, code, in, ip)
		sym = sym<<1 + 1 + m
	}
	return rng, code, ip, sym - 1<<n
}

// decodeChunk decodes one LZMA chunk from in (its packed data, all of it)
// into out[op:end]. out starts at the last dictionary reset, so op is also
// the number of bytes in the dictionary, and it may extend past end (its
// bytes there may be overwritten); limit is the dictionary size. It
// returns the new op, and the bytes of in consumed.
func (d *decoder) decodeChunk(out []byte, op, end int, in []byte, limit uint) (int, int, error) {
	if len(in) < 5 {
		return op, len(in), &chunkError{"LZMA chunk shorter than the range coder's 5 initial bytes", len(in)}
	}
	if in[0] != 0 {
		return op, 0, &chunkError{"range coder's first byte is not 0", 0}
	}
	if end > len(out) {
		panic("lzma2: chunk end beyond the output")
	}
	ib := &d.in
	copy(ib[:], in)
	clear(ib[len(in):min(len(in)+1024, len(ib))])
	rng := uint32(0xFFFFFFFF)
	code := uint32(in[1])<<24 | uint32(in[2])<<16 | uint32(in[3])<<8 | uint32(in[4])
	ip := uint(5)
	state := d.state
	rep0, rep1, rep2, rep3 := d.rep[0], d.rep[1], d.rep[2], d.rep[3]
	lc, lpMask, pbMask := d.lc&15, d.lpMask, d.pbMask
	var errMsg string
	var m uint32

	for op < end {
		posState := uint32(op) & pbMask

		// isMatch
		p := &d.isMatch[(state<<4|posState)&0xFF]
		bound := (rng >> probBits) * uint32(*p)
		if code < bound {
			rng = bound
			*p += (1<<probBits - *p) >> moveBits
			rng, code, ip = normalize(rng, code, ib, ip)

			// A literal, coded with the previous byte and the
			// position as context.
			prev := uint32(0)
			if op > 0 {
				prev = uint32(out[op-1])
			}
			lp := &d.lit[((uint32(op)&lpMask)<<lc|prev>>(8-lc))&15]
			var sym uint32
			if state >= litStates {
				rng, code, ip, sym = matchedLiteral(rng, code, ib, ip, lp, uint32(out[op-int(rep0)-1]))
			} else {
				rng, code, ip, sym = literal(rng, code, ib, ip, lp)
			}
			out[op] = byte(sym)
			op++
			if state < 4 {
				state = 0
			} else if state < 10 {
				state -= 3
			} else {
				state -= 6
			}
			continue
		}
		rng -= bound
		code -= bound
		*p -= *p >> moveBits
		rng, code, ip = normalize(rng, code, ib, ip)

		// isRep
		var lenc *lenCoder
		p = &d.isRep[state&15]
		bound = (rng >> probBits) * uint32(*p)
		if code < bound {
			rng = bound
			*p += (1<<probBits - *p) >> moveBits
			rng, code, ip = normalize(rng, code, ib, ip)
			// A match: length, then distance.
			rep3, rep2, rep1 = rep2, rep1, rep0
			lenc = &d.matchLen
			if state < litStates {
				state = 7
			} else {
				state = 10
			}
		} else {
			rng -= bound
			code -= bound
			*p -= *p >> moveBits
			rng, code, ip = normalize(rng, code, ib, ip)
			// A repeat of a recent distance.
			if uint(rep0) >= uint(op) {
				// Only possible at the start of the dictionary:
				// the distances are checked when first used.
				errMsg = "repeated match before any output"
				break
			}
			p = &d.isRepG0[state&15]
			bound = (rng >> probBits) * uint32(*p)
			if code < bound {
				rng = bound
				*p += (1<<probBits - *p) >> moveBits
				rng, code, ip = normalize(rng, code, ib, ip)
				p = &d.isRep0Long[(state<<4|posState)&0xFF]
				bound = (rng >> probBits) * uint32(*p)
				if code < bound {
					rng = bound
					*p += (1<<probBits - *p) >> moveBits
					rng, code, ip = normalize(rng, code, ib, ip)
					// A short repeat: one byte at rep0.
					out[op] = out[op-int(rep0)-1]
					op++
					if state < litStates {
						state = 9
					} else {
						state = 11
					}
					continue
				}
				rng -= bound
				code -= bound
				*p -= *p >> moveBits
				rng, code, ip = normalize(rng, code, ib, ip)
			} else {
				rng -= bound
				code -= bound
				*p -= *p >> moveBits
				rng, code, ip = normalize(rng, code, ib, ip)
				var dist uint32
				p = &d.isRepG1[state&15]
				bound = (rng >> probBits) * uint32(*p)
				if code < bound {
					rng = bound
					*p += (1<<probBits - *p) >> moveBits
					dist = rep1
				} else {
					rng -= bound
					code -= bound
					*p -= *p >> moveBits
					rng, code, ip = normalize(rng, code, ib, ip)
					p = &d.isRepG2[state&15]
					bound = (rng >> probBits) * uint32(*p)
					if code < bound {
						rng = bound
						*p += (1<<probBits - *p) >> moveBits
						dist = rep2
					} else {
						rng -= bound
						code -= bound
						*p -= *p >> moveBits
						dist = rep3
						rep3 = rep2
					}
					rep2 = rep1
				}
				rng, code, ip = normalize(rng, code, ib, ip)
				rep1 = rep0
				rep0 = dist
			}
			lenc = &d.repLen
			if state < litStates {
				state = 8
			} else {
				state = 11
			}
		}

		// The length, 0-based: choice, then a 3-bit tree (low,
		// middle) or an 8-bit one (high).
		var length uint32
		p = &lenc.choice
		bound = (rng >> probBits) * uint32(*p)
		if code < bound {
			rng = bound
			*p += (1<<probBits - *p) >> moveBits
			rng, code, ip = normalize(rng, code, ib, ip)
			rng, code, ip, length = tree(rng, code, ib, ip, lenc.low[posState&15][:], 3)
		} else {
			rng -= bound
			code -= bound
			*p -= *p >> moveBits
			rng, code, ip = normalize(rng, code, ib, ip)
			p = &lenc.choice2
			bound = (rng >> probBits) * uint32(*p)
			if code < bound {
				rng = bound
				*p += (1<<probBits - *p) >> moveBits
				rng, code, ip = normalize(rng, code, ib, ip)
				rng, code, ip, length = tree(rng, code, ib, ip, lenc.mid[posState&15][:], 3)
				length += 8
			} else {
				rng -= bound
				code -= bound
				*p -= *p >> moveBits
				rng, code, ip = normalize(rng, code, ib, ip)
				rng, code, ip, length = tree(rng, code, ib, ip, lenc.high[:], 8)
				length += 16
			}
		}

		if lenc == &d.matchLen {
			// The distance slot, by the length (0-3).
			var slot uint32
			rng, code, ip, slot = tree(rng, code, ib, ip, d.distSlot[min(length, 3)][:], 6)
			if slot < 4 {
				rep0 = slot
			} else {
				n := slot>>1 - 1
				var dist uint32
				var rev []uint16
				if slot < 14 {
					dist = (2 | slot&1) << n
					rev = d.distSpec[(dist-slot)&127:]
				} else {
					// Direct bits, then a 4-bit reverse tree.
					dist = 2 | slot&1
					for k := n - 4; k > 0; k-- {
						rng >>= 1
						code -= rng
						t := 0 - code>>31 // all ones if code was below rng
						code += rng & t
						dist = dist<<1 + 1 + t
						rng, code, ip = normalize(rng, code, ib, ip)
					}
					dist <<= 4
					n = 4
					rev = d.align[:]
				}
				k := uint32(1)
				for i := range n {
					rng, code, m = bitMask(rng, code, &rev[k])
					rng, code, ip = normalize(rng, code, ib, ip)
					b := 1 + m
					k = k<<1 + b
					dist |= b << i
				}
				rep0 = dist
				if rep0 == endMarker {
					errMsg = "end of payload marker in an LZMA2 chunk"
					break
				}
			}
			if uint(rep0) >= uint(op) || uint(rep0) >= limit {
				errMsg = "match distance beyond the dictionary"
				break
			}
		}

		// Copy the match.
		n := int(length) + 2
		if n > end-op {
			errMsg = "match beyond the end of the chunk"
			break
		}
		s := op - int(rep0) - 1
		if rep0 >= 7 && len(out)-op >= n+8 {
			// Eight bytes at a time, each load of bytes
			// already written.
			for k := 0; k < n; k += 8 {
				binary.LittleEndian.PutUint64(out[op+k:], binary.LittleEndian.Uint64(out[s+k:]))
			}
		} else if int(rep0) >= n-1 {
			copy(out[op:op+n], out[s:s+n])
		} else {
			o := out[op : op+n]
			for i := range o {
				o[i] = out[s+i]
			}
		}
		op += n
	}
	if errMsg != "" {
		used := int(min(ip, uint(len(in))))
		return op, used, &chunkError{errMsg, used}
	}
	d.state = state
	d.rep = [4]uint32{rep0, rep1, rep2, rep3}
	if ip > uint(len(in)) {
		return op, len(in), &chunkError{"LZMA chunk needs more than its packed size", len(in)}
	}
	if code != 0 {
		return op, int(ip), &chunkError{"range coder does not end with code 0", int(ip)}
	}
	if ip < uint(len(in)) {
		return op, int(ip), &chunkError{"unused bytes at the end of an LZMA chunk", int(ip)}
	}
	return op, int(ip), nil
}
