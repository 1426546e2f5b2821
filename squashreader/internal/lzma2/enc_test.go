// SPDX-License-Identifier: BSD-3-Clause

package lzma2

import "math/bits"

// A minimal LZMA encoder for the tests: it range-codes the symbols it is
// told to (literals, matches, repeats, even invalid ones), so that the
// tests can make the chunks that liblzma's encoder never would. It shares
// the decoder's probability layout, not its code.

type rcEnc struct {
	low       uint64
	rng       uint32
	cache     byte
	cacheSize int
	out       []byte
}

func newRCEnc() *rcEnc { return &rcEnc{rng: 0xFFFFFFFF, cacheSize: 1} }

func (r *rcEnc) shiftLow() {
	if uint32(r.low) < 0xFF000000 || r.low >= 1<<32 {
		carry := byte(r.low >> 32)
		b := r.cache
		for ; r.cacheSize > 0; r.cacheSize-- {
			r.out = append(r.out, b+carry)
			b = 0xFF
		}
		r.cache = byte(r.low >> 24)
	}
	r.cacheSize++
	r.low = r.low & 0x00FFFFFF << 8
}

func (r *rcEnc) bit(p *uint16, b uint32) {
	bound := (r.rng >> 11) * uint32(*p)
	if b == 0 {
		r.rng = bound
		*p += (2048 - *p) >> 5
	} else {
		r.low += uint64(bound)
		r.rng -= bound
		*p -= *p >> 5
	}
	for r.rng < 1<<24 {
		r.rng <<= 8
		r.shiftLow()
	}
}

func (r *rcEnc) direct(v uint32, n int) {
	for i := n - 1; i >= 0; i-- {
		r.rng >>= 1
		if v>>i&1 != 0 {
			r.low += uint64(r.rng)
		}
		for r.rng < 1<<24 {
			r.rng <<= 8
			r.shiftLow()
		}
	}
}

func (r *rcEnc) flush() []byte {
	for range 5 {
		r.shiftLow()
	}
	return r.out
}

// enc encodes the symbols of LZMA chunks; data is the output since the
// dictionary reset (matches that reach before it append zeros).
type enc struct {
	d     decoder
	rc    *rcEnc
	state uint32
	rep   [4]uint32
	data  []byte
}

func newEnc(lc, lp, pb uint32) *enc {
	e := &enc{rc: newRCEnc()}
	e.d.lc, e.d.lpMask, e.d.pbMask = lc, 1<<lp-1, 1<<pb-1
	e.d.reset()
	return e
}

func (e *enc) tree(t []uint16, n int, v uint32) {
	m := uint32(1)
	for i := n - 1; i >= 0; i-- {
		b := v >> i & 1
		e.rc.bit(&t[m], b)
		m = m<<1 | b
	}
}

func (e *enc) revTree(t []uint16, n int, v uint32) {
	m := uint32(1)
	for range n {
		b := v & 1
		v >>= 1
		e.rc.bit(&t[m], b)
		m = m<<1 | b
	}
}

func (e *enc) posState() uint32 { return uint32(len(e.data)) & e.d.pbMask }

func (e *enc) length(l *lenCoder, n int) {
	x, ps := uint32(n-2), e.posState()
	switch {
	case x < 8:
		e.rc.bit(&l.choice, 0)
		e.tree(l.low[ps][:], 3, x)
	case x < 16:
		e.rc.bit(&l.choice, 1)
		e.rc.bit(&l.choice2, 0)
		e.tree(l.mid[ps][:], 3, x-8)
	default:
		e.rc.bit(&l.choice, 1)
		e.rc.bit(&l.choice2, 1)
		e.tree(l.high[:], 8, x-16)
	}
}

func (e *enc) lit(c byte) *enc {
	e.rc.bit(&e.d.isMatch[e.state<<4|e.posState()], 0)
	prev := uint32(0)
	if len(e.data) > 0 {
		prev = uint32(e.data[len(e.data)-1])
	}
	lp := &e.d.lit[(uint32(len(e.data))&e.d.lpMask)<<e.d.lc|prev>>(8-e.d.lc)]
	if e.state >= 7 {
		mb := uint32(e.data[len(e.data)-int(e.rep[0])-1])
		sym, matched := uint32(1), true
		for i := 7; i >= 0; i-- {
			b := uint32(c) >> i & 1
			if matched {
				mbit := mb >> i & 1
				e.rc.bit(&lp[0x100+mbit<<8+sym], b)
				matched = b == mbit
			} else {
				e.rc.bit(&lp[sym], b)
			}
			sym = sym<<1 | b
		}
	} else {
		e.tree(lp[:], 8, uint32(c))
	}
	e.data = append(e.data, c)
	switch {
	case e.state < 4:
		e.state = 0
	case e.state < 10:
		e.state -= 3
	default:
		e.state -= 6
	}
	return e
}

