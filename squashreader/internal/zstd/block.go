// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"encoding/binary"
	"fmt"
)

// block decodes a compressed block's content src (at offset soff of the
// input) into out[op:], out[frameStart:op] being the frame's output so
// far; kind says what len(out) is: cap(dst) or the frame's content size.
func (d *decoder) block(out []byte, op, frameStart int, src []byte, soff int, kind int) (int, error) {
	if op+maxBlockOut < len(out) {
		out = out[:op+maxBlockOut]
		kind = limBlock
	}
	tooLong := func(n int) error {
		return outErr(kind, soff-3, n, len(out)-op)
	}
	if len(src) < 2 {
		return op, corrupt(soff, "compressed block of %d bytes", len(src))
	}
	// Literals section.
	b0 := src[0]
	ltype := b0 & 3
	sf := (b0 >> 2) & 3
	var lits []byte
	var used int
	switch ltype {
	case 0, 1: // raw, RLE
		var n, hs int
		switch sf {
		case 0, 2:
			hs, n = 1, int(b0>>3)
		case 1:
			hs, n = 2, int(b0>>4)+int(src[1])<<4
		case 3:
			if len(src) < 3 {
				return op, corrupt(soff, "truncated literals section header")
			}
			hs, n = 3, int(b0>>4)+int(src[1])<<4+int(src[2])<<12
		}
		if n > maxBlockSize {
			return op, corrupt(soff, "%d literals", n)
		}
		if n > len(out)-op {
			return op, tooLong(n)
		}
		if ltype == 0 {
			if hs+n > len(src) {
				return op, corrupt(soff, "truncated raw literals")
			}
			lits = src[hs : hs+n : len(src)]
			used = hs + n
		} else {
			if hs+1 > len(src) {
				return op, corrupt(soff, "truncated RLE literals")
			}
			lits = d.lits[:n]
			b := src[hs]
			for i := range lits {
				lits[i] = b
			}
			used = hs + 1
		}
	default: // Huffman-compressed, treeless
		if len(src) < 5 {
			return op, corrupt(soff, "truncated literals section header")
		}
		var n, cn, hs int
		v := int(src[0]) | int(src[1])<<8 | int(src[2])<<16 | int(src[3])<<24
		single := sf == 0
		switch sf {
		case 0, 1:
			hs, n, cn = 3, v>>4&0x3FF, v>>14&0x3FF
		case 2:
			hs, n, cn = 4, v>>4&0x3FFF, v>>18&0x3FFF
		case 3:
			hs, n, cn = 5, v>>4&0x3FFFF, v>>22&0x3FF+int(src[4])<<10
		}
		if n > maxBlockSize {
			return op, corrupt(soff, "%d literals", n)
		}
		if !single && n < 6 {
			return op, corrupt(soff, "%d literals in 4 streams", n)
		}
		if hs+cn > len(src) {
			return op, corrupt(soff, "truncated Huffman literals")
		}
		if n > len(out)-op {
			return op, tooLong(n)
		}
		hsrc := src[hs : hs+cn]
		hoff := soff + hs
		if ltype == 3 {
			if !d.hufOK {
				return op, corrupt(soff, "treeless literals without a previous Huffman table")
			}
		} else {
			t, err := d.readHuffman(hsrc, hoff)
			if err != nil {
				return op, err
			}
			if t >= len(hsrc) {
				return op, corrupt(hoff, "no Huffman streams after the tree")
			}
			hsrc = hsrc[t:]
			hoff += t
			d.hufOK = true
		}
		lits = d.lits[:n]
		var ok bool
		if single {
			ok = d.huf1(lits, hsrc)
		} else {
			ok = d.huf4(lits, hsrc)
		}
		if !ok {
			return op, corrupt(hoff, "bad Huffman-coded literals")
		}
		used = hs + cn
	}

	// Sequences section header.
	src = src[used:]
	soff += used
	if len(src) < 1 {
		return op, corrupt(soff, "missing sequences section")
	}
	nseq := int(src[0])
	p := 1
	if nseq >= 128 {
		if nseq == 255 {
			if len(src) < 3 {
				return op, corrupt(soff, "truncated sequences section header")
			}
			nseq = int(src[1]) + int(src[2])<<8 + 0x7F00
			p = 3
		} else {
			if len(src) < 2 {
				return op, corrupt(soff, "truncated sequences section header")
			}
			nseq = (nseq-128)<<8 + int(src[1])
			p = 2
		}
	}
	if nseq == 0 {
		if p != len(src) {
			return op, corrupt(soff+p, "bytes after an empty sequences section")
		}
		if len(lits) > len(out)-op {
			return op, tooLong(len(lits))
		}
		op += copy(out[op:], lits)
		return op, nil
	}
	if p >= len(src) {
		return op, corrupt(soff+p, "missing symbol compression modes")
	}
	modes := src[p]
	p++
	var err error
	if p, err = d.seqTable(src, p, soff, modes>>6, d.llTab[:], &d.llLog, llDefault[:], 6, maxLLCode, maxLLLog, llBase[:], llBits[:]); err != nil {
		return op, err
	}
	if p, err = d.seqTable(src, p, soff, modes>>4&3, d.ofTab[:], &d.ofLog, ofDefault[:], 5, maxOFCode, maxOFLog, nil, nil); err != nil {
		return op, err
	}
	if p, err = d.seqTable(src, p, soff, modes>>2&3, d.mlTab[:], &d.mlLog, mlDefault[:], 6, maxMLCode, maxMLLog, mlBase[:], mlBits[:]); err != nil {
		return op, err
	}
	d.fseOK = true
	return d.sequences(out, op, frameStart, lits, src[p:], soff+p, nseq, kind)
}

