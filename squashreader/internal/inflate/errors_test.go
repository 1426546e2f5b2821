// SPDX-License-Identifier: BSD-3-Clause

package inflate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	hadler "hash/adler32"
	"os/exec"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// bitWriter writes a deflate bit stream, least significant bit first.
type bitWriter struct {
	b   []byte
	acc uint64
	n   uint
}

func (w *bitWriter) bits(v uint64, n uint) *bitWriter {
	w.acc |= v << w.n
	w.n += n
	for w.n >= 8 {
		w.b = append(w.b, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
	return w
}

// code writes a Huffman code, most significant bit first.
func (w *bitWriter) code(c uint16, n uint8) *bitWriter {
	for i := int(n) - 1; i >= 0; i-- {
		w.bits(uint64(c>>i&1), 1)
	}
	return w
}

// align pads to a byte boundary, as before a stored block's length.
func (w *bitWriter) align() *bitWriter {
	if w.n > 0 {
		w.bits(0, 8-w.n)
	}
	return w
}

func (w *bitWriter) bytes() []byte {
	b := w.b
	if w.n > 0 {
		b = append(b, byte(w.acc))
	}
	return b
}

// canonical returns the canonical Huffman codes for lens.
func canonical(lens []uint8) []uint16 {
	var count, next [16]uint16
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	code := uint16(0)
	for l := 1; l < 16; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	codes := make([]uint16, len(lens))
	for s, l := range lens {
		if l != 0 {
			codes[s] = next[l]
			next[l]++
		}
	}
	return codes
}

// fixedSym writes a literal/length symbol of the fixed code.
func (w *bitWriter) fixedSym(s int) *bitWriter {
	switch {
	case s < 144:
		return w.code(uint16(0x30+s), 8)
	case s < 256:
		return w.code(uint16(0x190+s-144), 9)
	case s < 280:
		return w.code(uint16(s-256), 7)
	}
	return w.code(uint16(0xc0+s-280), 8)
}

// dynamic writes a dynamic block header for the code lengths lit and
// dist, sent with the code length code pre (19 lengths; nil: lengths 0-15
// get 4-bit codes), one code length symbol per length.
func (w *bitWriter) dynamic(final bool, lit, dist, pre []uint8) *bitWriter {
	w.bits(b2u(final), 1).bits(2, 2)
	w.bits(uint64(len(lit)-257), 5).bits(uint64(len(dist)-1), 5).bits(15, 4)
	if pre == nil {
		pre = make([]uint8, 19)
		for i := range 16 {
			pre[i] = 4
		}
	}
	for _, s := range precodeOrder {
		w.bits(uint64(pre[s]), 3)
	}
	pc := canonical(pre)
	for _, l := range append(append([]uint8{}, lit...), dist...) {
		w.code(pc[l], pre[l])
	}
	return w
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// zlibWrap adds a zlib header and the adler32 of raw.
func zlibWrap(deflate, raw []byte) []byte {
	z := append([]byte{0x78, 0x9c}, deflate...)
	return binary.BigEndian.AppendUint32(z, hadler.Checksum(raw))
}

// lens returns n code lengths: the given ones, then zeros.
func lens(n int, set map[int]uint8) []uint8 {
	l := make([]uint8, n)
	for s, v := range set {
		l[s] = v
	}
	return l
}

// litlen8 is a complete literal/length code: 0-253 and 256 (end of
// block) get 8 bits, 255 and 257 (length 3) get 9, 254 none.
func litlen8() []uint8 {
	l := make([]uint8, 258)
	for i := range 254 {
		l[i] = 8
	}
	l[255], l[256], l[257] = 9, 8, 9
	return l
}

type craftedCase struct {
	name string
	src  []byte // zlib stream
	want []byte // nil: an error wrapping ErrCorrupt
}

// craftedCases are hand-made streams for the edge cases of the format and
// of zlib's acceptance rules. Each one's verdict agrees with C zlib (see
// TestCraftedCZlib) and, but where marked, with compress/zlib.
func craftedCases() []craftedCase {
	var cs []craftedCase
	add := func(name string, w *bitWriter, raw []byte, valid bool) {
		c := craftedCase{name: name, src: zlibWrap(w.bytes(), raw)}
		if valid {
			c.want = raw
			if c.want == nil {
				c.want = []byte{}
			}
		}
		cs = append(cs, c)
	}
	// Fixed blocks.
	abc := []byte("abcabcabcabca")
	add("fixed-overlap", new(bitWriter).bits(1, 1).bits(1, 2).fixedSym('a').fixedSym('b').fixedSym('c').
		fixedSym(264).code(2, 5).fixedSym(256), abc, true) // length 10, distance 3
	add("fixed-dist-too-far", new(bitWriter).bits(1, 1).bits(1, 2).fixedSym('a').
		fixedSym(257).code(1, 5).fixedSym(256), []byte("aaaa"), false) // distance 2 after 1 byte
	add("fixed-dist-at-start", new(bitWriter).bits(1, 1).bits(1, 2).
		fixedSym(257).code(0, 5).fixedSym(256), []byte("aaa"), false)
	add("fixed-dist-symbol-30", new(bitWriter).bits(1, 1).bits(1, 2).fixedSym('a').
		fixedSym(257).code(30, 5).fixedSym(256), []byte("aaaa"), false)
	add("fixed-dist-symbol-31", new(bitWriter).bits(1, 1).bits(1, 2).fixedSym('a').
		fixedSym(257).code(31, 5).fixedSym(256), []byte("aaaa"), false)
	add("fixed-litlen-286", new(bitWriter).bits(1, 1).bits(1, 2).fixedSym('a').fixedSym(286).code(0, 5).fixedSym(256), []byte("a"), false)
	add("fixed-litlen-287", new(bitWriter).bits(1, 1).bits(1, 2).fixedSym('a').fixedSym(287).code(0, 5).fixedSym(256), []byte("a"), false)
	far := bytes.Repeat([]byte{'z'}, 40000)
	w := new(bitWriter).bits(1, 1).bits(1, 2).fixedSym('z').fixedSym(257).code(0, 5) // length 3 distance 1: 4 bytes
	for n := 4; n < 32768; n += 258 {
		w.fixedSym(285).code(0, 5) // length 258 distance 1
	}
	// Now 4+127*258 = 32770 bytes: a match at distance 32768 is valid.
	w.fixedSym(285).code(29, 5).bits(8191, 13).fixedSym(256)
	add("fixed-dist-32768", w, far[:4+127*258+258], true)
	add("block-type-3", new(bitWriter).bits(1, 1).bits(3, 2).bits(0, 16), nil, false)
	add("empty-fixed", new(bitWriter).bits(1, 1).bits(1, 2).fixedSym(256), nil, true)
	add("fixed-then-stored", new(bitWriter).bits(0, 1).bits(1, 2).fixedSym('x').fixedSym(256).
		bits(1, 1).bits(0, 2).align().bits(2, 16).bits(0xfffd, 16).bits('y', 8).bits('z', 8), []byte("xyz"), true)
	add("stored-nlen-mismatch", new(bitWriter).bits(1, 1).bits(0, 2).align().bits(2, 16).bits(0xfffc, 16).bits('y', 8).bits('z', 8), []byte("yz"), false)
	add("stored-too-short", new(bitWriter).bits(1, 1).bits(0, 2).align().bits(5, 16).bits(0xfffa, 16).bits('y', 8), []byte("y"), false)
	add("not-final-then-nothing", new(bitWriter).bits(0, 1).bits(1, 2).fixedSym('x').fixedSym(256), []byte("x"), false)

	// Dynamic blocks.
	l8 := litlen8()
	c8 := canonical(l8)
	d1 := lens(1, map[int]uint8{0: 1}) // a single distance code of length 1
	add("dynamic-ok", new(bitWriter).dynamic(true, l8, lens(2, map[int]uint8{0: 1, 1: 1}), nil).
		code(c8['h'], 8).code(c8['i'], 8).code(c8[257], 9).code(1, 1).code(c8[256], 8), []byte("hihih"), true)
	add("single-dist-code", new(bitWriter).dynamic(true, l8, d1, nil).
		code(c8['h'], 8).code(c8[257], 9).code(0, 1).code(c8[256], 8), []byte("hhhh"), true)
	add("single-dist-code-unused-half", new(bitWriter).dynamic(true, l8, d1, nil).
		code(c8['h'], 8).code(c8[257], 9).code(1, 1).code(c8[256], 8), []byte("hhhh"), false)
	add("no-dist-codes-literals", new(bitWriter).dynamic(true, l8, lens(1, nil), nil).
		code(c8['h'], 8).code(c8[256], 8), []byte("h"), true)
	add("no-dist-codes-match", new(bitWriter).dynamic(true, l8, lens(1, nil), nil).
		code(c8['h'], 8).code(c8[257], 9).code(0, 1).code(c8[256], 8), []byte("hhhh"), false)
	add("only-eob-one-bit", new(bitWriter).dynamic(true, lens(257, map[int]uint8{256: 1}), d1, nil).code(0, 1), nil, true)
	add("only-eob-unused-half", new(bitWriter).dynamic(true, lens(257, map[int]uint8{256: 1}), d1, nil).code(1, 1), nil, false)
	over := litlen8()
	over[254] = 8
	add("litlen-over-subscribed", new(bitWriter).dynamic(true, over, d1, nil).code(c8[256], 8), nil, false)
	inc := litlen8()
	inc[257] = 0
	add("litlen-incomplete", new(bitWriter).dynamic(true, inc, d1, nil).code(c8[256], 8), nil, false)
	add("litlen-two-codes-incomplete", new(bitWriter).dynamic(true, lens(257, map[int]uint8{'a': 2, 256: 2}), d1, nil).code(1, 2), nil, false)
	add("dist-over-subscribed", new(bitWriter).dynamic(true, l8, lens(3, map[int]uint8{0: 1, 1: 1, 2: 1}), nil).code(c8[256], 8), nil, false)
	add("dist-incomplete", new(bitWriter).dynamic(true, l8, lens(3, map[int]uint8{0: 1, 1: 2}), nil).code(c8[256], 8), nil, false)
	noEOB := litlen8()
	noEOB[256], noEOB[254] = 0, 8
	add("no-end-of-block", new(bitWriter).dynamic(true, noEOB, d1, nil).code(c8['a'], 8), nil, false)
	// A code length code with a single 1-bit code (for length 0) is
	// incomplete: zlib rejects it; compress/flate accepts the code but
	// then has no literal/length codes and fails too.
	pre1 := make([]uint8, 19)
	pre1[0] = 1
	add("precode-single", new(bitWriter).dynamic(true, lens(257, nil), lens(1, nil), pre1), nil, false)
	preInc := make([]uint8, 19)
	for i := range 15 {
		preInc[i] = 4
	}
	add("precode-incomplete", new(bitWriter).dynamic(true, lens(257, map[int]uint8{256: 1, 'a': 1}), d1, preInc).code(0, 1), nil, false)
	preOver := make([]uint8, 19)
	for i := range 17 {
		preOver[i] = 4
	}
	add("precode-over-subscribed", new(bitWriter).dynamic(true, lens(257, map[int]uint8{256: 1, 'a': 1}), d1, preOver).code(0, 1), nil, false)
	// Repeat codes: 16 first, and runs past the end.
	preRep := []uint8{4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 4, 4, 4, 4} // 16 codes of 4 bits
	pr := canonical(preRep)
	hdr := func(w *bitWriter, nlit, ndist int) *bitWriter {
		w.bits(1, 1).bits(2, 2).bits(uint64(nlit-257), 5).bits(uint64(ndist-1), 5).bits(15, 4)
		for _, s := range precodeOrder {
			w.bits(uint64(preRep[s]), 3)
		}
		return w
	}
	w = hdr(new(bitWriter), 257, 1).code(pr[16], 4).bits(0, 2)
	add("repeat-first", w, nil, false)
	// 256 zeros (138+118), then a 1 for EOB, then 1 for the distance code,
	// then "17 with 3" = 3 zeros past the end.
	w = hdr(new(bitWriter), 257, 1).code(pr[18], 4).bits(127, 7).code(pr[18], 4).bits(107, 7).code(pr[1], 4).code(pr[1], 4)
	add("lengths-exact", w.code(0, 1), nil, true)
	w = hdr(new(bitWriter), 257, 1).code(pr[18], 4).bits(127, 7).code(pr[18], 4).bits(107, 7).code(pr[1], 4).code(pr[17], 4).bits(0, 3)
	add("repeat-past-end", w, nil, false)
	w = hdr(new(bitWriter), 257, 2).code(pr[18], 4).bits(127, 7).code(pr[18], 4).bits(107, 7).code(pr[1], 4).code(pr[1], 4).code(pr[16], 4).bits(0, 2)
	add("repeat-16-past-end", w, nil, false)
	// A repeat may run from the literal/length lengths into the distance
	// lengths.
	// lengths of 258+2 symbols: 256 zeros, a 1 (EOB), and "repeat 3
	// times" giving symbol 257 and both distance symbols 1 bit.
	w = hdr(new(bitWriter), 258, 2).code(pr[18], 4).bits(127, 7).code(pr[18], 4).bits(107, 7).code(pr[1], 4).code(pr[16], 4).bits(0, 2)
	add("repeat-across-tables", w.code(0, 1), nil, true)
	w = hdr(new(bitWriter), 258, 2).code(pr[18], 4).bits(127, 7).code(pr[18], 4).bits(107, 7).code(pr[1], 4).code(pr[16], 4).bits(0, 2)
	add("repeat-across-tables-match", w.code(1, 1).code(1, 1).code(0, 1), nil, false) // a match before any output
	// Too many codes: HLIT 30 (287), HDIST 30 (31).
	add("hlit-287", new(bitWriter).bits(1, 1).bits(2, 2).bits(30, 5).bits(0, 5).bits(15, 4).bits(0, 64), nil, false)
	add("hdist-31", new(bitWriter).bits(1, 1).bits(2, 2).bits(0, 5).bits(30, 5).bits(15, 4).bits(0, 64), nil, false)
	// Codes of 15 bits exercise the subtables: 'a' gets 1 bit, the
	// rest of the literals and EOB share the other half down to 15 bits.
	deep := make([]uint8, 257)
	lvl := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	for i, l := range lvl {
		deep['a'+i] = uint8(l)
	}
	deep['o'], deep[256] = 15, 15
	cd := canonical(deep)
	w = new(bitWriter).dynamic(true, deep, d1, nil)
	var raw []byte
	for i := range 15 {
		s := 'a' + i
		w.code(cd[s], deep[s])
		raw = append(raw, byte(s))
	}
	add("deep-codes", w.code(cd[256], 15), raw, true)
	return cs
}

func TestCrafted(t *testing.T) {
	for _, tc := range craftedCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Zlib(make([]byte, 0, 1<<16), tc.src)
			if tc.want == nil {
				if !errors.Is(err, codec.ErrCorrupt) {
					t.Fatalf("Zlib = %d bytes, %v; want an codec.ErrCorrupt error", len(got), err)
				}
				t.Logf("error: %v", err)
			} else if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("Zlib = %q, %v; want %q", got, err, tc.want)
			}
			std, serr := stdlibZlib(tc.src, 1<<16)
			if (serr == nil) != (tc.want != nil) || (serr == nil && !bytes.Equal(std, tc.want)) {
				t.Errorf("compress/zlib disagrees: %q, %v", std, serr)
			}
		})
	}
}