func (e *enc) lits(s string) *enc {
	for i := range len(s) {
		e.lit(s[i])
	}
	return e
}

func (e *enc) copyMatch(n int) {
	for range n {
		if s := len(e.data) - int(e.rep[0]) - 1; s >= 0 {
			e.data = append(e.data, e.data[s])
		} else {
			e.data = append(e.data, 0)
		}
	}
}

// match codes a match of n bytes at distance dist+1 (dist 0xFFFFFFFF is
// the end-of-payload marker).
func (e *enc) match(dist uint32, n int) *enc {
	e.rc.bit(&e.d.isMatch[e.state<<4|e.posState()], 1)
	e.rc.bit(&e.d.isRep[e.state], 0)
	e.length(&e.d.matchLen, n)
	var slot uint32
	if dist < 4 {
		slot = dist
	} else {
		nb := uint32(bits.Len32(dist))
		slot = (nb-1)*2 + dist>>(nb-2)&1
	}
	e.tree(e.d.distSlot[min(n-2, 3)][:], 6, slot)
	if slot >= 4 {
		nd := int(slot>>1 - 1)
		base := (2 | slot&1) << nd
		rem := dist - base
		if slot < 14 {
			e.revTree(e.d.distSpec[base-slot:], nd, rem)
		} else {
			e.rc.direct(rem>>4, nd-4)
			e.revTree(e.d.align[:], 4, rem&15)
		}
	}
	e.rep = [4]uint32{dist, e.rep[0], e.rep[1], e.rep[2]}
	if e.state < 7 {
		e.state = 7
	} else {
		e.state = 10
	}
	e.copyMatch(n)
	return e
}

// shortRep codes one byte at rep0.
func (e *enc) shortRep() *enc {
	ps := e.posState()
	e.rc.bit(&e.d.isMatch[e.state<<4|ps], 1)
	e.rc.bit(&e.d.isRep[e.state], 1)
	e.rc.bit(&e.d.isRepG0[e.state], 0)
	e.rc.bit(&e.d.isRep0Long[e.state<<4|ps], 0)
	if e.state < 7 {
		e.state = 9
	} else {
		e.state = 11
	}
	e.copyMatch(1)
	return e
}

// rep codes a match of n bytes at the i-th last distance.
func (e *enc) repMatch(i, n int) *enc {
	ps := e.posState()
	e.rc.bit(&e.d.isMatch[e.state<<4|ps], 1)
	e.rc.bit(&e.d.isRep[e.state], 1)
	if i == 0 {
		e.rc.bit(&e.d.isRepG0[e.state], 0)
		e.rc.bit(&e.d.isRep0Long[e.state<<4|ps], 1)
	} else {
		e.rc.bit(&e.d.isRepG0[e.state], 1)
		if i == 1 {
			e.rc.bit(&e.d.isRepG1[e.state], 0)
		} else {
			e.rc.bit(&e.d.isRepG1[e.state], 1)
			e.rc.bit(&e.d.isRepG2[e.state], uint32(i-2))
		}
		d := e.rep[i]
		copy(e.rep[1:i+1], e.rep[:i])
		e.rep[0] = d
	}
	e.length(&e.d.repLen, n)
	if e.state < 7 {
		e.state = 8
	} else {
		e.state = 11
	}
	e.copyMatch(n)
	return e
}

// chunk returns the LZMA2 chunk of the symbols coded since the last call
// (from output position start): control is 0x80, 0xA0, 0xC0 or 0xE0,
// with the properties byte (lc, lp, pb) when it is 0xC0 or more. The
// range coder starts afresh for the next chunk.
func (e *enc) chunk(control byte, start int) []byte {
	packed := e.rc.flush()
	e.rc = newRCEnc()
	u := len(e.data) - start - 1
	c := []byte{control | byte(u>>16), byte(u >> 8), byte(u), byte((len(packed) - 1) >> 8), byte(len(packed) - 1)}
	if control >= 0xC0 {
		c = append(c, byte((bits.Len32(e.d.pbMask)*5+bits.Len32(e.d.lpMask))*9+int(e.d.lc)))
	}
	return append(c, packed...)
}
