// SPDX-License-Identifier: BSD-3-Clause

package inflate

import (
	"cmp"
	"fmt"
	"math/bits"
	"sync"
)

// A table entry is a uint32:
//
//	bits 0-5   bits to consume: code length plus extra bits (a subtable
//	           pointer: the main table's bits)
//	bits 8-13  code length, where the extra bits start (a subtable
//	           pointer: the subtable's index bits)
//	bit 14     entFlagSub: the entry points to a subtable
//	bit 15     entFlagExc: end of block (value 0) or invalid code (value 1)
//	bits 16-30 value: literal byte, length or distance base, subtable offset
//	bit 31     entFlagLit: literal (so int32(entry) < 0)
//
// Extra bits are (bitbuf & (1<<total - 1)) >> codelen, taken before
// consuming total bits.
const (
	entFlagSub = 1 << 14
	entFlagExc = 1 << 15
	entFlagLit = 1 << 31
	entInvalid = entFlagExc | 1<<16
	entEOB     = entFlagExc
)

const (
	litlenBits       = 11
	litlenMask       = 1<<litlenBits - 1
	litlenTableSize  = 4096 // >= 2342, the most an 11-bit table with subtables needs for 286 symbols up to 15 bits
	distBits         = 8
	distMask         = 1<<distBits - 1
	distTableSize    = 512 // >= 402, likewise for 30 symbols
	precodeBits      = 7
	precodeTableSize = 1 << precodeBits
)

// The per-symbol entry templates: value and flags, and the count of extra
// bits in bits 0-5 (the code length is added when building).
var litlenInfo, distInfo, precodeInfo = func() (l [maxLitlenSyms]uint32, d [maxDistSyms]uint32, p [precodeSyms]uint32) {
	for i := range 256 {
		l[i] = entFlagLit | uint32(i)<<16
	}
	l[256] = entEOB
	base := uint32(3)
	for s := 257; s < 285; s++ {
		extra := uint32(0)
		if s >= 265 {
			extra = uint32(s-261) / 4
		}
		l[s] = base<<16 | extra
		base += 1 << extra
	}
	l[285] = 258 << 16
	l[286], l[287] = entInvalid, entInvalid
	base = 1
	for s := range 30 {
		extra := uint32(0)
		if s >= 4 {
			extra = uint32(s-2) / 2
		}
		d[s] = base<<16 | extra
		base += 1 << extra
	}
	d[30], d[31] = entInvalid, entInvalid
	for s := range p {
		p[s] = uint32(s) << 16
	}
	return
}()

// fixedTables are the decode tables of the fixed Huffman codes, built on
// the first block that uses them: squashfs blocks rarely do (only tiny
// ones), and a table built at package initialisation would be on the
// path of every program start.
type fixedTables struct {
	litlen [litlenTableSize]uint32
	dist   [distTableSize]uint32
}

var fixed = sync.OnceValue(func() *fixedTables {
	t := new(fixedTables)
	var lens [maxLitlenSyms + maxDistSyms]uint8
	for i := range maxLitlenSyms {
		switch {
		case i < 144:
			lens[i] = 8
		case i < 256:
			lens[i] = 9
		case i < 280:
			lens[i] = 7
		default:
			lens[i] = 8
		}
	}
	for i := range maxDistSyms {
		lens[maxLitlenSyms+i] = 5
	}
	m1, _ := buildTable(t.litlen[:], litlenBits, lens[:maxLitlenSyms], litlenInfo[:])
	m2, _ := buildTable(t.dist[:], distBits, lens[maxLitlenSyms:], distInfo[:])
	if m1 != "" || m2 != "" {
		panic("inflate: building the fixed tables")
	}
	return t
})