// seqTable reads one of the three sequence tables (mode: predefined, RLE,
// FSE-compressed or repeat) from src[p:] into own (the predefined table
// is copied there) and returns the new position.
func (d *decoder) seqTable(src []byte, p, soff int, mode uint8, own []seqEntry, curLog *uint8, def []seqEntry, defLog uint8, maxSym int, maxLog uint, base []uint32, extra []uint8) (int, error) {
	switch mode {
	case 0:
		copy(own, def)
		*curLog = defLog
	case 1:
		if p >= len(src) {
			return p, corrupt(soff+p, "truncated RLE sequence code")
		}
		s := src[p]
		if int(s) > maxSym {
			return p, corrupt(soff+p, "RLE sequence code %d > %d", s, maxSym)
		}
		e := &own[0]
		e.next, e.nbBits = 0, 0
		if base == nil {
			e.value, e.addBits = 1<<s, s
		} else {
			e.value, e.addBits = base[s], extra[s]
		}
		*curLog = 0
		p++
	case 2:
		nsym, log, n, ok := readNCount(src[p:], &d.norm, maxSym, maxLog)
		if !ok {
			return p, corrupt(soff+p, "bad FSE table description")
		}
		buildSeqTable(own[:1<<log], d.norm[:nsym], log, &d.spread, base, extra)
		*curLog = uint8(log)
		p += n
	case 3:
		if !d.fseOK {
			return p, corrupt(soff+p, "repeat mode without a previous table")
		}
	}
	return p, nil
}

