// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"math/bits"
	"sync"
)

// fseEntry is one state of an FSE decoding table: the symbol it decodes
// and how it moves on (next = base + the next nbBits bits).
type fseEntry struct {
	sym    uint8
	nbBits uint8
	base   uint16
}

// seqEntry is one state of a sequences table (literal lengths, match
// lengths or offsets), packed in one word so that the decoding loop keeps
// each in a register: the code's baseline value (bits 32-63), how the
// state moves on (next = the next state's base, bits 16-31, plus the next
// nbBits bits, bits 8-15) and the code's extra bits (bits 0-7).
type seqEntry uint64

// The fields' positions in a seqEntry (the assembly takes them from
// go_asm.h).
const (
	entryNbBitsShift = 8
	entryNextShift   = 16
	entryValueShift  = 32
)

func mkSeqEntry(value uint32, next uint16, nbBits, addBits uint8) seqEntry {
	return seqEntry(value)<<entryValueShift | seqEntry(next)<<entryNextShift | seqEntry(nbBits)<<entryNbBitsShift | seqEntry(addBits)
}

func (e seqEntry) value() uint32  { return uint32(e >> entryValueShift) }
func (e seqEntry) next() uint64   { return uint64(e>>entryNextShift) & 0xFFFF }
func (e seqEntry) nbBits() uint8  { return uint8(e >> entryNbBitsShift) }
func (e seqEntry) addBits() uint8 { return uint8(e) }

// readNCount reads an FSE table description (RFC 8878 4.1.1) from src:
// the normalized counts into norm (at most maxSym+1 symbols) and the
// accuracy log, at most maxLog. It returns the counts' symbol count, the
// log and the bytes used; ok false if the description is bad or runs past
// src.
func readNCount(src []byte, norm *[256]int16, maxSym int, maxLog uint) (nsym int, log uint, used int, ok bool) {
	// A little-endian bit reader, zeros past the end.
	var acc uint64
	var have uint // bits in acc
	pos := 0
	total := uint(0) // bits consumed
	fill := func() {
		for have <= 56 {
			var b byte
			if pos < len(src) {
				b = src[pos]
			}
			pos++
			acc |= uint64(b) << have
			have += 8
		}
	}
	take := func(n uint) {
		acc >>= n
		have -= n
		total += n
	}
	if len(src) == 0 {
		return 0, 0, 0, false
	}
	fill()
	log = uint(acc&15) + 5
	take(4)
	if log > maxLog {
		return 0, 0, 0, false
	}
	remaining := int32(1<<log) + 1
	threshold := int32(1 << log)
	nbBits := log + 1
	sym := 0
	prev0 := false
	for remaining > 1 && sym <= maxSym {
		fill()
		if prev0 {
			// Runs of zero counts: 2-bit repeat fields, 3 meaning more.
			for {
				r := int(acc & 3)
				take(2)
				for k := 0; k < r; k++ {
					if sym <= maxSym {
						norm[sym] = 0
					}
					sym++
				}
				if r != 3 {
					break
				}
				if sym > maxSym+1 {
					break
				}
				if have < 8 {
					fill()
				}
			}
			if sym > maxSym {
				break
			}
			fill()
		}
		max := 2*threshold - 1 - remaining
		var count int32
		if int32(acc&uint64(threshold-1)) < max {
			count = int32(acc & uint64(threshold-1))
			take(nbBits - 1)
		} else {
			count = int32(acc & uint64(2*threshold-1))
			if count >= threshold {
				count -= max
			}
			take(nbBits)
		}
		count--
		if count < 0 {
			remaining--
		} else {
			remaining -= count
		}
		norm[sym] = int16(count)
		sym++
		prev0 = count == 0
		for remaining < threshold && remaining > 1 {
			nbBits--
			threshold >>= 1
		}
	}
	if remaining != 1 || sym > maxSym+1 || total > uint(len(src))*8 {
		return 0, 0, 0, false
	}
	return sym, log, int(total+7) / 8, true
}

// buildFSE builds the decoding table of 1<<log states for the normalized
// counts norm[:nsym] (they sum to 1<<log, -1 counting 1).
func buildFSE(tab []fseEntry, norm []int16, log uint) {
	size := 1 << log
	var spread [1 << maxLLLog]uint8
	next := spreadSymbols(spread[:size], norm)
	for u := 0; u < size; u++ {
		s := spread[u]
		n := next[s]
		next[s]++
		nb := uint8(log) - uint8(bits.Len16(n)-1)
		tab[u].sym = s
		tab[u].nbBits = nb
		tab[u].base = uint16(int(n)<<nb - size)
	}
}

