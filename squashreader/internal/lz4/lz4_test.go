// SPDX-License-Identifier: BSD-3-Clause

package lz4

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	pierrec "github.com/pierrec/lz4/v4"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

type clz4Case struct {
	block     int
	bit, cut  int
	cap       int
	result    int // output length, -1 error, -2 undefined output
	outSHA256 [8]byte
}

// readCLZ4 reads testdata/clz4.cases (see testdata/gen_clz4.py).
func readCLZ4(t testing.TB) ([][]byte, []clz4Case) {
	t.Helper()
	b, err := os.ReadFile("testdata/clz4.cases")
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	u32 := func() int {
		if len(b) < 4 {
			t.Fatal("clz4.cases: truncated")
		}
		v := be.Uint32(b)
		b = b[4:]
		return int(int32(v))
	}
	blocks := make([][]byte, u32())
	for i := range blocks {
		n := u32()
		blocks[i], b = b[:n], b[n:]
	}
	cases := make([]clz4Case, u32())
	for i := range cases {
		c := clz4Case{block: u32(), bit: u32(), cut: u32(), cap: u32(), result: u32()}
		copy(c.outSHA256[:], b)
		b = b[8:]
		cases[i] = c
	}
	if len(b) != 0 {
		t.Fatalf("clz4.cases: %d bytes left over", len(b))
	}
	return blocks, cases
}

// TestCLZ4 checks Decode against C liblz4's LZ4_decompress_safe: the same
// output where it decodes, an error where it fails (or where its output
// is undefined), on its own blocks and on every bit flip and truncation
// of some of them.
func TestCLZ4(t *testing.T) {
	blocks, cases := readCLZ4(t)
	var valid, invalid int
	for _, c := range cases {
		src := append([]byte(nil), blocks[c.block]...)
		if c.bit >= 0 {
			src[c.bit/8] ^= 1 << (c.bit % 8)
		}
		if c.cut >= 0 {
			src = src[:c.cut]
		}
		name := fmt.Sprintf("block %d bit %d cut %d cap %d", c.block, c.bit, c.cut, c.cap)
		out, err := Decode(make([]byte, 0, c.cap), src)
		if c.result < 0 {
			invalid++
			if err == nil {
				t.Errorf("%s: decoded %d bytes, liblz4 says %d", name, len(out), c.result)
			} else if !errors.Is(err, codec.ErrCorrupt) {
				t.Errorf("%s: error %v does not wrap codec.ErrCorrupt", name, err)
			}
			continue
		}
		valid++
		if err != nil {
			t.Errorf("%s: %v; liblz4 decodes %d bytes", name, err, c.result)
			continue
		}
		sum := sha256.Sum256(out)
		if len(out) != c.result || !bytes.Equal(sum[:8], c.outSHA256[:]) {
			t.Errorf("%s: output of %d bytes differs from liblz4's (%d bytes)", name, len(out), c.result)
		}
	}
	if valid < 1000 || invalid < 500 {
		t.Errorf("corpus too small: %d valid, %d invalid cases", valid, invalid)
	}
}

// TestRules checks each acceptance rule on a hand-made block.
func TestRules(t *testing.T) {
	lits := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	// seq: a token with literal count l (< 15) and match length m+4
	// (m < 15), the literals, and offset off.
	seq := func(l, m, off int) []byte {
		b := []byte{byte(l<<4 | m)}
		b = append(b, lits(l)...)
		return append(b, byte(off), byte(off>>8))
	}
	last := func(l int) []byte {
		if l < 15 {
			return append([]byte{byte(l << 4)}, lits(l)...)
		}
		return append([]byte{0xf0, byte(l - 15)}, lits(l)...)
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, tc := range []struct {
		name string
		src  []byte
		cap  int
		want string // "" for an error
	}{
		{"empty block", nil, 100, ""},
		{"zero capacity, byte 0", []byte{0}, 0, "="},
		{"zero capacity, other", []byte{0x10, 'a'}, 0, ""},
		{"literals only", last(5), 100, "xxxxx"},
		{"extended literal length", last(20), 100, string(lits(20))},
		{"literals overflow", last(5), 4, ""},
		{"literals short of the end", append(last(5), 'y'), 100, ""},
		{"match then literals", cat(seq(4, 0, 2), last(5)), 100, "xxxxxxxxxxxxx"},
		{"overlapping match", cat(seq(1, 6, 1), last(5)), 100, "xxxxxxxxxxxxxxxx"},
		{"offset 0", cat(seq(4, 0, 0), last(5)), 100, ""},
		{"offset before the output", cat(seq(4, 0, 5), last(5)), 100, ""},
		{"match into the last 5 bytes of capacity", cat(seq(4, 9, 4), last(5)), 21, ""},
		{"match ending 5 bytes before the capacity", cat(seq(4, 9, 4), last(5)), 22, string(lits(22))},
		{"literals within 12 bytes of capacity must be last", cat(seq(4, 0, 4), last(5)), 15, ""},
		{"fewer than 8 bytes after literals", cat(seq(4, 0, 4), []byte{0x10}), 100, ""},
		{"match length extension near the end", cat([]byte{0x4f}, lits(4), []byte{4, 0, 0}, last(0)), 100, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Decode(make([]byte, 0, tc.cap), tc.src)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("decoded %q, want an error", out)
				}
				if !errors.Is(err, codec.ErrCorrupt) {
					t.Fatalf("error %v does not wrap codec.ErrCorrupt", err)
				}
				return
			}
			if tc.want == "=" {
				tc.want = ""
			}
			if err != nil {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if string(out) != tc.want {
				t.Fatalf("got %q, want %q", out, tc.want)
			}
		})
	}
}

// TestRoundTrip decodes what pierrec/lz4's block compressors make.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 13, 100, 4096, 65536, 131072, 1 << 20} {
		data := make([]byte, n)
		for i := range data {
			if i > 64 && r.IntN(4) != 0 {
				data[i] = data[i-1-r.IntN(64)]
			} else {
				data[i] = byte(r.IntN(256))
			}
		}
		for _, hc := range []bool{false, true} {
			comp := make([]byte, pierrec.CompressBlockBound(n))
			var k int
			var err error
			if hc {
				k, err = pierrec.CompressBlockHC(data, comp, pierrec.Level9, nil, nil)
			} else {
				k, err = pierrec.CompressBlock(data, comp, nil)
			}
			if err != nil || k == 0 {
				t.Fatalf("compress %d bytes (hc %v): %d, %v", n, hc, k, err)
			}
			out, err := Decode(make([]byte, 0, n), comp[:k])
			if err != nil {
				t.Fatalf("%d bytes (hc %v): %v", n, hc, err)
			}
			if !bytes.Equal(out, data) {
				t.Fatalf("%d bytes (hc %v): output differs", n, hc)
			}
		}
	}
}

func TestNoAllocs(t *testing.T) {
	blocks, _ := readCLZ4(t)
	dst := make([]byte, 0, 1<<17)
	allocs := testing.AllocsPerRun(100, func() {
		for _, b := range blocks {
			Decode(dst, b)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run of %d blocks", allocs, len(blocks))
	}
}