// sequences decodes and executes nseq sequences from the bit stream src.
// The bit reader lives in locals here (c, consumed, pos: see bitReader),
// the hot loop's registers.
func (d *decoder) sequences(out []byte, op, frameStart int, lits, src []byte, soff, nseq int, kind int) (int, error) {
	var br bitReader
	if !br.init(src) {
		return op, corrupt(soff, "bad sequences bit stream")
	}
	llT, mlT, ofT := &d.llTab, &d.mlTab, &d.ofTab
	llS := br.state(d.llLog)
	ofS := br.state(d.ofLog)
	mlS := br.state(d.mlLog)
	br.reload()
	c, consumed, pos := br.c, br.consumed, br.pos
	rep0, rep1, rep2 := d.rep[0], d.rep[1], d.rep[2]
	lp := 0
	wild := out[:cap(out)] // may be written past len(out), within cap(dst)
	litsW := lits[:cap(lits)]
	for i := 0; i < nseq; i++ {
		// The states are below the tables' sizes; the masks only
		// spare bounds checks.
		lle := llT[llS&(1<<maxLLLog-1)]
		mle := mlT[mlS&(1<<maxMLLog-1)]
		ofe := ofT[ofS&(1<<maxOFLog-1)]
		// Extra bits: offset, match length, literal length, as libzstd
		// reads them (BIT_readBitsFast: the window shifted left by
		// consumed mod 64, its top n bits; 0 for n = 0).
		ofv := int(ofe.value) + int((c<<(consumed&63))>>1>>((63-ofe.addBits)&63))
		consumed += uint(ofe.addBits)
		ml := int(mle.value) + int((c<<(consumed&63))>>1>>((63-mle.addBits)&63))
		consumed += uint(mle.addBits)
		if ofe.addBits+mle.addBits+lle.addBits >= 31 {
			if pos >= 8 {
				pos -= int(consumed >> 3)
				consumed &= 7
				c = binary.LittleEndian.Uint64(src[pos:])
			} else {
				c, consumed, pos = reloadBits(src, c, consumed, pos)
			}
		}
		ll := int(lle.value) + int((c<<(consumed&63))>>1>>((63-lle.addBits)&63))
		consumed += uint(lle.addBits)
		var off int
		if ofe.addBits > 1 {
			off = ofv - 3
			rep2, rep1, rep0 = rep1, rep0, off
		} else {
			// Repeat offsets: 1-3, shifted by one when ll == 0.
			r := ofv
			if ll == 0 {
				r++
			}
			switch r {
			case 1:
				off = rep0
			case 2:
				off = rep1
				rep1 = rep0
				rep0 = off
			case 3:
				off = rep2
				rep2 = rep1
				rep1 = rep0
				rep0 = off
			default:
				off = rep0 - 1
				if off == 0 {
					off = 1 // as libzstd 1.5.4 does
				}
				rep2 = rep1
				rep1 = rep0
				rep0 = off
			}
		}
		// libzstd 1.5.4 moves the states on after the last sequence
		// too, and its end check allows for that (state: see
		// bitReader.state).
		consumed += uint(lle.nbBits)
		llS = uint64(lle.next) + (c>>((64-consumed)&63))&(1<<lle.nbBits-1)
		consumed += uint(mle.nbBits)
		mlS = uint64(mle.next) + (c>>((64-consumed)&63))&(1<<mle.nbBits-1)
		consumed += uint(ofe.nbBits)
		ofS = uint64(ofe.next) + (c>>((64-consumed)&63))&(1<<ofe.nbBits-1)
		if pos >= 8 {
			pos -= int(consumed >> 3)
			consumed &= 7
			c = binary.LittleEndian.Uint64(src[pos:])
		} else {
			c, consumed, pos = reloadBits(src, c, consumed, pos)
		}

		// Execute.
		if ll+ml > len(out)-op {
			return op, outErr(kind, soff, ll+ml, len(out)-op)
		}
		if ll > len(lits)-lp {
			return op, corrupt(soff, "sequence uses more literals than the block has")
		}
		if ll <= 16 && lp+16 <= len(litsW) && op+16 <= len(wild) {
			w := wild[op : op+16]
			r := litsW[lp : lp+16]
			a, b := binary.LittleEndian.Uint64(r), binary.LittleEndian.Uint64(r[8:])
			binary.LittleEndian.PutUint64(w, a)
			binary.LittleEndian.PutUint64(w[8:], b)
		} else {
			copy(out[op:op+ll], lits[lp:lp+ll])
		}
		op += ll
		lp += ll
		if off > op-frameStart {
			return op, corrupt(soff, "offset %d before the start of the frame", off)
		}
		m := op - off
		switch {
		case off >= 16 && op+ml+16 <= len(wild):
			// 16 bytes at a time: each copy's source was written
			// before it.
			for k := 0; k < ml; k += 16 {
				w := wild[op+k : op+k+16]
				r := wild[m+k : m+k+16]
				a, b := binary.LittleEndian.Uint64(r), binary.LittleEndian.Uint64(r[8:])
				binary.LittleEndian.PutUint64(w, a)
				binary.LittleEndian.PutUint64(w[8:], b)
			}
		case off >= 8 && op+ml+8 <= len(wild):
			for k := 0; k < ml; k += 8 {
				binary.LittleEndian.PutUint64(wild[op+k:], binary.LittleEndian.Uint64(wild[m+k:]))
			}
		case off >= ml:
			copy(out[op:op+ml], out[m:m+ml])
		default:
			t := out[op : op+ml]
			for j := range t {
				t[j] = out[m+j]
			}
		}
		op += ml
	}
	br.c, br.consumed, br.pos = c, consumed, pos
	br.reload()
	if !br.finished() && !br.overflowed() {
		return op, corrupt(soff, "sequences bit stream not used up")
	}
	d.rep = [3]int{rep0, rep1, rep2}
	rest := lits[lp:]
	if len(rest) > len(out)-op {
		return op, outErr(kind, soff, len(rest), len(out)-op)
	}
	op += copy(out[op:], rest)
	return op, nil
}

// reloadBits is bitReader.reload on the reader's fields.
func reloadBits(src []byte, c uint64, consumed uint, pos int) (uint64, uint, int) {
	br := bitReader{src: src, pos: pos, c: c, consumed: consumed}
	br.reload()
	return br.c, br.consumed, br.pos
}

// outErr is the error for n bytes of output at src offset off with room
// for only room more: ErrTooLong if cap(dst) is the limit, else ErrCorrupt.
func outErr(kind, off, n, room int) error {
	switch kind {
	case limFCS:
		return corrupt(off, "output goes past the frame content size")
	case limBlock:
		return corrupt(off, "block decodes to more than %d bytes", maxBlockOut)
	}
	return fmt.Errorf("%w: %d bytes of output at offset %d, %d bytes of room", ErrTooLong, n, off, room)
}
