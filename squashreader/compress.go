// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"encoding/binary"
	"errors"
	"fmt"

	lzo "github.com/anchore/go-lzo"

	"github.com/shifter-go/shifter/squashreader/internal/inflate"
	"github.com/shifter-go/shifter/squashreader/internal/lz4"
	"github.com/shifter-go/shifter/squashreader/internal/zstd"
)

// decompressor decompresses one block: src into dst[:0], at most cap(dst)
// bytes; more output is an error.
type decompressor interface {
	decompress(dst, src []byte) ([]byte, error)
}

var errTooLong = errors.New("decompressed data longer than the block")

func newDecompressor(id uint16, opts []byte, blockSize int) (decompressor, error) {
	le := binary.LittleEndian
	switch id {
	case 1: // gzip (zlib)
		if opts != nil {
			if len(opts) != 8 {
				return nil, fmt.Errorf("gzip options of %d bytes, want 8", len(opts))
			}
			lvl, win := le.Uint32(opts), le.Uint16(opts[4:])
			if lvl < 1 || lvl > 9 || win < 8 || win > 15 {
				return nil, fmt.Errorf("bad gzip options level %d window %d", lvl, win)
			}
		}
		return &zlibDec{}, nil
	case 3:
		if opts != nil {
			if len(opts) != 8 {
				return nil, fmt.Errorf("lzo options of %d bytes, want 8", len(opts))
			}
			if a := le.Uint32(opts); a > 4 {
				return nil, fmt.Errorf("bad lzo algorithm %d", a)
			}
		}
		return lzoDec{}, nil
	case 4:
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
		return xzDec{}, nil
	case 5:
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
		return lz4Dec{}, nil
	case 6:
		if opts != nil {
			if len(opts) != 4 {
				return nil, fmt.Errorf("zstd options of %d bytes, want 4", len(opts))
			}
			if l := le.Uint32(opts); l < 1 || l > 22 {
				return nil, fmt.Errorf("bad zstd level %d", l)
			}
		}
		return zstdDec{}, nil
	}
	return nil, fmt.Errorf("unknown compression id %d", id)
}

// zlibDec decodes gzip blocks (zlib streams) buffer to buffer with the
// project's own inflate: no reader state, no window copy, about twice
// klauspost's speed (squashreader/internal/inflate).
type zlibDec struct{}

func (*zlibDec) decompress(dst, src []byte) ([]byte, error) {
	out, err := inflate.Zlib(dst[:0], src)
	if errors.Is(err, inflate.ErrTooLong) {
		return nil, errTooLong
	}
	return out, err
}

type lzoDec struct{}

func (lzoDec) decompress(dst, src []byte) ([]byte, error) {
	n, err := lzo.Decompress(src, dst[:cap(dst)])
	if err != nil {
		return nil, err
	}
	if n < 0 || n > cap(dst) {
		return nil, errTooLong
	}
	return dst[:n], nil
}

// lz4Dec decodes lz4 blocks (the block format, as the kernel's squashfs
// reads them) with the project's own internal/lz4.
type lz4Dec struct{}

func (lz4Dec) decompress(dst, src []byte) ([]byte, error) {
	return lz4.Decode(dst[:0], src)
}

// zstdDec decodes zstd blocks buffer to buffer with the project's own
// decoder (squashreader/internal/zstd).
type zstdDec struct{}

func (zstdDec) decompress(dst, src []byte) ([]byte, error) {
	out, err := zstd.Decode(dst[:0], src)
	if errors.Is(err, zstd.ErrTooLong) {
		return nil, errTooLong
	}
	return out, err
}
