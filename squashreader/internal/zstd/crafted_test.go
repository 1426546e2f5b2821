// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// Builders of hand-made frames, for the cases too big for the corpus.

// testFrame is a frame with window descriptor wd (no content size, no
// checksum) around the given blocks.
func testFrame(wd byte, blocks ...[]byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, frameMagic)
	out = append(out, 0, wd)
	for _, b := range blocks {
		out = append(out, b...)
	}
	return out
}

// testBlock is a block header and content; size is the header's size
// field.
func testBlock(btype int, last bool, size int, content []byte) []byte {
	h := uint32(size)<<3 | uint32(btype)<<1
	if last {
		h |= 1
	}
	return append([]byte{byte(h), byte(h >> 8), byte(h >> 16)}, content...)
}

// rawLiterals is a raw literals section.
func rawLiterals(lits []byte) []byte {
	n := len(lits)
	var h []byte
	switch {
	case n < 32:
		h = []byte{byte(n << 3)}
	case n < 4096:
		h = []byte{byte(n<<4 | 4), byte(n >> 4)}
	default:
		h = []byte{byte(n<<4 | 12), byte(n >> 4), byte(n >> 12)}
	}
	return append(h, lits...)
}

// bitWriter writes a backward bit stream: fields in the order the
// decoder reads them.
type bitWriter struct {
	fields [][2]uint64 // value, bits
}

func (w *bitWriter) add(v, n uint64) { w.fields = append(w.fields, [2]uint64{v, n}) }

func (w *bitWriter) bytes() []byte {
	var out []byte
	var acc, nb uint64
	emit := func(v, n uint64) {
		for n > 0 {
			k := min(n, 8)
			acc |= (v & (1<<k - 1)) << nb
			nb += k
			v >>= k
			n -= k
			for nb >= 8 {
				out = append(out, byte(acc))
				acc >>= 8
				nb -= 8
			}
		}
	}
	for i := len(w.fields) - 1; i >= 0; i-- {
		emit(w.fields[i][0], w.fields[i][1])
	}
	emit(1, 1)
	if nb > 0 {
		out = append(out, byte(acc))
	}
	return out
}

// longMatches is a sequences section of RLE-coded sequences of no
// literals, offset 1 and the given match lengths, all of match length code
// 52 (65539 + 16 bits).
func longMatches(mls ...int) []byte {
	out := []byte{byte(len(mls)), 0x54, 0, 2, 52}
	var w bitWriter
	for _, ml := range mls {
		w.add(0, 2)                 // offset value 4 = 1<<2 + 0: offset 1
		w.add(uint64(ml-65539), 16) // match length
	}
	return append(out, w.bytes()...)
}

// TestBigCrafted checks hand-made inputs at the 128 KiB block limits, with
// libzstd 1.5.4's verdicts (gen_czstd.py checks them when it runs; they
// are too big to store): raw blocks may be bigger, a compressed block may
// be 128 KiB and no bigger, its literals too, and its output may be
// 128 KiB + 32 bytes (maxBlockOut).
func TestBigCrafted(t *testing.T) {
	a := testBlock(0, false, 1, []byte("a"))
	cases := []struct {
		name string
		src  []byte
		ok   bool
		n    int
	}{
		{"raw block of 128 KiB + 1", testFrame(0x50, testBlock(0, true, 131073, make([]byte, 131073))), true, 131073},
		{"compressed block of 128 KiB", testFrame(0x50, testBlock(2, true, 131072, append(rawLiterals(make([]byte, 131068)), 0))), true, 131068},
		{"compressed block of 128 KiB - 1", testFrame(0x50, testBlock(2, true, 131071, append(rawLiterals(make([]byte, 131067)), 0))), true, 131067},
		{"compressed block of 128 KiB + 1", testFrame(0x50, testBlock(2, true, 131073, append(rawLiterals(make([]byte, 131069)), 0))), false, 0},
		{"raw literals of 128 KiB + 1", testFrame(0x50, testBlock(2, true, 131077, append(rawLiterals(make([]byte, 131073)), 0))), false, 0},
	}
	for _, n := range []int{131078, 131104, 131105, 200000} {
		seq := append(rawLiterals(nil), longMatches(n/2, n-n/2)...)
		cases = append(cases, struct {
			name string
			src  []byte
			ok   bool
			n    int
		}{fmt.Sprintf("sequences of %d bytes", n), testFrame(0x50, a, testBlock(2, true, len(seq), seq)), n <= maxBlockOut, n + 1})
	}
	for _, tc := range cases {
		got, err := Decode(make([]byte, 0, 1<<20), tc.src)
		if tc.ok {
			if err != nil || len(got) != tc.n {
				t.Errorf("%s: %d bytes, %v; want %d bytes", tc.name, len(got), err, tc.n)
			}
			if tc.n > 0 {
				if _, err := Decode(make([]byte, 0, tc.n-1), tc.src); !errors.Is(err, codec.ErrTooLong) {
					t.Errorf("%s: one byte short: %v, want codec.ErrTooLong", tc.name, err)
				}
			}
		} else if !errors.Is(err, codec.ErrCorrupt) {
			t.Errorf("%s: %v, want codec.ErrCorrupt", tc.name, err)
		}
	}
}