// TestCraftedCZlib checks the crafted cases' verdicts against C zlib
// through python3's zlib module (scripts/deps.sh installs python3).
func TestCraftedCZlib(t *testing.T) {
	py := testutil.RequireTool(t, "python3")
	cases := craftedCases()
	var script strings.Builder
	script.WriteString("import zlib\nfor s in [")
	for _, tc := range cases {
		fmt.Fprintf(&script, "bytes.fromhex('%x'),", tc.src)
	}
	script.WriteString("]:\n\ttry:\n\t\tprint(zlib.decompress(s).hex())\n\texcept zlib.error:\n\t\tprint('error')\n")
	out, err := exec.Command(py, "-c", script.String()).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("python3 printed %d lines, want %d", len(lines), len(cases))
	}
	for i, tc := range cases {
		want := "error"
		if tc.want != nil {
			want = fmt.Sprintf("%x", tc.want)
		}
		if lines[i] != want {
			t.Errorf("%s: C zlib says %.40s, this test %.40s", tc.name, lines[i], want)
		}
	}
}

func TestHeader(t *testing.T) {
	valid := zlibWrap(new(bitWriter).bits(1, 1).bits(1, 2).fixedSym(256).bytes(), nil)
	withHeader := func(cmf, flg byte) []byte {
		b := bytes.Clone(valid)
		b[0], b[1] = cmf, flg
		return b
	}
	fcheck := func(cmf, flg byte) byte { return flg + byte(31-(uint(cmf)<<8|uint(flg))%31)%31 }
	for _, tc := range []struct {
		name string
		src  []byte
		ok   bool
	}{
		{"valid", valid, true},
		{"cinfo-0", withHeader(0x08, fcheck(0x08, 0)), true},
		{"level-bits", withHeader(0x78, fcheck(0x78, 0xc0)), true},
		{"empty", nil, false},
		{"one-byte", valid[:1], false},
		{"method-7", withHeader(0x77, fcheck(0x77, 0)), false},
		{"method-15", withHeader(0x7f, fcheck(0x7f, 0)), false},
		{"cinfo-8", withHeader(0x88, fcheck(0x88, 0)), false},
		{"fcheck", withHeader(0x78, 0x9d), false},
		{"fdict", withHeader(0x78, fcheck(0x78, 0x20)), false},
		{"bad-adler", append(bytes.Clone(valid[:len(valid)-1]), valid[len(valid)-1]^1), false},
		{"no-adler", valid[:len(valid)-4], false},
		{"short-adler", valid[:len(valid)-1], false},
		{"trailing-bytes", append(bytes.Clone(valid), 1, 2, 3), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Zlib(nil, tc.src)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, codec.ErrCorrupt)) {
				t.Fatalf("Zlib(% x) error = %v, want ok %v", tc.src, err, tc.ok)
			}
			if tc.name != "fdict" {
				_, serr := stdlibZlib(tc.src, 0)
				if (serr == nil) != tc.ok {
					t.Errorf("compress/zlib disagrees: %v", serr)
				}
			}
		})
	}
}

