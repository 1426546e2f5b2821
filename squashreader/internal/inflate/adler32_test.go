// SPDX-License-Identifier: BSD-3-Clause

package inflate

import (
	hadler "hash/adler32"
	"math/rand/v2"
	"testing"
)

// TestAdler32 compares adler32 with hash/adler32 at every length around
// the word, chunk and modulus boundaries, on random and all-0xff bytes
// (the worst case for the deferred modulus).
func TestAdler32(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 8))
	random := make([]byte, 3<<17+64)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	ff := make([]byte, len(random))
	for i := range ff {
		ff[i] = 0xff
	}
	lengths := []int{}
	for n := 0; n <= 64; n++ {
		lengths = append(lengths, n)
	}
	for _, base := range []int{5552, 1 << 16, 1 << 17, 3 << 17} {
		for d := -17; d <= 17; d++ {
			lengths = append(lengths, base+d)
		}
	}
	lengths = append(lengths, len(random)-3)
	for _, data := range []struct {
		name string
		b    []byte
	}{{"random", random}, {"0xff", ff}} {
		t.Run(data.name, func(t *testing.T) {
			for _, n := range lengths {
				for _, off := range []int{0, 3} {
					b := data.b[off : off+n]
					if got, want := adler32(b), hadler.Checksum(b); got != want {
						t.Errorf("adler32(%d bytes at %d) = %#x, want %#x", n, off, got, want)
					}
				}
			}
		})
	}
}
