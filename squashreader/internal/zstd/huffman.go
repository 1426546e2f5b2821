// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"encoding/binary"
	"math/bits"
)

// maxHufLog is the longest Huffman code libzstd accepts (RFC 8878 says 11;
// libzstd's decoder takes 12).
const maxHufLog = 12

// readHuffman reads a Huffman tree description (RFC 8878 4.2.1) from the
// start of src and builds d.huf; it returns the bytes used. off is src's
// offset in the input, for errors.
func (d *decoder) readHuffman(src []byte, off int) (int, error) {
	if len(src) == 0 {
		return 0, corrupt(off, "missing Huffman tree description")
	}
	w := &d.weights
	hdr := int(src[0])
	var n, used int
	if hdr >= 128 {
		n = hdr - 127
		size := (n + 1) / 2
		if 1+size > len(src) {
			return 0, corrupt(off, "truncated Huffman weights")
		}
		for i := 0; i < n; i += 2 {
			b := src[1+i/2]
			w[i] = b >> 4
			w[i+1] = b & 15
		}
		used = 1 + size
	} else {
		if 1+hdr > len(src) {
			return 0, corrupt(off, "truncated Huffman weights")
		}
		var ok bool
		n, ok = d.fseWeights(src[1 : 1+hdr])
		if !ok {
			return 0, corrupt(off+1, "bad FSE-compressed Huffman weights")
		}
		used = 1 + hdr
	}
	// The weights sum (as 2^(w-1)) to a power of two once the last
	// symbol's implied weight is added.
	var total uint32
	var rank [maxHufLog + 2]uint32
	for i := 0; i < n; i++ {
		if w[i] > maxHufLog {
			return 0, corrupt(off, "Huffman weight %d > %d", w[i], maxHufLog)
		}
		rank[w[i]]++
		total += 1 << w[i] >> 1
	}
	if total == 0 {
		return 0, corrupt(off, "Huffman weights all zero")
	}
	log := uint32(bits.Len32(total))
	if log > maxHufLog {
		return 0, corrupt(off, "Huffman code longer than %d bits", maxHufLog)
	}
	rest := uint32(1)<<log - total
	if rest&(rest-1) != 0 {
		return 0, corrupt(off, "Huffman weights do not sum to a power of two")
	}
	last := uint8(bits.Len32(rest))
	w[n] = last
	rank[last]++
	n++
	if rank[1] < 2 || rank[1]&1 != 0 {
		return 0, corrupt(off, "Huffman weights give an odd number of longest codes")
	}
	// Fill the table: codes in order of weight, then symbol; a symbol of
	// weight k takes 2^(k-1) entries of the 1<<log table.
	var start [maxHufLog + 2]uint32
	p := uint32(0)
	for k := 1; k <= int(log); k++ {
		start[k] = p
		p += rank[k] << (k - 1)
	}
	for s := 0; s < n; s++ {
		k := w[s]
		if k == 0 {
			continue
		}
		e := uint16(s) | uint16(uint8(log)+1-k)<<8
		cnt := uint32(1) << (k - 1)
		t := d.huf[start[k] : start[k]+cnt]
		for i := range t {
			t[i] = e
		}
		start[k] += cnt
	}
	d.hufLog = uint8(log)
	return used, nil
}

// fseWeights decodes FSE-compressed Huffman weights into d.weights (two
// interleaved states, accuracy log at most 6) and returns how many.
func (d *decoder) fseWeights(src []byte) (int, bool) {
	nsym, log, used, ok := readNCount(src, &d.norm, 255, 6)
	if !ok {
		return 0, false
	}
	tab := d.wtab[:1<<log]
	buildFSE(tab, d.norm[:nsym], log)
	var br bitReader
	if !br.init(src[used:]) {
		return 0, false
	}
	s1 := br.state(uint8(log))
	s2 := br.state(uint8(log))
	br.reload()
	w := &d.weights
	n := 0
	for {
		// Decode with state 1, move it on; if that ran past the
		// stream, state 2 gives the last symbol. Then the same the
		// other way round.
		if n > 253 {
			return 0, false
		}
		e := tab[s1]
		w[n] = e.sym
		n++
		s1 = uint64(e.base) + br.state(e.nbBits)
		br.reload()
		if br.overflowed() {
			w[n] = tab[s2].sym
			n++
			break
		}
		if n > 253 {
			return 0, false
		}
		e = tab[s2]
		w[n] = e.sym
		n++
		s2 = uint64(e.base) + br.state(e.nbBits)
		br.reload()
		if br.overflowed() {
			w[n] = tab[s1].sym
			n++
			break
		}
	}
	return n, true
}

