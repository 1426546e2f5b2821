// SPDX-License-Identifier: BSD-3-Clause

package xz

import (
	"bytes"
	"testing"

	"github.com/shifter-go/shifter/squashreader/internal/lzma2"
)

// TestFiltersConvert runs each filter of the xz command (raw format: no
// container, the filtered bytes go straight into LZMA2), decodes the
// LZMA2 data to get the filtered bytes, and checks that the filter changed
// many of them and that our inverse gives back the input: each inverse is
// tested on its own, on input that exercises it.
func TestFiltersConvert(t *testing.T) {
	tests := []struct {
		flag  string
		input string
		undo  func([]byte)
	}{
		{"--x86", "exe", func(b []byte) { unX86(b, 0) }},
		{"--x86=start=77", "exe", func(b []byte) { unX86(b, 77) }},
		{"--x86", "branches", func(b []byte) { unX86(b, 0) }},
		{"--powerpc", "branches", func(b []byte) { unPowerPC(b, 0) }},
		{"--powerpc=start=1028", "branches", func(b []byte) { unPowerPC(b, 1028) }},
		{"--ia64", "branches", func(b []byte) { unIA64(b, 0) }},
		{"--ia64=start=4096", "branches", func(b []byte) { unIA64(b, 4096) }},
		{"--arm", "branches", func(b []byte) { unARM(b, 0) }},
		{"--arm=start=12", "branches", func(b []byte) { unARM(b, 12) }},
		{"--armthumb", "branches", func(b []byte) { unARMThumb(b, 0) }},
		{"--armthumb=start=2", "branches", func(b []byte) { unARMThumb(b, 2) }},
		{"--sparc", "branches", func(b []byte) { unSPARC(b, 0) }},
		{"--sparc=start=40", "branches", func(b []byte) { unSPARC(b, 40) }},
		{"--arm64", "branches", func(b []byte) { unARM64(b, 0) }},
		{"--arm64=start=1048576", "branches", func(b []byte) { unARM64(b, 1<<20) }},
		{"--delta=dist=3", "text", func(b []byte) { unDelta(b, 3) }},
	}
	for _, tc := range tests {
		t.Run(tc.flag+"/"+tc.input, func(t *testing.T) {
			t.Parallel()
			in := corpus()[tc.input]
			// xzCompress asks for --format=xz; the later --format=raw wins.
			raw := xzCompress(t, in, "--format=raw", tc.flag, "--lzma2=preset=0")
			got, _, err := lzma2.Decode(make([]byte, 0, len(in)), raw, 1<<20)
			if err != nil {
				t.Fatalf("decode the raw LZMA2: %v", err)
			}
			diff := 0
			for i := range got {
				if got[i] != in[i] {
					diff++
				}
			}
			if diff < 100 {
				t.Fatalf("the filter changed only %d bytes: the input does not exercise it", diff)
			}
			tc.undo(got)
			if !bytes.Equal(got, in) {
				n := 0
				for i := range got {
					if got[i] != in[i] {
						n++
					}
				}
				t.Fatalf("undone: %d of %d bytes differ from the input (the filter changed %d)", n, len(in), diff)
			}
		})
	}
}
