// SPDX-License-Identifier: BSD-3-Clause

package lzma2

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

// decodeChunk decodes one LZMA chunk from in (its packed data, all of it)
// into out[op:], to the end of out. out starts at the last dictionary
// reset, so op is also the number of bytes in the dictionary; limit is the
// dictionary size. It returns the new op, and the bytes of in consumed.
func (d *decoder) decodeChunk(out []byte, op int, in []byte, limit uint) (int, int, error) {
	if len(in) < 5 {
		return op, len(in), &chunkError{"LZMA chunk shorter than the range coder's 5 initial bytes", len(in)}
	}
	if in[0] != 0 {
		return op, 0, &chunkError{"range coder's first byte is not 0", 0}
	}
	rng := uint32(0xFFFFFFFF)
	code := uint32(in[1])<<24 | uint32(in[2])<<16 | uint32(in[3])<<8 | uint32(in[4])
	ip := 5
	state := d.state
	rep0, rep1, rep2, rep3 := d.rep[0], d.rep[1], d.rep[2], d.rep[3]
	lc, lpMask, pbMask := d.lc&15, d.lpMask, d.pbMask
	var errMsg string

	for op < len(out) {
		posState := uint32(op) & pbMask

		// isMatch
		p := &d.isMatch[(state<<4|posState)&0xFF]
		bound := (rng >> probBits) * uint32(*p)
		if code < bound {
			rng = bound
			*p += (1<<probBits - *p) >> moveBits
			if rng < kTop {
				rng <<= 8
				code <<= 8
				if ip < len(in) {
					code |= uint32(in[ip])
				}
				ip++
			}

			// A literal.
			prev := uint32(0)
			if op > 0 {
				prev = uint32(out[op-1])
			}
			lp := &d.lit[((uint32(op)&lpMask)<<lc|prev>>(8-lc))&15]
			sym := uint32(1)
			if state >= litStates {
				// After a match: decode with the byte at rep0 too,
				// until a bit differs from it.
				mb := uint32(out[op-int(rep0)-1])
				for sym < 0x100 {
					mbit := mb >> 7 & 1
					mb <<= 1
					p := &lp[(0x100+mbit<<8+sym)&0x3FF]
					bound := (rng >> probBits) * uint32(*p)
					var bit uint32
					if code < bound {
						rng = bound
						*p += (1<<probBits - *p) >> moveBits
					} else {
						rng -= bound
						code -= bound
						*p -= *p >> moveBits
						bit = 1
					}
					if rng < kTop {
						rng <<= 8
						code <<= 8
						if ip < len(in) {
							code |= uint32(in[ip])
						}
						ip++
					}
					sym = sym<<1 | bit
					if bit != mbit {
						break
					}
				}
			}
			for sym < 0x100 {
				p := &lp[sym&0xFF]
				bound := (rng >> probBits) * uint32(*p)
				if code < bound {
					rng = bound
					*p += (1<<probBits - *p) >> moveBits
					sym <<= 1
				} else {
					rng -= bound
					code -= bound
					*p -= *p >> moveBits
					sym = sym<<1 | 1
				}
				if rng < kTop {
					rng <<= 8
					code <<= 8
					if ip < len(in) {
						code |= uint32(in[ip])
					}
					ip++
				}
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
		if rng < kTop {
			rng <<= 8
			code <<= 8
			if ip < len(in) {
				code |= uint32(in[ip])
			}
			ip++
		}

		// isRep
		var lenc *lenCoder
		p = &d.isRep[state&15]
		bound = (rng >> probBits) * uint32(*p)
		if code < bound {
			rng = bound
			*p += (1<<probBits - *p) >> moveBits
			if rng < kTop {
				rng <<= 8
				code <<= 8
				if ip < len(in) {
					code |= uint32(in[ip])
				}
				ip++
			}
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
			if rng < kTop {
				rng <<= 8
				code <<= 8
				if ip < len(in) {
					code |= uint32(in[ip])
				}
				ip++
			}
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
				if rng < kTop {
					rng <<= 8
					code <<= 8
					if ip < len(in) {
						code |= uint32(in[ip])
					}
					ip++
				}
				p = &d.isRep0Long[(state<<4|posState)&0xFF]
				bound = (rng >> probBits) * uint32(*p)
				if code < bound {
					rng = bound
					*p += (1<<probBits - *p) >> moveBits
					if rng < kTop {
						rng <<= 8
						code <<= 8
						if ip < len(in) {
							code |= uint32(in[ip])
						}
						ip++
					}
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
				if rng < kTop {
					rng <<= 8
					code <<= 8
					if ip < len(in) {
						code |= uint32(in[ip])
					}
					ip++
				}
			} else {
				rng -= bound
				code -= bound
				*p -= *p >> moveBits
				if rng < kTop {
					rng <<= 8
					code <<= 8
					if ip < len(in) {
						code |= uint32(in[ip])
					}
					ip++
				}
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
					if rng < kTop {
						rng <<= 8
						code <<= 8
						if ip < len(in) {
							code |= uint32(in[ip])
						}
						ip++
					}
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
				if rng < kTop {
					rng <<= 8
					code <<= 8
					if ip < len(in) {
						code |= uint32(in[ip])
					}
					ip++
				}
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
		var tree []uint16
		var top uint32
		if code < bound {
			rng = bound
			*p += (1<<probBits - *p) >> moveBits
			tree, top = lenc.low[posState&15][:], 8
		} else {
			rng -= bound
			code -= bound
			*p -= *p >> moveBits
			if rng < kTop {
				rng <<= 8
				code <<= 8
				if ip < len(in) {
					code |= uint32(in[ip])
				}
				ip++
			}
			p = &lenc.choice2
			bound = (rng >> probBits) * uint32(*p)
			if code < bound {
				rng = bound
				*p += (1<<probBits - *p) >> moveBits
				tree, top, length = lenc.mid[posState&15][:], 8, 8
			} else {
				rng -= bound
				code -= bound
				*p -= *p >> moveBits
				tree, top, length = lenc.high[:], 256, 16
			}
		}
		if rng < kTop {
			rng <<= 8
			code <<= 8
			if ip < len(in) {
				code |= uint32(in[ip])
			}
			ip++
		}
		sym := uint32(1)
		for sym < top {
			p := &tree[sym&0xFF]
			bound := (rng >> probBits) * uint32(*p)
			if code < bound {
				rng = bound
				*p += (1<<probBits - *p) >> moveBits
				sym <<= 1
			} else {
				rng -= bound
				code -= bound
				*p -= *p >> moveBits
				sym = sym<<1 | 1
			}
			if rng < kTop {
				rng <<= 8
				code <<= 8
				if ip < len(in) {
					code |= uint32(in[ip])
				}
				ip++
			}
		}
		length += sym - top

		if lenc == &d.matchLen {
			// The distance slot, by the length (0-3).
			slots := &d.distSlot[min(length, 3)]
			sym := uint32(1)
			for sym < 64 {
				p := &slots[sym&63]
				bound := (rng >> probBits) * uint32(*p)
				if code < bound {
					rng = bound
					*p += (1<<probBits - *p) >> moveBits
					sym <<= 1
				} else {
					rng -= bound
					code -= bound
					*p -= *p >> moveBits
					sym = sym<<1 | 1
				}
				if rng < kTop {
					rng <<= 8
					code <<= 8
					if ip < len(in) {
						code |= uint32(in[ip])
					}
					ip++
				}
			}
			slot := sym - 64
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
						dist = dist<<1 | (t + 1)
						if rng < kTop {
							rng <<= 8
							code <<= 8
							if ip < len(in) {
								code |= uint32(in[ip])
							}
							ip++
						}
					}
					dist <<= 4
					n = 4
					rev = d.align[:]
				}
				m := uint32(1)
				for i := uint32(0); i < n; i++ {
					p := &rev[m]
					bound := (rng >> probBits) * uint32(*p)
					if code < bound {
						rng = bound
						*p += (1<<probBits - *p) >> moveBits
						m <<= 1
					} else {
						rng -= bound
						code -= bound
						*p -= *p >> moveBits
						m = m<<1 | 1
						dist |= 1 << i
					}
					if rng < kTop {
						rng <<= 8
						code <<= 8
						if ip < len(in) {
							code |= uint32(in[ip])
						}
						ip++
					}
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
		if n > len(out)-op {
			errMsg = "match beyond the end of the chunk"
			break
		}
		s := op - int(rep0) - 1
		if int(rep0) >= n-1 {
			copy(out[op:op+n], out[s:s+n])
		} else {
			for i := range n {
				out[op+i] = out[s+i]
			}
		}
		op += n
	}
	if errMsg != "" {
		return op, min(ip, len(in)), &chunkError{errMsg, min(ip, len(in))}
	}
	d.state = state
	d.rep = [4]uint32{rep0, rep1, rep2, rep3}
	if ip > len(in) {
		return op, len(in), &chunkError{"LZMA chunk needs more than its packed size", len(in)}
	}
	if code != 0 {
		return op, ip, &chunkError{"range coder does not end with code 0", ip}
	}
	if ip < len(in) {
		return op, ip, &chunkError{"unused bytes at the end of an LZMA chunk", ip}
	}
	return op, ip, nil
}
