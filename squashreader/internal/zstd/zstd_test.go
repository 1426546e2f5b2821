// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// cStream is a record of testdata/czstd.streams (see gen_czstd.py).
type cStream struct {
	name     string
	verdicts bool   // a 'V' record
	crafted  bool   // a 'C' record: muts[0] is libzstd's verdict on z
	rawLen   int    // 'S': the original's length
	sum      []byte // 'S': its SHA-256
	z        []byte
	muts     []verdict // 'V': libzstd's verdict on each truncation, then each bit flip
}

type verdict struct {
	ok     bool
	outLen int
	sum8   []byte // first 8 bytes of the output's SHA-256
}

const verdictCap = 1 << 20

var (
	cStreamsOnce sync.Once
	cStreamsList []cStream
	cStreamsErr  error
)

func cStreams(tb testing.TB) []cStream {
	tb.Helper()
	cStreamsOnce.Do(func() {
		data, err := os.ReadFile(filepath.Join("testdata", "czstd.streams"))
		if err != nil {
			cStreamsErr = err
			return
		}
		u32 := func() int {
			v := int(binary.LittleEndian.Uint32(data))
			data = data[4:]
			return v
		}
		for len(data) > 0 {
			var s cStream
			kind := data[0]
			nl := int(data[1])
			s.name = string(data[2 : 2+nl])
			data = data[2+nl:]
			switch kind {
			case 'S':
				s.rawLen = u32()
				s.sum = data[:32]
				data = data[32:]
				n := u32()
				s.z = data[:n]
				data = data[n:]
			case 'V', 'C':
				s.verdicts = kind == 'V'
				s.crafted = kind == 'C'
				n := u32()
				s.z = data[:n]
				data = data[n:]
				count := 9 * n
				if s.crafted {
					count = 1
				}
				for i := 0; i < count; i++ {
					v := verdict{ok: data[0] == 1}
					data = data[1:]
					if v.ok {
						v.outLen = u32()
						v.sum8 = data[:8]
						data = data[8:]
					}
					s.muts = append(s.muts, v)
				}
			default:
				cStreamsErr = fmt.Errorf("bad record kind %q", kind)
				return
			}
			cStreamsList = append(cStreamsList, s)
		}
	})
	if cStreamsErr != nil {
		tb.Fatal(cStreamsErr)
	}
	return cStreamsList
}

// mutations returns the inputs a 'V' record's verdicts are about: every
// truncation, then every single-bit flip.
func mutations(z []byte) [][]byte {
	var out [][]byte
	for i := 0; i < len(z); i++ {
		out = append(out, z[:i])
	}
	for i := 0; i < 8*len(z); i++ {
		b := bytes.Clone(z)
		b[i/8] ^= 1 << (i % 8)
		out = append(out, b)
	}
	return out
}

// TestCZstdStreams decodes C libzstd's streams: levels -5 to 22, with and
// without checksums and content sizes, small windows, long-distance
// matching, raw literals, small blocks, every strategy, several frames
// and skippable frames; each with the exact output size as cap(dst), and
// one byte less (codec.ErrTooLong).
func TestCZstdStreams(t *testing.T) {
	n := 0
	for _, s := range cStreams(t) {
		if s.verdicts || s.crafted {
			continue
		}
		n++
		got, err := Decode(make([]byte, 0, s.rawLen), s.z)
		if err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		if sum := sha256.Sum256(got); len(got) != s.rawLen || !bytes.Equal(sum[:], s.sum) {
			t.Errorf("%s: decoded %d bytes, want %d, or they differ", s.name, len(got), s.rawLen)
		}
		if s.rawLen > 0 {
			if _, err := Decode(make([]byte, 0, s.rawLen-1), s.z); !errors.Is(err, codec.ErrTooLong) {
				t.Errorf("%s: cap %d: error %v, want codec.ErrTooLong", s.name, s.rawLen-1, err)
			}
		}
	}
	if n < 150 {
		t.Fatalf("only %d streams", n)
	}
}

// TestCZstdVerdicts checks Decode's verdict against C libzstd's on every
// truncation and every single-bit flip of small streams (gen_czstd.py
// recorded libzstd's): both fail, or both decode to the same output.
func TestCZstdVerdicts(t *testing.T) {
	total, bad := 0, 0
	buf := make([]byte, 0, verdictCap)
	for _, s := range cStreams(t) {
		if !s.verdicts {
			continue
		}
		for i, m := range mutations(s.z) {
			total++
			v := s.muts[i]
			got, err := Decode(buf, m)
			what := fmt.Sprintf("truncated to %d bytes", i)
			if i >= len(s.z) {
				what = fmt.Sprintf("bit %d flipped", i-len(s.z))
			}
			switch {
			case err != nil && !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrTooLong):
				t.Errorf("%s %s: error %v wraps neither error", s.name, what, err)
			case err != nil && v.ok:
				bad++
				t.Errorf("%s %s: %v; libzstd decodes it", s.name, what, err)
			case err == nil && !v.ok:
				bad++
				t.Errorf("%s %s: decoded %d bytes; libzstd fails", s.name, what, len(got))
			case err == nil:
				sum := sha256.Sum256(got)
				if len(got) != v.outLen || !bytes.Equal(sum[:8], v.sum8) {
					bad++
					t.Errorf("%s %s: decoded %d bytes, libzstd %d, or they differ", s.name, what, len(got), v.outLen)
				}
			}
		}
	}
	t.Logf("%d corruptions, %d disagreements", total, bad)
}

// checkVerdict checks Decode's verdict on src against libzstd's, v.
func checkVerdict(t *testing.T, what string, src []byte, v verdict) bool {
	t.Helper()
	got, err := Decode(make([]byte, 0, verdictCap), src)
	switch {
	case err != nil && !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrTooLong):
		t.Errorf("%s: error %v wraps neither error", what, err)
	case err != nil && v.ok:
		t.Errorf("%s: %v; libzstd decodes it", what, err)
	case err == nil && !v.ok:
		t.Errorf("%s: decoded %d bytes; libzstd fails", what, len(got))
	case err == nil:
		sum := sha256.Sum256(got)
		if len(got) != v.outLen || !bytes.Equal(sum[:8], v.sum8) {
			t.Errorf("%s: decoded %d bytes, libzstd %d, or they differ", what, len(got), v.outLen)
		}
	default:
		return true
	}
	return err == nil || !v.ok
}

// TestCrafted checks Decode's verdict against libzstd's on hand-made
// inputs (gen_czstd.py's crafted): every field of the frame header and
// its limits, block types and sizes, literals and sequences sections at
// their edges, repeat modes and offsets, frame content sizes, checksums,
// skippable frames and trailing bytes.
func TestCrafted(t *testing.T) {
	n := 0
	for _, s := range cStreams(t) {
		if s.crafted {
			n++
			checkVerdict(t, s.name, s.z, s.muts[0])
		}
	}
	if n < 90 {
		t.Fatalf("only %d crafted inputs", n)
	}
}
