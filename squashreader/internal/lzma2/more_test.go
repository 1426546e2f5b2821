// SPDX-License-Identifier: BSD-3-Clause

package lzma2

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	ulzma "github.com/ulikunitz/xz/lzma"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// testInputs are inputs for round trips through ulikunitz's encoder.
func testInputs() map[string][]byte {
	rnd := rand.New(rand.NewPCG(3, 4))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	words := []string{"squashfs ", "inode ", "block ", "fragment ", "xattr ", "dir\n", "a", "bb ", "\x00\x01"}
	text := func(n int) []byte {
		var b []byte
		for len(b) < n {
			b = append(b, words[rnd.IntN(len(words))]...)
		}
		return b[:n]
	}
	return map[string][]byte{
		"empty":  nil,
		"one":    {'x'},
		"run":    bytes.Repeat([]byte{7}, 100000),
		"text":   text(50000),
		"random": random(40000),
		"mixed":  append(append(text(30000), random(70000)...), text(30000)...),
		"big":    append(text(1<<20), bytes.Repeat(text(5000), 300)...), // > 2 MiB: several chunks
		"period": bytes.Repeat([]byte("abcdefg"), 3000),
		"binaryish": func() []byte {
			b := random(20000)
			for i := range b {
				b[i] &= 0x11
			}
			return b
		}(),
	}
}

// TestUlikunitzWriter2 decodes what ulikunitz/xz/lzma's Writer2 makes
// (other properties and dictionary sizes) and compares with the input.
func TestUlikunitzWriter2(t *testing.T) {
	for name, data := range testInputs() {
		for _, cfg := range []struct{ lc, lp, pb, dict int }{{3, 0, 2, 8 << 10}, {0, 4, 4, 1 << 20}, {4, 0, 0, 64 << 10}, {1, 1, 1, 4096}, {2, 2, 3, 128 << 10}} {
			t.Run(fmt.Sprintf("%s/lc%dlp%dpb%d/dict%d", name, cfg.lc, cfg.lp, cfg.pb, cfg.dict), func(t *testing.T) {
				if testing.Short() && len(data) > 1<<20 {
					t.Skip("big")
				}
				var b bytes.Buffer
				w, err := ulzma.Writer2Config{Properties: &ulzma.Properties{LC: cfg.lc, LP: cfg.lp, PB: cfg.pb}, DictCap: cfg.dict}.NewWriter2(&b)
				if err != nil {
					t.Fatal(err)
				}
				w.Write(data)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if u, err := ulikunitz(b.Bytes(), uint32(cfg.dict)); err != nil || !bytes.Equal(u, data) {
					// Writer2 (v0.5.x) with a small dictionary writes
					// an uncompressed chunk's header with the size of
					// the whole write but only a dictionary's worth of
					// data: its own Reader2 and liblzma fail too.
					t.Skipf("Writer2 made bad data: its own Reader2 gives %d bytes, %v", len(u), err)
				}
				out, n, err := Decode(make([]byte, 0, len(data)), b.Bytes(), uint32(cfg.dict))
				if err != nil || !bytes.Equal(out, data) || n != b.Len() {
					t.Fatalf("Decode = %d bytes (equal %v), n=%d of %d, %v", len(out), bytes.Equal(out, data), n, b.Len(), err)
				}
			})
		}
	}
}

// smallStreams are valid LZMA2 data of at most 300 bytes: the crafted
// valid cases and the small C liblzma streams.
func smallStreams(tb testing.TB) []crafted {
	var ss []crafted
	for _, c := range craftedCases() {
		if c.want == "" && (c.out != "" || c.name == "empty stream") {
			ss = append(ss, c)
		}
	}
	for _, s := range readCStreams(tb) {
		if len(s.comp) <= 300 {
			ss = append(ss, crafted{name: s.name, src: s.comp, dictSize: s.dictSize})
		}
	}
	return ss
}

var guardBuf []byte // decodeGuarded's buffer (the tests using it are not parallel)

// decodeGuarded decodes into a buffer of capacity limit followed by
// guard bytes, and fails if they were written.
func decodeGuarded(t *testing.T, src []byte, dictSize uint32, limit int) ([]byte, int, error) {
	t.Helper()
	if cap(guardBuf) < limit+64 {
		guardBuf = make([]byte, limit+64)
	}
	buf := guardBuf[:limit+64]
	for i := limit; i < len(buf); i++ {
		buf[i] = 0xA5
	}
	out, n, err := Decode(buf[:0:limit], src, dictSize)
	for i := limit; i < len(buf); i++ {
		if buf[i] != 0xA5 {
			t.Fatalf("Decode wrote past cap(dst) at %d", i)
		}
	}
	if len(out) > limit || n < 0 || n > len(src) {
		t.Fatalf("Decode = %d bytes, n=%d of %d", len(out), n, len(src))
	}
	return out, n, err
}

