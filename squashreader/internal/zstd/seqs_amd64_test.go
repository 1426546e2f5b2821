// SPDX-License-Identifier: BSD-3-Clause

//go:build amd64 && !purego

package zstd

import (
	"bytes"
	"strconv"
	"strings"
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

// TestAsmGuards checks that the invariants the assembly relies on are
// checked in Go before each call: a state or arguments that break them
// panic with an internal error instead of reaching the assembly.
func TestAsmGuards(t *testing.T) {
	mustPanic := func(t *testing.T, what string, f func()) {
		t.Helper()
		defer func() {
			r := recover()
			s, _ := r.(string)
			if r == nil || !strings.HasPrefix(s, "zstd: internal error: ") {
				t.Errorf("%s: recovered %v, want a zstd internal error", what, r)
			}
		}()
		f()
	}
	for _, tc := range []struct {
		name     string
		win, pos int
	}{
		{"window of 7 bytes", 7, 0},
		{"position past the window's last 8 bytes", 16, 9},
		{"negative position", 16, -1},
	} {
		t.Run("decodeSeqs/"+tc.name, func(t *testing.T) {
			d := new(decoder)
			d.st.win, d.st.pos = make([]byte, tc.win), tc.pos
			mustPanic(t, "decodeSeqs", func() { d.decodeSeqs(make([]seq, 1)) })
		})
	}
	t.Run("decodeSeqs/valid", func(t *testing.T) {
		d := new(decoder)
		d.st.win, d.st.pos = make([]byte, 16), 8
		d.decodeSeqs(make([]seq, 4)) // zero tables: zero sequences, no panic
		if d.st.pos < 0 || d.st.pos > 8 {
			t.Errorf("position %d after decoding, want 0..8", d.st.pos)
		}
	})
	out := make([]byte, 100, 200)
	lits := make([]byte, 50, 100)
	seqs := []seq{{ll: 1, ml: 20, off: 16}}
	for _, tc := range []struct {
		name               string
		op, frameStart, lp int
	}{
		{"frame start after the output position", 40, 41, 0},
		{"negative frame start", 40, -1, 0},
		{"negative literal position", 40, 0, -1},
	} {
		t.Run("execFast/"+tc.name, func(t *testing.T) {
			mustPanic(t, "execFast", func() { execFast(out, tc.op, tc.frameStart, lits, tc.lp, seqs) })
		})
	}
	t.Run("execFast/valid", func(t *testing.T) {
		if k, op, lp := execFast(out, 40, 0, lits, 0, seqs); k != 1 || op != 61 || lp != 1 {
			t.Errorf("execFast = %d, %d, %d; want 1 sequence, output at 61, literals at 1", k, op, lp)
		}
	})
}