// smallStreams are valid streams of every block kind for the truncation
// and bit-flip tests.
func smallStreams(t testing.TB) map[string][]byte {
	m := map[string][]byte{}
	inputs := testInputs(t)
	text := inputs[7].data[:300] // 32 KiB of Go source
	for _, enc := range goEncoders() {
		switch enc.name {
		case "stdlib-0", "stdlib-1", "stdlib-9", "stdlib--2", "klauspost-1":
			m[enc.name] = enc.enc(text)
		}
	}
	for _, tc := range craftedCases() {
		if tc.want != nil && len(tc.src) < 600 {
			m["crafted-"+tc.name] = tc.src
		}
	}
	return m
}

// TestTruncated cuts valid streams at every length: each must fail with
// codec.ErrCorrupt, in Zlib and (before the trailer) in Deflate.
func TestTruncated(t *testing.T) {
	for name, src := range smallStreams(t) {
		t.Run(name, func(t *testing.T) {
			if _, err := Zlib(make([]byte, 0, 1<<16), src); err != nil {
				t.Fatalf("full stream: %v", err)
			}
			for n := range len(src) {
				if _, err := Zlib(make([]byte, 0, 1<<16), src[:n]); !errors.Is(err, codec.ErrCorrupt) {
					t.Fatalf("Zlib(first %d of %d bytes) error = %v, want codec.ErrCorrupt", n, len(src), err)
				}
			}
			_, used, err := Deflate(make([]byte, 0, 1<<16), src[2:])
			if err != nil {
				t.Fatalf("Deflate: %v", err)
			}
			for n := range used {
				if _, _, err := Deflate(make([]byte, 0, 1<<16), src[2:2+n]); !errors.Is(err, codec.ErrCorrupt) {
					t.Fatalf("Deflate(first %d of %d bytes) error = %v, want codec.ErrCorrupt", n, used, err)
				}
			}
		})
	}
}

