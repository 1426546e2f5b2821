// SPDX-License-Identifier: BSD-3-Clause

//go:build amd64 && !purego

package zstd

import (
	"bytes"
	"strconv"
	"testing"
)

// decodeBoth decodes src into buffers of capacity cap with the assembly
// loops and with the Go ones, and reports any difference in output or
// error.
func decodeBoth(t *testing.T, name string, src []byte, capacity int) {
	t.Helper()
	defer func() { genericSeqs = false }()
	genericSeqs = false
	got, err := Decode(make([]byte, 0, capacity), src)
	genericSeqs = true
	want, werr := Decode(make([]byte, 0, capacity), src)
	if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
		t.Fatalf("%s, cap %d: assembly: %v; Go: %v", name, capacity, err, werr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s, cap %d: assembly and Go decode %d and %d bytes, or they differ", name, capacity, len(got), len(want))
	}
}

// TestAsmMatchesGeneric decodes every stream of the corpus, each of its
// truncations and bit flips, and the crafted and squashfs blocks, with
// the assembly sequence loops and with decodeSeqsGeneric and execSeqs'
// Go path: output and errors must be the same. Capacities around each
// stream's output size put the end of the buffer in every position the
// fast paths care about.
func TestAsmMatchesGeneric(t *testing.T) {
	n := 0
	for _, s := range cStreams(t) {
		full, err := Decode(make([]byte, 0, verdictCap), s.z)
		caps := []int{verdictCap}
		if err == nil {
			for _, d := range []int{-17, -1, 0, 1, 15, 16, 17, 31, 32, 33, 48} {
				if c := len(full) + d; c >= 0 {
					caps = append(caps, c)
				}
			}
		}
		for _, c := range caps {
			decodeBoth(t, s.name, s.z, c)
			n++
		}
		if s.verdicts {
			for i, m := range mutations(s.z) {
				decodeBoth(t, s.name+" mutation "+strconv.Itoa(i), m, verdictCap)
				n++
			}
		}
	}
	t.Logf("%d decodes compared", n)
}

// FuzzAsm checks the assembly sequence loops against the Go ones on
// arbitrary input, with a roomy buffer and ones that end where the
// output does and 20 bytes after.
func FuzzAsm(f *testing.F) {
	for _, s := range cStreams(f) {
		if len(s.z) < 2000 {
			f.Add(s.z)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		decodeBoth(t, "input", src, 256<<10)
		genericSeqs = true
		out, err := Decode(make([]byte, 0, 256<<10), src)
		genericSeqs = false
		if err == nil {
			decodeBoth(t, "input", src, len(out))
			decodeBoth(t, "input", src, len(out)+20)
		}
	})
}