// huf1 decodes len(dst) symbols of one Huffman stream, which they must
// use up exactly.
func (d *decoder) huf1(dst, src []byte) bool {
	var br bitReader
	if !br.init(src) {
		return false
	}
	return d.hufRest(dst, &br)
}

// hufRest decodes len(dst) symbols from br, which they must use up
// exactly.
func (d *decoder) hufRest(dst []byte, br *bitReader) bool {
	tab := &d.huf
	shift := 64 - uint(d.hufLog)
	i := 0
	for br.pos >= 8 && i+4 <= len(dst) {
		for k := 0; k < 4; k++ {
			e := tab[(br.c<<(br.consumed&63))>>shift&(1<<maxHufLog-1)]
			dst[i] = uint8(e)
			br.consumed += uint(e >> 8)
			i++
		}
		br.reload()
	}
	for ; i < len(dst); i++ {
		e := tab[(br.c<<(br.consumed&63))>>shift&(1<<maxHufLog-1)]
		dst[i] = uint8(e)
		br.consumed += uint(e >> 8)
		br.reload()
	}
	br.reload()
	return br.finished()
}

// huf4 decodes the four streams of a 4-stream Huffman literals section.
// While every stream has 8 bytes left before its window, the streams are
// decoded together, four symbols each between reloads (4 x 12 bits fit in
// the 57 a reload leaves), with the readers in locals; huf1 finishes each.
func (d *decoder) huf4(dst, src []byte) bool {
	if len(src) < 10 {
		return false
	}
	l1 := int(binary.LittleEndian.Uint16(src))
	l2 := int(binary.LittleEndian.Uint16(src[2:]))
	l3 := int(binary.LittleEndian.Uint16(src[4:]))
	l4 := len(src) - 6 - l1 - l2 - l3
	if l4 < 0 {
		return false
	}
	seg := (len(dst) + 3) / 4
	if 3*seg > len(dst) {
		return false
	}
	s := src[6:]
	s1, s2, s3, s4 := s[:l1], s[l1:l1+l2], s[l1+l2:l1+l2+l3], s[l1+l2+l3:]
	var b1, b2, b3, b4 bitReader
	if !b1.init(s1) || !b2.init(s2) || !b3.init(s3) || !b4.init(s4) {
		return false
	}
	d1, d2, d3, d4 := dst[:seg], dst[seg:2*seg], dst[2*seg:3*seg], dst[3*seg:]
	tab := &d.huf
	shift := (64 - uint(d.hufLog)) & 63
	const mask = 1<<maxHufLog - 1
	c1, c2, c3, c4 := b1.c, b2.c, b3.c, b4.c
	n1, n2, n3, n4 := b1.consumed, b2.consumed, b3.consumed, b4.consumed
	p1, p2, p3, p4 := b1.pos, b2.pos, b3.pos, b4.pos
	i := 0
	// d4 is the shortest: seg-3 <= len(d4) <= seg.
	for p1 >= 8 && p2 >= 8 && p3 >= 8 && p4 >= 8 && i+4 <= len(d4) {
		for k := 0; k < 4; k++ {
			e1 := tab[(c1<<(n1&63))>>shift&mask]
			e2 := tab[(c2<<(n2&63))>>shift&mask]
			e3 := tab[(c3<<(n3&63))>>shift&mask]
			e4 := tab[(c4<<(n4&63))>>shift&mask]
			n1 += uint(e1 >> 8)
			n2 += uint(e2 >> 8)
			n3 += uint(e3 >> 8)
			n4 += uint(e4 >> 8)
			d1[i+k] = uint8(e1)
			d2[i+k] = uint8(e2)
			d3[i+k] = uint8(e3)
			d4[i+k] = uint8(e4)
		}
		i += 4
		p1 -= int(n1 >> 3)
		n1 &= 7
		c1 = binary.LittleEndian.Uint64(s1[p1:])
		p2 -= int(n2 >> 3)
		n2 &= 7
		c2 = binary.LittleEndian.Uint64(s2[p2:])
		p3 -= int(n3 >> 3)
		n3 &= 7
		c3 = binary.LittleEndian.Uint64(s3[p3:])
		p4 -= int(n4 >> 3)
		n4 &= 7
		c4 = binary.LittleEndian.Uint64(s4[p4:])
	}
	b1.c, b1.consumed, b1.pos = c1, n1, p1
	b2.c, b2.consumed, b2.pos = c2, n2, p2
	b3.c, b3.consumed, b3.pos = c3, n3, p3
	b4.c, b4.consumed, b4.pos = c4, n4, p4
	return d.hufRest(d1[i:], &b1) && d.hufRest(d2[i:], &b2) && d.hufRest(d3[i:], &b3) && d.hufRest(d4[i:], &b4)
}