// spreadSymbols lays the symbols of the normalized counts norm over the
// len(sp) states (a power of two), as RFC 8878 4.1.1 spreads them:
// symbols of count -1 take the last states, the others are spread with
// a step of size*5/8+3. It returns each symbol's first next-state count.
func spreadSymbols(sp []uint8, norm []int16) (next [256]uint16) {
	size := len(sp)
	high := size - 1
	for s, c := range norm {
		if c == -1 {
			sp[high] = uint8(s)
			high--
			next[s] = 1
		} else {
			next[s] = uint16(c)
		}
	}
	step := size>>1 + size>>3 + 3
	mask := size - 1
	p := 0
	for s, c := range norm {
		for i := 0; i < int(c); i++ {
			sp[p] = uint8(s)
			p = (p + step) & mask
			for p > high {
				p = (p + step) & mask
			}
		}
	}
	return next
}

// buildSeqTable builds a sequences table (as buildFSE and seqTable do,
// in one pass over the states) for the normalized counts of the codes,
// using spread for the symbols; base and extra nil for offsets.
func buildSeqTable(tab []seqEntry, norm []int16, log uint, spread *[1 << maxLLLog]uint8, base []uint32, extra []uint8) {
	size := 1 << log
	sp := spread[:size]
	next := spreadSymbols(sp, norm)
	for u := range tab {
		s := sp[u]
		n := next[s]
		next[s]++
		nb := uint8(log) - uint8(bits.Len16(n)-1)
		nx := uint16(int(n)<<nb - size)
		if base == nil {
			tab[u] = mkSeqEntry(1<<s, nx, nb, s)
		} else {
			tab[u] = mkSeqEntry(base[s], nx, nb, extra[s])
		}
	}
}

// Literal length, match length and offset codes: baselines and extra bits
// (RFC 8878 3.1.1.3.2.1.1). Offset code c is 1<<c plus c extra bits.
var llBase = [36]uint32{
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048, 4096,
	8192, 16384, 32768, 65536,
}

var llBits = [36]uint8{
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12,
	13, 14, 15, 16,
}

var mlBase = [53]uint32{
	3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
	19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
	35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051,
	4099, 8195, 16387, 32771, 65539,
}

var mlBits = [53]uint8{
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11,
	12, 13, 14, 15, 16,
}

const (
	maxLLCode = 35
	maxMLCode = 52
	maxOFCode = 31
	maxLLLog  = 9
	maxMLLog  = 9
	maxOFLog  = 8
)

// Masks of a state into its table (1<<maxLog entries): the states are
// below the tables' sizes, the masks spare bounds checks in Go and keep
// the assembly's loads in the tables whatever the states are.
const (
	llStateMask = 1<<maxLLLog - 1
	mlStateMask = 1<<maxMLLog - 1
	ofStateMask = 1<<maxOFLog - 1
)

// The predefined distributions (RFC 8878 3.1.1.3.2.2).
var (
	llDefaultNorm = [36]int16{4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1,
		2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1}
	mlDefaultNorm = [53]int16{1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1}
	ofDefaultNorm = [29]int16{1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1}
)

// The predefined tables, built on first use (no work at package init).
var (
	defaultOnce sync.Once
	llDefault   [1 << 6]seqEntry
	mlDefault   [1 << 6]seqEntry
	ofDefault   [1 << 5]seqEntry
)

func buildDefaults() {
	var tmp [1 << 6]fseEntry
	buildFSE(tmp[:], llDefaultNorm[:], 6)
	seqTable(llDefault[:], tmp[:], llBase[:], llBits[:])
	buildFSE(tmp[:], mlDefaultNorm[:], 6)
	seqTable(mlDefault[:], tmp[:], mlBase[:], mlBits[:])
	buildFSE(tmp[:32], ofDefaultNorm[:], 5)
	seqTable(ofDefault[:], tmp[:32], nil, nil)
}

// seqTable turns an FSE table of codes into a sequences table; base and
// extra nil for offsets.
func seqTable(dst []seqEntry, src []fseEntry, base []uint32, extra []uint8) {
	for i, e := range src {
		if base == nil {
			dst[i] = mkSeqEntry(1<<e.sym, e.base, e.nbBits, e.sym)
		} else {
			dst[i] = mkSeqEntry(base[e.sym], e.base, e.nbBits, extra[e.sym])
		}
	}
}
