// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// TestMutatedFixtures is a deterministic complement to the fuzz targets:
// it changes a few random bytes of every fixture, many times, then opens,
// walks and reads the result (fuzzWalk checks names, errors and
// ReadDir/Lookup consistency). An input that takes longer than 10 s is
// reported as a hang.
func TestMutatedFixtures(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	n := 400
	if testing.Short() {
		n = 50
	}
	for _, img := range fixtures(t) {
		seed, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			d := bytes.Clone(seed)
			for k := 0; k < 1+rng.IntN(4); k++ {
				d[rng.IntN(len(d))] = byte(rng.Uint32())
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				r, err := Open(bytes.NewReader(d), int64(len(d)), fuzzOpts)
				if err != nil {
					return
				}
				defer r.Close()
				fuzzWalk(t, r)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s mutation %d: no result after 10 s", img, i)
			}
		}
	}
}
