// SPDX-License-Identifier: BSD-3-Clause

package lzma2

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

type crafted struct {
	name     string
	src      []byte
	dictSize uint32
	want     string // "" for valid input, else a substring of the error
	out      string // the output of valid input
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// stored is an uncompressed chunk (control 1 or 2).
func stored(control byte, s string) []byte {
	return append([]byte{control, byte((len(s) - 1) >> 8), byte(len(s) - 1)}, s...)
}

var end = []byte{0}

// craftedCases are hand-made LZMA2 data for each acceptance rule, made
// with the test encoder (enc_test.go) and by editing its chunks.
func craftedCases() []crafted {
	const dict = 1 << 16
	text := "hello, hello, hello world"
	valid := func() (*enc, []byte) {
		e := newEnc(3, 0, 2)
		e.lits("hello, ").match(6, 12).lits(" world")
		return e, e.chunk(0xE0, 0)
	}
	_, v := valid()
	edit := func(b []byte, f func(b []byte) []byte) []byte { return f(bytes.Clone(b)) }
	var cs []crafted
	add := func(name string, src []byte, want, out string) {
		cs = append(cs, crafted{name, src, dict, want, out})
	}
	add("empty stream", end, "", "")
	add("one stored chunk", cat(stored(1, "abc"), end), "", "abc")
	add("stored chunks", cat(stored(1, "abc"), stored(2, "def"), stored(1, "g"), end), "", "abcdefg")
	add("LZMA chunk", cat(v, end), "", text)
	add("LZMA after stored", cat(stored(1, "abc"), v, end), "", "abc"+text)
	{
		// State continues over a stored chunk and into a chunk without
		// reset: the match reaches into the earlier chunks.
		e := newEnc(3, 0, 2)
		e.lits("abcdef")
		c1 := e.chunk(0xE0, 0)
		e.data = append(e.data, "ghij"...)
		e.match(9, 4)
		c2 := e.chunk(0x80, 10)
		e.d.reset() // state reset, properties kept
		e.state, e.rep = 0, [4]uint32{}
		e.lits("xy").repMatch(0, 3)
		c3 := e.chunk(0xA0, 14)
		add("chunks without reset", cat(c1, stored(2, "ghij"), c2, c3, end), "", "abcdefghijabcdxyyyy")
		e2 := newEnc(0, 4, 4)
		e2.lits("lp4pb4").match(0, 5).shortRep().repMatch(0, 2)
		add("lc0 lp4 pb4", cat(e2.chunk(0xE0, 0), end), "", "lp4pb444444444")
	}

	add("no input", nil, "truncated input (no end marker) at offset 0", "")
	add("no end marker", stored(1, "abc"), "truncated input (no end marker) at offset 6", "")
	add("LZMA chunk, no end marker", v, "truncated input (no end marker)", "")
	add("no dictionary reset (stored)", cat(stored(2, "abc"), end), "first chunk (control byte 0x02) does not reset the dictionary at offset 0", "")
	for _, c := range []byte{0x80, 0xA0, 0xC0} {
		add(fmt.Sprintf("no dictionary reset (%#x)", c), edit(cat(v, end), func(b []byte) []byte { b[0] = c | b[0]&0x1F; return b }),
			fmt.Sprintf("first chunk (control byte %#02x) does not reset the dictionary at offset 0", c), "")
	}
	for _, c := range []byte{0x03, 0x10, 0x7F} {
		add(fmt.Sprintf("control byte %#x", c), cat(stored(1, "a"), []byte{c, 0, 0, 'b'}, end), fmt.Sprintf("invalid control byte %#02x at offset 4", c), "")
	}
	for _, c := range []byte{0x80, 0xA0} {
		b := edit(v, func(b []byte) []byte { b[0] = c | b[0]&0x1F; return append(b[:5], b[6:]...) })
		add(fmt.Sprintf("no properties after a stored dictionary reset (%#x)", c), cat(stored(1, "a"), b, end),
			fmt.Sprintf("LZMA chunk (control byte %#02x) without properties after a dictionary reset at offset 4", c), "")
	}
	{
		e := newEnc(3, 0, 2)
		e.data = []byte("a")
		e.lits("hello, ").match(6, 12).lits(" world")
		add("properties after a stored reset (0xC0)", cat(stored(1, "a"), e.chunk(0xC0, 1), end), "", "a"+text)
	}
	add("properties byte 225", edit(cat(v, end), func(b []byte) []byte { b[5] = 225; return b }), "invalid properties byte 225 at offset 5", "")
	add("lc+lp > 4", edit(cat(v, end), func(b []byte) []byte { b[5] = 9 + 4; return b }), "properties lc=4 lp=1: lc+lp > 4 at offset 5", "")
	add("truncated chunk header", []byte{0xE0, 0, 1}, "truncated chunk header at offset 0", "")
	add("truncated stored header", []byte{0x01, 0}, "truncated chunk header at offset 0", "")
	add("truncated stored chunk", []byte{0x01, 0, 4, 'a', 'b'}, "truncated uncompressed chunk (5 bytes, 2 left) at offset 3", "")
	add("truncated LZMA chunk", v[:len(v)-1], "truncated LZMA chunk", "")
	add("range coder first byte", edit(cat(v, end), func(b []byte) []byte { b[6] = 1; return b }), "range coder's first byte is not 0 at offset 6", "")
	short := []byte{0xE0, 0, 0, 0, 3, 93, 0, 0, 0, 0, 0}
	add("packed size 4", short, "LZMA chunk shorter than the range coder's 5 initial bytes", "")
	add("unused bytes", edit(v, func(b []byte) []byte {
		b[4]++
		return cat(b, []byte{0}, end)
	}), "unused bytes at the end of an LZMA chunk", "")
	add("packed size too small", edit(v, func(b []byte) []byte {
		b[4]--
		return cat(b[:len(b)-1], end)
	}), "LZMA chunk needs more than its packed size", "")
	add("unpacked size too small", edit(v, func(b []byte) []byte { b[2]--; return cat(b, end) }), "", "")
	add("unpacked size too large", edit(v, func(b []byte) []byte { b[2]++; return cat(b, end) }), "", "")
	{
		e := newEnc(3, 0, 2)
		e.lits("abc").match(3, 2)
		add("distance beyond the output", cat(e.chunk(0xE0, 0), end), "match distance beyond the dictionary", "")
		e = newEnc(3, 0, 2)
		e.lits("abc").match(2, 2)
		add("distance to the start", cat(e.chunk(0xE0, 0), end), "", "abcab")
		e = newEnc(3, 0, 2)
		e.match(0, 2)
		add("match first", cat(e.chunk(0xE0, 0), end), "match distance beyond the dictionary", "")
		e = newEnc(3, 0, 2)
		e.shortRep()
		add("short repeat first", cat(e.chunk(0xE0, 0), end), "repeated match before any output", "")
		e = newEnc(3, 0, 2)
		e.repMatch(2, 3)
		add("repeat first", cat(e.chunk(0xE0, 0), end), "repeated match before any output", "")
		e = newEnc(3, 0, 2)
		e.lits("ab").match(0xFFFFFFFF, 2)
		e.data = e.data[:2]
		add("end of payload marker after the chunk", cat(e.chunk(0xE0, 0), end), "range coder does not end with code 0", "")
		e = newEnc(3, 0, 2)
		e.lits("ab").match(0xFFFFFFFF, 2)
		add("end of payload marker as a match", cat(e.chunk(0xE0, 0), end), "end of payload marker in an LZMA2 chunk", "")
		e = newEnc(3, 0, 2)
		e.lits("abcd").match(1, 40)
		c := e.chunk(0xE0, 0)
		c[2] -= 10
		add("match beyond the chunk", cat(c, end), "match beyond the end of the chunk", "")
		// A dictionary reset (a stored chunk) between: the match
		// reaches before it.
		e = newEnc(3, 0, 2)
		e.lits("abcd")
		c1 := e.chunk(0xE0, 0)
		e.data = []byte("ef")
		e.match(3, 2)
		c2 := e.chunk(0x80, 2)
		add("distance before the dictionary reset", cat(c1, stored(1, "ef"), c2, end), "LZMA chunk (control byte 0x80) without properties", "")
		c2[0] = 0xC0
		c2 = append(c2[:5], append([]byte{93}, c2[5:]...)...)
		add("distance before the dictionary reset (properties)", cat(c1, stored(1, "ef"), c2, end), "match distance beyond the dictionary", "")
	}
	// Distances at the dictionary size (as liblzma rounds it: at least
	// 4 KiB, a multiple of 16).
	for _, tc := range []struct {
		dist, dict uint32
		ok         bool
	}{{4095, 4096, true}, {4096, 4096, false}, {4096, 1, false}, {4095, 1, true}, {5000, 4993, true}, {5007, 4993, true}, {5008, 4993, false}, {5008, 5008, false}, {5007, 5008, true}} {
		e := newEnc(3, 0, 2)
		data := make([]byte, tc.dist+1)
		for i := range data {
			data[i] = byte(i * 7 % 251)
		}
		e.lits(string(data)).match(tc.dist, 2)
		want := "match distance beyond the dictionary"
		out := ""
		if tc.ok {
			want, out = "", string(data)+string(data[:2])
		}
		cs = append(cs, crafted{fmt.Sprintf("distance %d dictionary %d", tc.dist+1, tc.dict), cat(e.chunk(0xE0, 0), end), tc.dict, want, out})
	}
	// The range coder's final code must be 0: the last byte changed.
	for _, delta := range []byte{1, 0x80} {
		b := edit(v, func(b []byte) []byte { b[len(b)-1] ^= delta; return b })
		add(fmt.Sprintf("final code %#x", delta), cat(b, end), "", "")
	}
	return cs
}

// liblzmaVerdicts decodes each case with C liblzma (python3's lzma module,
// FORMAT_RAW, one LZMA2 filter with the case's dictionary size) and
// returns for each "ok <sha256 of output> <bytes used>" or "error <what>";
// nil without python3.
func liblzmaVerdicts(tb testing.TB, srcs [][]byte, dicts []uint32) []string {
	tb.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		return nil
	}
	var in []byte
	for i, s := range srcs {
		in = binary.BigEndian.AppendUint32(in, dicts[i])
		in = binary.BigEndian.AppendUint32(in, uint32(len(s)))
		in = append(in, s...)
	}
	cmd := exec.Command(py, "-c", `
import hashlib, lzma, struct, sys
b = sys.stdin.buffer.read()
i = 0
while i < len(b):
    d, n = struct.unpack(">II", b[i:i+8])
    s = b[i+8:i+8+n]
    i += 8 + n
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "dict_size": d}])
    try:
        out = dec.decompress(s)
        if dec.eof:
            print("ok", hashlib.sha256(out).hexdigest(), n - len(dec.unused_data))
        else:
            print("error truncated")
    except lzma.LZMAError as e:
        print("error", str(e).replace(" ", "_"))
`)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("python3: %v", err)
	}
	v := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(v) != len(srcs) {
		tb.Fatalf("python3 gave %d verdicts for %d inputs", len(v), len(srcs))
	}
	return v
}

