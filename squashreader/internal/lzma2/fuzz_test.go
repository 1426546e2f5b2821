// SPDX-License-Identifier: BSD-3-Clause

package lzma2

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	ulzma "github.com/ulikunitz/xz/lzma"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// ulikunitzLenient are the errors of inputs that ulikunitz/xz/lzma's
// Reader2 (v0.5.x) accepts and liblzma rejects (as Decode does): it allows
// lc+lp > 4 (lc up to 8, as LZMA1 does), and it does not hold an LZMA
// chunk's range decoder to the chunk's packed size (it reads on past it,
// or leaves bytes of it unused), nor to ending with code 0 (as after an
// end-of-payload marker that follows the chunk's data).
var ulikunitzLenient = []string{
	"lc+lp > 4",
	"truncated LZMA chunk",
	"LZMA chunk shorter than the range coder's 5 initial bytes",
	"unused bytes at the end of an LZMA chunk",
	"LZMA chunk needs more than its packed size",
	"range coder does not end with code 0",
}

// FuzzDecode decodes arbitrary input with a 64 KiB dictionary and a
// 256 KiB output limit: Decode must not panic or write past cap(dst);
// when it succeeds, ulikunitz's Reader2 must give the same output, the
// exact output size must do and one byte less must fail with codec.ErrTooLong;
// when it fails and Reader2 succeeds, the error must be one of the known
// differences (ulikunitzLenient; TestBitFlips checks that liblzma agrees
// with Decode there). Seeds: the small valid streams and the crafted
// cases; testdata/fuzz/FuzzDecode holds any crashers.
func FuzzDecode(f *testing.F) {
	for _, s := range smallStreams(f) {
		f.Add(s.src)
	}
	for _, c := range craftedCases() {
		f.Add(c.src)
	}
	const dict, limit = 64 << 10, 256 << 10
	f.Fuzz(func(t *testing.T, src []byte) {
		out, n, err := decodeGuarded(t, src, dict, limit)
		var u []byte
		r, uerr := ulzma.Reader2Config{DictCap: dict}.NewReader2(bytes.NewReader(src))
		if uerr == nil {
			u, uerr = io.ReadAll(io.LimitReader(r, limit+1))
		}
		if err != nil {
			if errors.Is(err, codec.ErrTooLong) || uerr != nil || len(u) > limit {
				return
			}
			for _, s := range ulikunitzLenient {
				if strings.Contains(err.Error(), s) {
					return
				}
			}
			t.Fatalf("Decode: %v; ulikunitz: %d bytes", err, len(u))
		}
		if uerr != nil || !bytes.Equal(out, u) {
			t.Fatalf("Decode: %d bytes; ulikunitz: %d bytes (equal %v), %v", len(out), len(u), bytes.Equal(out, u), uerr)
		}
		out = bytes.Clone(out)
		exact, m, err := decodeGuarded(t, src, dict, len(out))
		if err != nil || m != n || !bytes.Equal(exact, out) {
			t.Fatalf("exact cap %d: %d bytes, n=%d (want %d), %v", len(out), len(exact), m, n, err)
		}
		if len(out) > 0 {
			if _, _, err := decodeGuarded(t, src, dict, len(out)-1); !errors.Is(err, codec.ErrTooLong) {
				t.Fatalf("cap %d: error %v, want codec.ErrTooLong", len(out)-1, err)
			}
		}
	})
}
