// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"encoding/binary"
	"fmt"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
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
		if base == nil {
			own[0] = mkSeqEntry(1<<s, 0, 0, s)
		} else {
			own[0] = mkSeqEntry(base[s], 0, 0, extra[s])
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

// seq is one decoded sequence: ll literals, then a match of ml bytes at
// offset off.
type seq struct{ ll, ml, off uint32 }

// seqBatch is how many sequences are decoded before they are executed.
const seqBatch = 64

// seqReloadBits: the decoding loop reloads the bit window between the
// match length's and the literal length's extra bits when the three extra
// bit counts reach it, as libzstd's ZSTD_decodeSequence does (totalBits >=
// STREAM_ACCUMULATOR_MIN_64 - (LLFSELog + MLFSELog + OffFSELog): 57 - 26).
const seqReloadBits = 64 - 7 - (maxLLLog + maxMLLog + maxOFLog)

// seqState is the sequences bit stream between batches: the bit reader's
// window (see bitReader) over win, the three FSE states and the repeat
// offsets.
type seqState struct {
	win           []byte
	c             uint64
	consumed      uint
	pos           int
	llS, mlS, ofS uint64
	rep           [3]uint32
}

// sequences decodes and executes nseq sequences from the bit stream src,
// seqBatch at a time. Decoding and executing in separate loops keeps each
// loop's state in registers; decoding cannot fail (a stream that runs out
// reads zeros, and the end check below catches it), so executing each
// batch after decoding it changes nothing but speed.
func (d *decoder) sequences(out []byte, op, frameStart int, lits, src []byte, soff, nseq int, kind int) (int, error) {
	var br bitReader
	if !br.init(src) {
		return op, corrupt(soff, "bad sequences bit stream")
	}
	st := &d.st
	st.llS = br.state(d.llLog)
	st.ofS = br.state(d.ofLog)
	st.mlS = br.state(d.mlLog)
	br.reload()
	st.c, st.consumed, st.pos = br.c, br.consumed, br.pos
	// The decoding loop reloads the window without branches: it drops
	// at most pos bytes and loads 8 from win, which is src, or for a
	// stream shorter than 8 bytes (pos 0) its bytes in a zero-padded
	// copy, as br.init loaded them.
	st.win = src
	if len(src) < 8 {
		st.win = d.pad[:]
		clear(st.win)
		copy(st.win, src)
	}
	st.rep = d.rep
	lp := 0
	for nseq > 0 {
		n := min(nseq, seqBatch)
		nseq -= n
		seqs := d.seqs[:n]
		d.decodeSeqs(seqs)
		var err error
		if op, lp, err = execSeqs(out, op, frameStart, lits, lp, seqs, soff, kind); err != nil {
			st.win = nil // the idle decoder must not keep src
			return op, err
		}
	}
	br.c, br.consumed, br.pos = st.c, st.consumed, st.pos
	st.win = nil
	br.reload()
	if !br.finished() && !br.overflowed() {
		return op, corrupt(soff, "sequences bit stream not used up")
	}
	d.rep = st.rep
	rest := lits[lp:]
	if len(rest) > len(out)-op {
		return op, outErr(kind, soff, len(rest), len(out)-op)
	}
	op += copy(out[op:], rest)
	return op, nil
}

// decodeSeqsGeneric decodes len(seqs) sequences from d.st; decodeSeqs
// is this or its assembly translation.
func (d *decoder) decodeSeqsGeneric(seqs []seq) {
	st := &d.st
	win := st.win
	c, consumed, pos := st.c, st.consumed, st.pos
	llS, mlS, ofS := st.llS, st.mlS, st.ofS
	rep := &st.rep
	for i := range seqs {
		lle := d.llTab[llS&llStateMask]
		mle := d.mlTab[mlS&mlStateMask]
		ofe := d.ofTab[ofS&ofStateMask]
		// Extra bits: offset, match length, literal length, as libzstd
		// reads them (BIT_readBitsFast: the window shifted left by
		// consumed mod 64, its top n bits; 0 for n = 0).
		ofb, mlb, llb := ofe.addBits(), mle.addBits(), lle.addBits()
		ofv := ofe.value() + uint32((c<<(consumed&63))>>1>>((63-ofb)&63))
		consumed += uint(ofb)
		ml := mle.value() + uint32((c<<(consumed&63))>>1>>((63-mlb)&63))
		consumed += uint(mlb)
		if ofb+mlb+llb >= seqReloadBits { // 31
			nb := min(int(consumed>>3), pos)
			pos -= nb
			consumed -= uint(nb) * 8
			c = binary.LittleEndian.Uint64(win[pos:])
		}
		ll := lle.value() + uint32((c<<(consumed&63))>>1>>((63-llb)&63))
		consumed += uint(llb)
		var off uint32
		if ofb > 1 {
			off = ofv - 3
			rep[2], rep[1], rep[0] = rep[1], rep[0], off
		} else {
			// Repeat offsets: 1-3, shifted by one when ll == 0.
			r := ofv
			if ll == 0 {
				r++
			}
			switch r {
			case 1:
				off = rep[0]
			case 2:
				off = rep[1]
				rep[1] = rep[0]
				rep[0] = off
			case 3:
				off = rep[2]
				rep[2] = rep[1]
				rep[1] = rep[0]
				rep[0] = off
			default:
				off = rep[0] - 1
				if off == 0 {
					off = 1 // as libzstd 1.5.4 does
				}
				rep[2] = rep[1]
				rep[1] = rep[0]
				rep[0] = off
			}
		}
		seqs[i] = seq{ll, ml, off}
		// libzstd 1.5.4 moves the states on after the last sequence
		// too, and its end check allows for that (state: see
		// bitReader.state).
		consumed += uint(lle.nbBits())
		llS = lle.next() + (c>>((64-consumed)&63))&(1<<(lle.nbBits()&63)-1)
		consumed += uint(mle.nbBits())
		mlS = mle.next() + (c>>((64-consumed)&63))&(1<<(mle.nbBits()&63)-1)
		consumed += uint(ofe.nbBits())
		ofS = ofe.next() + (c>>((64-consumed)&63))&(1<<(ofe.nbBits()&63)-1)
		nb := min(int(consumed>>3), pos)
		pos -= nb
		consumed -= uint(nb) * 8
		c = binary.LittleEndian.Uint64(win[pos:])
	}
	st.c, st.consumed, st.pos = c, consumed, pos
	st.llS, st.mlS, st.ofS = llS, mlS, ofS
}

// execSeqs executes seqs: literals from lits[lp:], then the match, into
// out[op:]; it returns the new op and lp. Copies go 16 bytes at a time
// where out's capacity (wild) and lits' (litsW) leave room to overshoot,
// and call memmove (copy) only for long literal runs: a call in the loop
// would spill its registers.
func execSeqs(out []byte, op, frameStart int, lits []byte, lp int, seqs []seq, soff, kind int) (int, int, error) {
	wild := out[:cap(out)] // may be written past len(out), within cap(dst)
	litsW := lits[:cap(lits)]
	for i := 0; i < len(seqs); i++ {
		// execFast runs the sequences that need no check to fail, no
		// short offset and no care at the end of the buffers; this
		// loop runs the others.
		var k int
		if k, op, lp = execFast(out, op, frameStart, lits, lp, seqs[i:]); k > 0 {
			if i += k; i == len(seqs) {
				break
			}
		}
		s := &seqs[i]
		ll, ml := int(s.ll), int(s.ml)
		if ll+ml > len(out)-op {
			return op, lp, outErr(kind, soff, ll+ml, len(out)-op)
		}
		if ll > len(lits)-lp {
			return op, lp, corrupt(soff, "sequence uses more literals than the block has")
		}
		if ll <= 256 && lp+ll+16 <= len(litsW) && op+ll+16 <= len(wild) {
			copy16(wild[op:op+16], litsW[lp:lp+16])
			for k := 16; k < ll; k += 16 {
				copy16(wild[op+k:op+k+16], litsW[lp+k:lp+k+16])
			}
		} else {
			copy(out[op:op+ll], lits[lp:lp+ll])
		}
		op += ll
		lp += ll
		if uint(s.off) > uint(op-frameStart) {
			return op, lp, corrupt(soff, "offset %d before the start of the frame", s.off)
		}
		off := int(s.off)
		m := op - off
		if op+ml+32 <= len(wild) {
			switch {
			case off >= 16:
				// Each copy's source was written before it.
				copy16(wild[op:op+16], wild[m:m+16])
				for k := 16; k < ml; k += 16 {
					copy16(wild[op+k:op+k+16], wild[m+k:m+k+16])
				}
			case off >= 8:
				for k := 0; k < ml; k += 8 {
					copy8(wild[op+k:op+k+8], wild[m+k:m+k+8])
				}
			case ml <= 16:
				t := wild[op : op+ml]
				for j := range t {
					t[j] = wild[m+j]
				}
			default:
				// The match repeats its first off bytes: copy the
				// first d (a multiple of off, at least 8) a byte at a
				// time; after them each byte equals the one d before,
				// far enough back to copy 8 at a time.
				d := off * ((8 + off - 1) / off)
				t := wild[op : op+d]
				for j := range t {
					t[j] = wild[m+j]
				}
				m = op - d
				for k := d; k < ml; k += 8 {
					copy8(wild[op+k:op+k+8], wild[m+k:m+k+8])
				}
			}
		} else if off >= ml {
			copy(out[op:op+ml], out[m:m+ml])
		} else {
			t := out[op : op+ml]
			for j := range t {
				t[j] = out[m+j]
			}
		}
		op += ml
	}
	return op, lp, nil
}

// copy8 copies 8 bytes from src to dst.
func copy8(dst, src []byte) {
	binary.LittleEndian.PutUint64(dst, binary.LittleEndian.Uint64(src))
}

// copy16 copies 16 bytes from src to dst.
func copy16(dst, src []byte) {
	a, b := binary.LittleEndian.Uint64(src), binary.LittleEndian.Uint64(src[8:16])
	binary.LittleEndian.PutUint64(dst, a)
	binary.LittleEndian.PutUint64(dst[8:16], b)
}

// outErr is the error for n bytes of output at src offset off with room
// for only room more: codec.ErrTooLong if cap(dst) is the limit, else
// codec.ErrCorrupt.
func outErr(kind, off, n, room int) error {
	switch kind {
	case limFCS:
		return corrupt(off, "output goes past the frame content size")
	case limBlock:
		return corrupt(off, "block decodes to more than %d bytes", maxBlockOut)
	}
	return fmt.Errorf("zstd: %w: %d bytes of output at offset %d, %d bytes of room", codec.ErrTooLong, n, off, room)
}
