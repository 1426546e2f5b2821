// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"bytes"
	"errors"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// FuzzDecode decodes arbitrary input into a 256 KiB buffer: Decode must
// not panic or write past cap(dst), its errors must wrap codec.ErrCorrupt or
// codec.ErrTooLong; when it succeeds, the exact output size must do too and one
// byte less must fail with codec.ErrTooLong; and where klauspost/compress/zstd
// decodes the input and the frames give content sizes that its output
// matches, Decode must give the same bytes. Seeds: the small streams of
// the corpus (truncations and bit flips are in TestCZstdVerdicts) and the
// crafted cases; testdata/fuzz/FuzzDecode holds any crashers.
func FuzzDecode(f *testing.F) {
	for _, s := range cStreams(f) {
		if len(s.z) < 2000 {
			f.Add(s.z)
		}
	}
	kd, err := kzstd.NewReader(nil, kzstd.WithDecoderConcurrency(1), kzstd.WithDecoderMaxMemory(1<<20))
	if err != nil {
		f.Fatal(err)
	}
	const limit = 256 << 10
	dst := make([]byte, 0, limit)
	kbuf := make([]byte, 0, limit)
	f.Fuzz(func(t *testing.T, src []byte) {
		got, err := Decode(dst, src)
		if len(got) > limit {
			t.Fatalf("%d bytes of output, cap %d", len(got), limit)
		}
		if len(got) > 0 && &got[0] != &dst[:1][0] {
			t.Fatal("output outside dst")
		}
		if err != nil {
			if !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrTooLong) {
				t.Fatalf("%v wraps neither error", err)
			}
		} else {
			exact, err := Decode(make([]byte, 0, len(got)), src)
			if err != nil || !bytes.Equal(exact, got) {
				t.Fatalf("Decode(exact cap %d) = %d bytes, %v", len(got), len(exact), err)
			}
			if len(got) > 0 {
				if _, err := Decode(make([]byte, 0, len(got)-1), src); !errors.Is(err, codec.ErrTooLong) {
					t.Fatalf("Decode(cap %d) error = %v, want codec.ErrTooLong", len(got)-1, err)
				}
			}
		}
		want, kerr := kd.DecodeAll(src, kbuf[:0])
		if kerr != nil || len(want) > limit || !contentSizesMatch(src, len(want)) {
			return
		}
		if errors.Is(err, codec.ErrTooLong) {
			t.Fatalf("%v, but klauspost decodes %d bytes, as the frame header says", err, len(want))
		}
		if err != nil {
			// klauspost is more lenient in places (see doc.go); it is
			// no oracle for verdicts, only for output.
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("decoded %d bytes, klauspost %d bytes, and they differ", len(got), len(want))
		}
	})
}

// contentSizesMatch reports whether src is one frame with a frame content
// size equal to n (the fuzz target compares outputs only then).
func contentSizesMatch(src []byte, n int) bool {
	if frameLen(src) != len(src) {
		return false
	}
	fhd := src[4]
	if fhd>>6 == 0 && fhd&0x20 == 0 {
		return false
	}
	p := 5 + [4]int{0, 1, 2, 4}[fhd&3]
	if fhd&0x20 == 0 {
		p++
	}
	var fcs uint64
	switch fhd >> 6 {
	case 0:
		fcs = uint64(src[p])
	case 1:
		fcs = uint64(src[p]) | uint64(src[p+1])<<8 + 256
	case 2:
		fcs = uint64(src[p]) | uint64(src[p+1])<<8 | uint64(src[p+2])<<16 | uint64(src[p+3])<<24
	case 3:
		for i := 7; i >= 0; i-- {
			fcs = fcs<<8 | uint64(src[p+i])
		}
	}
	return fcs == uint64(n)
}

// TestAllocs checks that a steady-state Decode allocates nothing.
func TestAllocs(t *testing.T) {
	var z []byte
	var n int
	for _, s := range cStreams(t) {
		if s.name == "text64k-l22" {
			z, n = s.z, s.rawLen
		}
	}
	dst := make([]byte, 0, n)
	Decode(dst, z)
	if a := testing.AllocsPerRun(20, func() {
		if _, err := Decode(dst, z); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("%v allocations per Decode", a)
	}
}

// TestConcurrent decodes corpus streams from several goroutines at once
// (run it with -race).
func TestConcurrent(t *testing.T) {
	streams := cStreams(t)
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			for i, s := range streams {
				if s.verdicts || s.crafted || (i+g)%3 != 0 {
					continue
				}
				got, err := Decode(make([]byte, 0, s.rawLen), s.z)
				if err != nil || len(got) != s.rawLen {
					done <- errors.New(s.name + ": failed")
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
