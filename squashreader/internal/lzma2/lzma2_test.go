// SPDX-License-Identifier: BSD-3-Clause

package lzma2

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	ulzma "github.com/ulikunitz/xz/lzma"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// cStream is one record of testdata/clzma.streams (see gen_clzma.py).
type cStream struct {
	name     string
	dictSize uint32
	rawLen   int
	sum      [32]byte
	comp     []byte
}

func readCStreams(tb testing.TB) []cStream {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "clzma.streams"))
	if err != nil {
		tb.Fatal(err)
	}
	var ss []cStream
	for len(b) > 0 {
		var s cStream
		n := int(b[0])
		s.name = string(b[1 : 1+n])
		b = b[1+n:]
		s.dictSize = binary.BigEndian.Uint32(b)
		s.rawLen = int(binary.BigEndian.Uint32(b[4:]))
		copy(s.sum[:], b[8:40])
		c := int(binary.BigEndian.Uint32(b[40:]))
		s.comp = b[44 : 44+c]
		b = b[44+c:]
		ss = append(ss, s)
	}
	return ss
}

// ulikunitz decodes raw LZMA2 data with ulikunitz/xz/lzma's Reader2.
func ulikunitz(src []byte, dictSize uint32) ([]byte, error) {
	r, err := ulzma.Reader2Config{DictCap: int(max(dictSize, 4096))}.NewReader2(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// TestCLZMAStreams decodes the streams C liblzma made (presets, extreme,
// lc/lp/pb, dictionary sizes, match finders, multi-chunk and uncompressed
// chunks) and checks the output's length and SHA-256 against the
// original's, the bytes consumed, and the exact and one-short output
// limits.
func TestCLZMAStreams(t *testing.T) {
	for _, s := range readCStreams(t) {
		t.Run(s.name, func(t *testing.T) {
			src := append(s.comp[:len(s.comp):len(s.comp)], 0xAA, 0xBB) // trailing bytes are not consumed
			out, n, err := Decode(make([]byte, 0, s.rawLen), src, s.dictSize)
			if err != nil || len(out) != s.rawLen || sha256.Sum256(out) != s.sum || n != len(s.comp) {
				t.Errorf("Decode = %d bytes (want %d), n=%d (want %d), %v", len(out), s.rawLen, n, len(s.comp), err)
				if want, uerr := ulikunitz(s.comp, s.dictSize); uerr == nil && err == nil {
					for i := range min(len(out), len(want)) {
						if out[i] != want[i] {
							t.Errorf("first difference from ulikunitz at %d", i)
							break
						}
					}
				}
				return
			}
			if s.rawLen > 0 {
				if _, _, err := Decode(make([]byte, 0, s.rawLen-1), s.comp, s.dictSize); !errors.Is(err, codec.ErrTooLong) {
					t.Errorf("Decode(cap %d) error = %v, want codec.ErrTooLong", s.rawLen-1, err)
				}
			}
		})
	}
}
