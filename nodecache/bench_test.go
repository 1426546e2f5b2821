// SPDX-License-Identifier: BSD-3-Clause

package nodecache

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/shifter-go/shifter/imagestore"
)

// BenchmarkRead reads 64 MiB in pieces of 128 KiB (the squashfs block
// size): straight from memory (the source alone), through a cold cache
// (fetch, hash, store), and through a warm one (database hit and hash;
// with the memory tier off so every chunk comes from disk). MB/s counts
// the bytes read.
func BenchmarkRead(b *testing.B) {
	const size = 64 << 20
	const piece = 128 << 10
	data := randBytes(42, size)
	cl, err := imagestore.ComputeChunkList(bytes.NewReader(data), size, imagestore.DefaultChunkSize, 0)
	if err != nil {
		b.Fatal(err)
	}
	order := rand.New(rand.NewPCG(1, 1)).Perm(size / piece)
	readAll := func(b *testing.B, im interface {
		ReadAt([]byte, int64) (int, error)
	}) {
		p := make([]byte, piece)
		for _, i := range order {
			if _, err := im.ReadAt(p, int64(i)*piece); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("source", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			readAll(b, bytes.NewReader(data))
		}
	})
	b.Run("cold", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			b.StopTimer()
			c := openTest(b, b.TempDir(), Options{Size: 1 << 30})
			im, _ := c.Image(testID("bench"), &memSource{data: data}, cl)
			b.StartTimer()
			readAll(b, im)
			b.StopTimer()
			c.Close()
			b.StartTimer()
		}
	})
	b.Run("warm", func(b *testing.B) {
		c := openTest(b, b.TempDir(), Options{Size: 1 << 30, MemorySize: -1})
		im, _ := c.Image(testID("bench"), &memSource{data: data}, cl)
		readAll(b, im)
		b.SetBytes(size)
		b.ResetTimer()
		for b.Loop() {
			readAll(b, im)
		}
		if st := c.Stats(); st.Misses != cl.Count() {
			b.Fatalf("warm reads missed: %+v", st)
		}
	})
}
