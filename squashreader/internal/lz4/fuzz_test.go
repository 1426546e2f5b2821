// SPDX-License-Identifier: BSD-3-Clause

package lz4

import (
	"bytes"
	"errors"
	"testing"

	pierrec "github.com/pierrec/lz4/v4"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// FuzzDecode checks that no input makes Decode panic or write past the
// capacity, that errors wrap codec.ErrCorrupt, and that where pierrec/lz4 also
// decodes the block the outputs agree.
func FuzzDecode(f *testing.F) {
	blocks, _ := readCLZ4(f)
	for _, b := range blocks {
		if len(b) < 300 {
			f.Add(b, uint16(len(b)*4))
		}
	}
	f.Fuzz(func(t *testing.T, src []byte, capacity uint16) {
		dst := make([]byte, 0, int(capacity))
		out, err := Decode(dst, src)
		if err != nil {
			if !errors.Is(err, codec.ErrCorrupt) {
				t.Fatalf("error %v does not wrap codec.ErrCorrupt", err)
			}
			return
		}
		if len(out) > int(capacity) {
			t.Fatalf("%d bytes out, capacity %d", len(out), capacity)
		}
		ref := make([]byte, int(capacity))
		n, perr := pierrec.UncompressBlock(src, ref)
		if perr == nil && !bytes.Equal(out, ref[:n]) {
			t.Fatalf("output differs from pierrec/lz4's (%d and %d bytes)", len(out), n)
		}
	})
}