// TestBitFlips flips every bit of small valid streams: the result must
// equal compress/zlib's when that succeeds, and be an error when it fails.
func TestBitFlips(t *testing.T) {
	for name, src := range smallStreams(t) {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(src)
			for i := range len(b) * 8 {
				b[i/8] ^= 1 << (i % 8)
				compareStdlib(t, b, 1<<16)
				b[i/8] ^= 1 << (i % 8)
			}
		})
	}
}

// compareStdlib decodes src with Zlib (into cap limit) and compress/zlib.
func compareStdlib(t *testing.T, src []byte, limit int) {
	t.Helper()
	got, err := Zlib(make([]byte, 0, limit), src)
	want, serr := stdlibZlib(src, limit)
	switch {
	case serr == nil && len(src) >= 2 && src[1]&0x20 != 0:
		// compress/zlib takes FDICT with the adler32 of an empty
		// dictionary (1) as no dictionary; zlib and we reject FDICT.
		if !errors.Is(err, codec.ErrCorrupt) {
			t.Fatalf("src % x: FDICT accepted: %v", src, err)
		}
	case serr == nil && len(want) > limit:
		if !errors.Is(err, codec.ErrTooLong) {
			t.Fatalf("src % x: error = %v, want codec.ErrTooLong", src, err)
		}
	case serr == nil:
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("src % x: Zlib = %q, %v; compress/zlib = %q", src, got, err, want)
		}
	default:
		if err == nil {
			t.Fatalf("src % x: Zlib = %q, nil; compress/zlib: %v", src, got, serr)
		}
		if !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrTooLong) {
			t.Fatalf("src % x: error %v wraps neither codec.ErrCorrupt nor codec.ErrTooLong", src, err)
		}
	}
}
