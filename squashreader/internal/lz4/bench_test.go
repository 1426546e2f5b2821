// SPDX-License-Identifier: BSD-3-Clause

package lz4

import (
	"os"
	"testing"

	pierrec "github.com/pierrec/lz4/v4"
)

// benchBlocks compresses 128 KiB pieces of this test binary (code and
// data, like a squashfs image's data blocks) with pierrec/lz4's HC
// compressor.
func benchBlocks(b *testing.B) (blocks [][]byte, total int) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		b.Fatal(err)
	}
	const bs = 128 << 10
	for off := 0; off+bs <= len(data) && len(blocks) < 32; off += bs {
		comp := make([]byte, pierrec.CompressBlockBound(bs))
		n, err := pierrec.CompressBlockHC(data[off:off+bs], comp, pierrec.Level9, nil, nil)
		if err != nil || n == 0 {
			continue
		}
		blocks = append(blocks, comp[:n])
		total += bs
	}
	return blocks, total
}

// BenchmarkDecode compares Decode with pierrec/lz4's UncompressBlock on
// the same blocks: go test -bench . ./squashreader/internal/lz4/
func BenchmarkDecode(b *testing.B) {
	blocks, total := benchBlocks(b)
	dst := make([]byte, 128<<10)
	b.Run("ours", func(b *testing.B) {
		b.SetBytes(int64(total))
		for b.Loop() {
			for _, blk := range blocks {
				if _, err := Decode(dst[:0], blk); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("pierrec", func(b *testing.B) {
		b.SetBytes(int64(total))
		for b.Loop() {
			for _, blk := range blocks {
				if _, err := pierrec.UncompressBlock(blk, dst); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
