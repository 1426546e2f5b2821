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

// decodeLiterals1 decodes len(dst) symbols of one Huffman stream.
func (d *decoder) huf1(dst, src []byte) bool {
	var br bitReader
	if !br.init(src) {
		return false
	}
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
	return d.huf1(dst[:seg], s[:l1]) &&
		d.huf1(dst[seg:2*seg], s[l1:l1+l2]) &&
		d.huf1(dst[2*seg:3*seg], s[l1+l2:l1+l2+l3]) &&
		d.huf1(dst[3*seg:], s[l1+l2+l3:])
}