// verdict is Decode's result in liblzmaVerdicts's form.
func verdict(src []byte, dictSize uint32, buf []byte) string {
	if cap(buf) < 1<<20 {
		buf = make([]byte, 0, 1<<20)
	}
	out, n, err := Decode(buf[:0], src, dictSize)
	if err != nil {
		return "error"
	}
	sum := sha256.Sum256(out)
	return fmt.Sprintf("ok %s %d", hex.EncodeToString(sum[:]), n)
}

func sameVerdict(ours, theirs string) bool {
	if strings.HasPrefix(ours, "error") {
		return strings.HasPrefix(theirs, "error")
	}
	return ours == theirs
}

// TestCrafted checks the hand-made cases' errors and outputs, and that C
// liblzma agrees with each verdict (when python3 is there).
func TestCrafted(t *testing.T) {
	cs := craftedCases()
	srcs, dicts := make([][]byte, len(cs)), make([]uint32, len(cs))
	for i, c := range cs {
		srcs[i], dicts[i] = c.src, c.dictSize
	}
	lib := liblzmaVerdicts(t, srcs, dicts)
	if lib == nil {
		t.Log("no python3: not checking against liblzma")
	}
	for i, c := range cs {
		t.Run(c.name, func(t *testing.T) {
			out, n, err := Decode(make([]byte, 0, 1<<20), c.src, c.dictSize)
			switch {
			case c.want == "" && c.out == "" && c.name != "empty stream":
				// only checked against liblzma
			case c.want == "":
				if err != nil || string(out) != c.out || n != len(c.src) {
					t.Errorf("Decode = %q, %d, %v; want %q, %d", out, n, err, c.out, len(c.src))
				}
			default:
				if !errors.Is(err, codec.ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("Decode error = %v; want codec.ErrCorrupt with %q", err, c.want)
				}
			}
			if lib != nil {
				if ours := verdict(c.src, c.dictSize, nil); !sameVerdict(ours, lib[i]) {
					t.Errorf("Decode: %s, liblzma: %s (error %v)", ours, lib[i], err)
				} else {
					t.Logf("%v; liblzma: %s", err, lib[i])
				}
			}
		})
	}
}