// buildTable fills table with the decode entries for the canonical Huffman code
// of the code lengths lens (at most 15), with a main table of tableBits
// bits followed by subtables for longer codes. It returns "" or what is
// wrong with the code lengths. Incomplete codes are accepted only when
// they have a single code of length 1 (or none at all); the caller rejects
// those where they are not allowed: incomplete reports them.
func buildTable(table []uint32, tableBits uint, lens []uint8, info []uint32) (msg string, incomplete bool) {
	var count [16]uint16
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	maxLen := uint(0)
	left := 1
	for l := uint(1); l < 16; l++ {
		left = left<<1 - int(count[l])
		if left < 0 {
			return "over-subscribed", false
		}
		if count[l] != 0 {
			maxLen = l
		}
	}
	mainSize := 1 << tableBits
	if left != 0 {
		// Incomplete: allowed for no codes or one code of length 1.
		if maxLen > 1 {
			return "incomplete", true
		}
		incomplete = true
		for i := range mainSize {
			table[i] = entInvalid
		}
		if maxLen == 0 {
			return "", true
		}
	}

	// Symbols sorted by code length, then value: canonical order.
	var offs [16]uint16
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + count[l]
	}
	var sorted [maxLitlenSyms]uint16
	for s, l := range lens {
		if l != 0 {
			sorted[offs[l]] = uint16(s)
			offs[l]++
		}
	}

	code := uint(0) // canonical code, most significant bit first
	next := mainSize
	subPrefix, subBits := ^uint(0), uint(0)
	remaining := count // codes of each length not yet placed
	i := 0
	for l := uint(1); l <= maxLen; l++ {
		for range count[l] {
			s := sorted[i]
			i++
			rev := uint(bits.Reverse16(uint16(code))) >> (16 - l)
			e := info[s]
			if l <= tableBits {
				e += uint32(l) | uint32(l)<<8
				for j := rev; j < uint(mainSize); j += 1 << l {
					table[j] = e
				}
			} else {
				prefix := rev & (uint(mainSize) - 1)
				if prefix != subPrefix {
					// New subtable: as many index bits as the codes
					// sharing this prefix need, counting from the
					// shortest of them (this one).
					subBits = l - tableBits
					room := 1 << subBits
					for subBits+tableBits < maxLen {
						room -= int(remaining[subBits+tableBits])
						if room <= 0 {
							break
						}
						subBits++
						room <<= 1
					}
					if next+1<<subBits > len(table) {
						return "too many long codes", false // not reachable for valid lengths
					}
					table[prefix] = uint32(next)<<16 | entFlagSub | uint32(subBits)<<8 | uint32(tableBits)
					subPrefix = prefix
					next += 1 << subBits
				}
				sl := l - tableBits
				e += uint32(sl) | uint32(sl)<<8
				start := int(table[prefix] >> 16)
				for j := rev >> tableBits; j < 1<<subBits; j += 1 << sl {
					table[start+int(j)] = e
				}
			}
			remaining[l]--
			code++
		}
		code <<= 1
	}
	return "", incomplete
}

// dynamic reads a dynamic block's header and builds d.litlen and d.dist.
func (d *decoder) dynamic() error {
	start := d.pos()
	h, err := d.bits(14)
	if err != nil {
		return err
	}
	nlit, ndist, nclen := int(h&31)+257, int(h>>5&31)+1, int(h>>10)+4
	if nlit > 286 || ndist > 30 {
		return corrupt(fmt.Sprintf("too many codes (%d literal/length, %d distance)", nlit, ndist), start)
	}
	var clens [precodeSyms]uint8
	for i := range nclen {
		v, err := d.bits(3)
		if err != nil {
			return err
		}
		clens[precodeOrder[i]] = uint8(v)
	}
	if msg, incomplete := buildTable(d.precode[:], precodeBits, clens[:], precodeInfo[:]); msg != "" || incomplete {
		// zlib wants this code complete, even a single 1-bit code.
		return corrupt(cmp.Or(msg, "incomplete")+" code lengths code", start)
	}

	lens := d.lens[:nlit+ndist]
	for i := 0; i < len(lens); {
		if d.bitcnt < 7+7 {
			d.refill()
		}
		e := d.precode[d.bitbuf&(precodeTableSize-1)]
		n := uint(e & 63)
		d.bitbuf >>= n
		d.bitcnt -= n
		sym := e >> 16
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return corrupt("repeat of no code length", d.pos())
			}
			val = lens[i-1]
			rep = 3 + int(d.bitbuf&3)
			d.bitbuf >>= 2
			d.bitcnt -= 2
		case 17:
			rep = 3 + int(d.bitbuf&7)
			d.bitbuf >>= 3
			d.bitcnt -= 3
		default:
			rep = 11 + int(d.bitbuf&127)
			d.bitbuf >>= 7
			d.bitcnt -= 7
		}
		if rep > len(lens)-i {
			return corrupt("code lengths repeat past the end", d.pos())
		}
		for range rep {
			lens[i] = val
			i++
		}
		if d.overread() {
			return corrupt("unexpected end of input", len(d.src))
		}
	}
	if d.overread() {
		return corrupt("unexpected end of input", len(d.src))
	}
	if lens[256] == 0 {
		return corrupt("no end-of-block code", start)
	}
	if msg, _ := buildTable(d.litlen[:], litlenBits, lens[:nlit], litlenInfo[:]); msg != "" {
		return corrupt(msg+" literal/length code", start)
	}
	if msg, _ := buildTable(d.dist[:], distBits, lens[nlit:], distInfo[:]); msg != "" {
		return corrupt(msg+" distance code", start)
	}
	return nil
}

var precodeOrder = [precodeSyms]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
