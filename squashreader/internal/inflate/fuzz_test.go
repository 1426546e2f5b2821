// SPDX-License-Identifier: BSD-3-Clause

package inflate

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// FuzzZlib compares Zlib with compress/zlib on arbitrary input (see
// compareStdlib: equal output when compress/zlib succeeds, an error when it
// fails) and checks the output limit at the exact size and one byte less.
// Seeds: the small streams of the tests, the crafted cases and the small
// C zlib streams; testdata/fuzz/FuzzZlib holds more, and the crashers.
func FuzzZlib(f *testing.F) {
	for _, src := range smallStreams(f) {
		f.Add(src)
	}
	for _, tc := range craftedCases() {
		f.Add(tc.src)
	}
	for _, src := range readStreams(f, filepath.Join("testdata", "czlib.streams")) {
		if len(src) < 4096 {
			f.Add(src)
		}
	}
	const limit = 128 << 10
	f.Fuzz(func(t *testing.T, src []byte) {
		compareStdlib(t, src, limit)
		out, err := Zlib(make([]byte, 0, limit), src)
		if err != nil {
			return
		}
		exact, err := Zlib(make([]byte, 0, len(out)), src)
		if err != nil || !bytes.Equal(exact, out) {
			t.Fatalf("Zlib(exact cap %d) = %d bytes, %v", len(out), len(exact), err)
		}
		if len(out) > 0 {
			if _, err := Zlib(make([]byte, 0, len(out)-1), src); !errors.Is(err, codec.ErrTooLong) {
				t.Fatalf("Zlib(cap %d) error = %v, want codec.ErrTooLong", len(out)-1, err)
			}
		}
		if _, n, err := Deflate(make([]byte, 0, len(out)), src[2:]); err != nil || n > len(src)-6 {
			t.Fatalf("Deflate used %d of %d bytes (before the trailer), %v", n, len(src)-2, err)
		}
	})
}
