// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// TestDecoderErrors decodes a real data block of each fixture's codec
// through the reader's decoder: whole, into one byte less room, and
// truncated. Every codec's errors wrap the shared codec errors: too
// little room is ErrTooLong (ErrCorrupt for lz4 and lzo, whose reference
// decoders cannot tell it from corrupt input), a truncated block
// ErrCorrupt.
func TestDecoderErrors(t *testing.T) {
	for _, tc := range []struct {
		fix     string
		tooLong error
	}{
		{"gzip", codec.ErrTooLong},
		{"xz", codec.ErrTooLong},
		{"lzo", codec.ErrCorrupt},
		{"lz4", codec.ErrCorrupt},
		{"zstd", codec.ErrTooLong},
	} {
		t.Run(tc.fix, func(t *testing.T) {
			img, err := os.ReadFile("testdata/" + tc.fix + ".sqfs")
			if err != nil {
				t.Fatal(err)
			}
			r, err := Open(bytes.NewReader(img), int64(len(img)), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			in, err := r.LookupPath("dir/aaaa")
			if err != nil {
				t.Fatal(err)
			}
			if len(in.sizes) == 0 || in.sizes[0]&uncompressedBit != 0 {
				t.Fatal("dir/aaaa has no compressed first block")
			}
			src := img[in.starts[0] : in.starts[0]+int64(in.sizes[0])]
			want := int(r.bs)
			out, err := r.dec.Decode(make([]byte, 0, want), src)
			if err != nil || len(out) != want || !bytes.Equal(out, bytes.Repeat([]byte("a"), want)) {
				t.Fatalf("Decode: %d bytes, %v; want %d bytes of 'a'", len(out), err, want)
			}
			if _, err := r.dec.Decode(make([]byte, 0, want-1), src); !errors.Is(err, tc.tooLong) {
				t.Errorf("Decode into %d bytes: %v, want %v", want-1, err, tc.tooLong)
			}
			if _, err := r.dec.Decode(make([]byte, 0, want), src[:len(src)/2]); !errors.Is(err, codec.ErrCorrupt) {
				t.Errorf("Decode of half the block: %v, want %v", err, codec.ErrCorrupt)
			}
		})
	}
}
