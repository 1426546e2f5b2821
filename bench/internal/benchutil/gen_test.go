// SPDX-License-Identifier: BSD-3-Clause

package benchutil

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"
)

func TestGeneratorDeterministicAndSemiCompressible(t *testing.T) {
	read := func(seed uint64, n int64) []byte {
		b, err := io.ReadAll(io.LimitReader(NewGenerator(seed), n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const n = 4 << 20
	a, b := read(1, n), read(1, n)
	if !bytes.Equal(a, b) {
		t.Fatal("NewGenerator(1) gave different bytes on two runs")
	}
	if bytes.Equal(a[:1<<20], read(2, 1<<20)) {
		t.Fatal("NewGenerator(1) and NewGenerator(2) gave the same bytes")
	}
	// Odd read sizes give the same stream.
	g := NewGenerator(1)
	var odd []byte
	buf := make([]byte, 777)
	for len(odd) < 1<<20 {
		m, _ := g.Read(buf)
		odd = append(odd, buf[:m]...)
	}
	if !bytes.Equal(odd[:1<<20], a[:1<<20]) {
		t.Fatal("reading in 777-byte pieces gave a different stream")
	}
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(a)
	w.Close()
	// Semi-compressible: gzip must work at it but cannot skip it.
	if r := float64(z.Len()) / n; r < 0.4 || r > 0.8 {
		t.Errorf("gzip ratio of generated data = %.2f, want between 0.4 and 0.8", r)
	}
}

func TestMedianAndFormat(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{7}, 7},
	}
	for _, tc := range tests {
		if got := Median(tc.xs); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
	cells := []struct {
		s, base float64
		want    string
	}{
		{0.0363, 0.0363, "36.3 ms"},
		{0.310, 0.0363, "0.310 s (8.5×)"},
		{23.34, 22.18, "23.34 s (1.1×)"},
	}
	for _, tc := range cells {
		if got := Cell(tc.s, tc.base, tc.s == tc.base); got != tc.want {
			t.Errorf("Cell(%v, %v) = %q, want %q", tc.s, tc.base, got, tc.want)
		}
	}
}