// TestTruncations: every proper prefix of the small streams is an error.
func TestTruncations(t *testing.T) {
	for _, s := range smallStreams(t) {
		for i := range len(s.src) {
			if _, _, err := decodeGuarded(t, s.src[:i], s.dictSize, 1<<20); !errors.Is(err, codec.ErrCorrupt) {
				t.Errorf("%s: prefix of %d of %d bytes: error %v", s.name, i, len(s.src), err)
			}
		}
	}
}

// TestBitFlips flips every bit of the small streams (and also sets
// bytes to a few values) and checks that Decode neither panics nor writes
// past cap(dst), and that its verdict (error, or output and bytes used)
// is liblzma's.
func TestBitFlips(t *testing.T) {
	var srcs [][]byte
	var dicts []uint32
	for _, s := range smallStreams(t) {
		if len(s.src) > 100 {
			continue
		}
		for i := range len(s.src) {
			for bit := range 8 {
				b := bytes.Clone(s.src)
				b[i] ^= 1 << bit
				srcs, dicts = append(srcs, b), append(dicts, s.dictSize)
			}
			for _, v := range []byte{0, 0xFF, 0x80} {
				b := bytes.Clone(s.src)
				b[i] = v
				srcs, dicts = append(srcs, b), append(dicts, s.dictSize)
			}
		}
	}
	lib := liblzmaVerdicts(t, srcs, dicts)
	ok := 0
	for i, src := range srcs {
		decodeGuarded(t, src, dicts[i], 1<<16)
		if lib == nil {
			continue
		}
		ours := verdict(src, dicts[i], guardBuf)
		if !sameVerdict(ours, lib[i]) {
			t.Errorf("input %x (dict %d): Decode: %s, liblzma: %s", src, dicts[i], ours, lib[i])
		}
		if ours[0] == 'o' {
			ok++
		}
	}
	t.Logf("%d mutated inputs, %d valid", len(srcs), ok)
}

// TestTooLong: the output limit at the exact size and one byte less, for
// stored and LZMA chunks.
func TestTooLong(t *testing.T) {
	for _, s := range smallStreams(t) {
		out, _, err := Decode(nil, s.src, s.dictSize)
		if len(s.out) == 0 && s.name != "empty stream" {
			out, _, err = Decode(make([]byte, 0, 1<<20), s.src, s.dictSize)
		}
		if err != nil {
			if errors.Is(err, codec.ErrTooLong) && len(out) == 0 {
				out, _, err = Decode(make([]byte, 0, 1<<20), s.src, s.dictSize)
			}
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		exact, _, err := decodeGuarded(t, s.src, s.dictSize, len(out))
		if err != nil || !bytes.Equal(exact, out) {
			t.Errorf("%s: exact cap %d: %d bytes, %v", s.name, len(out), len(exact), err)
		}
		if len(out) > 0 {
			if _, _, err := decodeGuarded(t, s.src, s.dictSize, len(out)-1); !errors.Is(err, codec.ErrTooLong) {
				t.Errorf("%s: cap %d: error %v, want codec.ErrTooLong", s.name, len(out)-1, err)
			}
		}
	}
}

// TestConcurrent decodes many streams at once (run it with -race).
func TestConcurrent(t *testing.T) {
	ss := readCStreams(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(ss); i += 3 {
				s := ss[i]
				out, _, err := Decode(make([]byte, 0, s.rawLen), s.comp, s.dictSize)
				if err != nil || len(out) != s.rawLen {
					t.Errorf("%s: %d bytes, %v", s.name, len(out), err)
				}
			}
		}()
	}
	wg.Wait()
}

// TestDictSize checks the property decoding against liblzma's table.
func TestDictSize(t *testing.T) {
	for p, want := range map[byte]uint32{0: 4096, 1: 6144, 2: 8192, 18: 2 << 20, 19: 3 << 20, 38: 2 << 30, 39: 3 << 30, 40: 0xFFFFFFFF} {
		if got, err := DictSize(p); err != nil || got != want {
			t.Errorf("DictSize(%d) = %d, %v; want %d", p, got, err, want)
		}
	}
	for _, p := range []byte{41, 0x80, 0xFF} {
		if _, err := DictSize(p); !errors.Is(err, codec.ErrCorrupt) {
			t.Errorf("DictSize(%d) error = %v", p, err)
		}
	}
}

// TestLargeDictSize decodes with the largest dictionary sizes (the
// rounding up to a multiple of 16 must not overflow).
func TestLargeDictSize(t *testing.T) {
	e := newEnc(3, 0, 2)
	e.lits("abcdef").match(5, 6)
	src := cat(e.chunk(0xE0, 0), end)
	for _, d := range []uint32{0xFFFFFFFF, 0xFFFFFFF0, 0xFFFFFFF1, 3 << 30} {
		if _, _, err := Decode(nil, src, d); !errors.Is(err, codec.ErrTooLong) {
			t.Errorf("dictSize %#x, no room: %v", d, err)
		}
		if out, _, err := Decode(make([]byte, 0, 12), src, d); err != nil || string(out) != "abcdefabcdef" {
			t.Errorf("dictSize %#x: %q, %v", d, out, err)
		}
	}
}
