// SPDX-License-Identifier: BSD-3-Clause

//go:build !refcodecs

package squashreader

import (
	"github.com/shifter-go/shifter/squashreader/internal/codec"
	"github.com/shifter-go/shifter/squashreader/internal/inflate"
	"github.com/shifter-go/shifter/squashreader/internal/lz4"
	"github.com/shifter-go/shifter/squashreader/internal/xz"
	"github.com/shifter-go/shifter/squashreader/internal/zstd"
)

// The block decoders are the project's own, buffer to buffer with no
// reader state (docs/codecs.md; the refcodecs build tag swaps in the
// reference libraries, compress_ref.go):
//   - gzip blocks are zlib streams, decoded by internal/inflate;
//   - xz blocks are .xz streams (one per block, LZMA2 with an optional
//     BCJ filter), decoded by internal/xz and internal/lzma2, whose
//     dictionary is the output buffer itself;
//   - lz4 blocks use the block format, as the kernel reads them;
//   - zstd blocks are zstd frames.
var (
	gzipDecoder codec.Decoder = codec.Func(inflate.Zlib)
	xzDecoder   codec.Decoder = codec.Func(xz.Decode)
	lz4Decoder  codec.Decoder = codec.Func(lz4.Decode)
	zstdDecoder codec.Decoder = codec.Func(zstd.Decode)
)
