// SPDX-License-Identifier: BSD-3-Clause

package benchutil

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
)

// segment is the unit of the generator: each one is either random bytes or
// text drawn from a small vocabulary, half and half.
const segment = 512

// Castagnoli is the CRC-32C table used for output checks (hardware
// accelerated, so checking costs little next to reading).
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Generator produces deterministic, semi-compressible data: half of its
// 512-byte segments are random bytes, the other half words from a
// 256-word vocabulary. gzip shrinks it to roughly 60%, so reading it
// costs real decompression work while no compressor can skip it.
type Generator struct {
	rng   *rand.Rand
	vocab [][]byte
	buf   []byte // pending output not yet returned by Read
}

// NewGenerator returns the generator for seed; the same seed always gives
// the same bytes.
func NewGenerator(seed uint64) *Generator {
	g := &Generator{rng: rand.New(rand.NewPCG(seed, 0x5eedb16f11e5))}
	for range 256 {
		w := make([]byte, 3+g.rng.IntN(8))
		for i := range w {
			w[i] = 'a' + byte(g.rng.IntN(26))
		}
		g.vocab = append(g.vocab, w)
	}
	return g
}

// Read fills p with the next bytes of the stream; it never fails.
func (g *Generator) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(g.buf) == 0 {
			g.fill()
		}
		c := copy(p[n:], g.buf)
		g.buf = g.buf[c:]
		n += c
	}
	return n, nil
}

func (g *Generator) fill() {
	seg := make([]byte, segment)
	if g.rng.Uint64()&1 == 0 {
		for i := 0; i < segment; i += 8 {
			v := g.rng.Uint64()
			for j := range 8 {
				seg[i+j] = byte(v >> (8 * j))
			}
		}
	} else {
		i := 0
		for i < segment {
			i += copy(seg[i:], g.vocab[g.rng.IntN(len(g.vocab))])
			if i < segment {
				seg[i] = ' '
				i++
			}
		}
	}
	g.buf = seg
}

// WriteGenerated writes size bytes of seed's stream to path (through a
// temporary file renamed into place) and returns their CRC-32C.
func WriteGenerated(path string, seed uint64, size int64) (uint32, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, fmt.Errorf("create generated file: %w", err)
	}
	h := crc32.New(Castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	_, err = io.CopyN(w, NewGenerator(seed), size)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("write generated file %s: %w", path, err)
	}
	return h.Sum32(), nil
}
