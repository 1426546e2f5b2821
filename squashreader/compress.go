// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"encoding/binary"
	"fmt"

	lzo "github.com/anchore/go-lzo"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// newDecoder returns the block decoder of compression id, checking the
// compressor options opts (nil when the image has none).
func newDecoder(id uint16, opts []byte, blockSize int) (codec.Decoder, error) {
	le := binary.LittleEndian
	switch id {
	case compressionGzip:
		if opts != nil {
			if len(opts) != 8 {
				return nil, fmt.Errorf("gzip options of %d bytes, want 8", len(opts))
			}
			lvl, win := le.Uint32(opts), le.Uint16(opts[4:])
			if lvl < 1 || lvl > 9 || win < 8 || win > 15 {
				return nil, fmt.Errorf("bad gzip options level %d window %d", lvl, win)
			}
		}
		return gzipDecoder, nil
	case compressionLZO:
		if opts != nil {
			if len(opts) != 8 {
				return nil, fmt.Errorf("lzo options of %d bytes, want 8", len(opts))
			}
			if a := le.Uint32(opts); a > 4 {
				return nil, fmt.Errorf("bad lzo algorithm %d", a)
			}
		}
		return codec.Func(lzoDecode), nil
	case compressionXZ:
		if opts != nil {
			if len(opts) != 8 {
				return nil, fmt.Errorf("xz options of %d bytes, want 8", len(opts))
			}
			d := le.Uint32(opts)
			if d < 4096 || int64(d) > int64(blockSize) {
				return nil, fmt.Errorf("bad xz dictionary size %d", d)
			}
			if le.Uint32(opts[4:])&^0x3f != 0 {
				return nil, fmt.Errorf("unknown xz filters 0x%x", le.Uint32(opts[4:]))
			}
		}
		return xzDecoder, nil
	case compressionLZ4:
		if opts != nil {
			if len(opts) != 8 {
				return nil, fmt.Errorf("lz4 options of %d bytes, want 8", len(opts))
			}
			if v := le.Uint32(opts); v != 1 {
				return nil, fmt.Errorf("unsupported lz4 version %d", v)
			}
			if f := le.Uint32(opts[4:]); f&^1 != 0 {
				return nil, fmt.Errorf("unknown lz4 flags 0x%x", f)
			}
		}
		return lz4Decoder, nil
	case compressionZstd:
		if opts != nil {
			if len(opts) != 4 {
				return nil, fmt.Errorf("zstd options of %d bytes, want 4", len(opts))
			}
			if l := le.Uint32(opts); l < 1 || l > 22 {
				return nil, fmt.Errorf("bad zstd level %d", l)
			}
		}
		return zstdDecoder, nil
	}
	return nil, fmt.Errorf("unknown compression id %d", id)
}

// lzoDecode decodes lzo blocks (lzo1x) with anchore/go-lzo.
func lzoDecode(dst, src []byte) ([]byte, error) {
	n, err := lzo.Decompress(src, dst[:cap(dst)])
	if err != nil {
		return nil, fmt.Errorf("lzo: %w: %v", codec.ErrCorrupt, err)
	}
	if n < 0 || n > cap(dst) {
		return nil, fmt.Errorf("lzo: %w", codec.ErrTooLong)
	}
	return dst[:n], nil
}
