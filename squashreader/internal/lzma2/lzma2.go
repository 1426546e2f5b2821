// SPDX-License-Identifier: BSD-3-Clause

package lzma2

import (
	"errors"
	"fmt"
	"sync"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// DictSize decodes the 1-byte property of the LZMA2 filter (0..40) into the
// dictionary size: 2 or 3 times a power of two from 4 KiB (0) to 3 GiB
// (39), and 4 GiB - 1 for 40. Larger values are an error.
func DictSize(prop byte) (uint32, error) {
	if prop > 40 {
		return 0, fmt.Errorf("lzma2: %w: dictionary size property %d > 40", codec.ErrCorrupt, prop)
	}
	if prop == 40 {
		return 0xFFFFFFFF, nil
	}
	return (2 | uint32(prop)&1) << (prop/2 + 11), nil
}

var pool = sync.Pool{New: func() any { return new(decoder) }}

func corrupt(off int, format string, args ...any) error {
	return fmt.Errorf("lzma2: %w: %s at offset %d", codec.ErrCorrupt, fmt.Sprintf(format, args...), off)
}

// Decode decodes raw LZMA2 data (the payload of an xz block whose filter
// chain ends in LZMA2, filter ID 0x21) from src into dst[:0], writing at
// most cap(dst) bytes, up to and including the LZMA2 end marker (control
// byte 0x00).
//
// dictSize is the dictionary size from the filter properties (see
// DictSize); matches must not reach back further than dictSize (rounded
// up as liblzma does, see the package documentation) nor before the last
// dictionary reset.
//
// It returns the output and the number of bytes of src consumed, through
// the end marker. Errors wrap codec.ErrCorrupt or codec.ErrTooLong. Bytes
// of dst past the returned length may be overwritten.
func Decode(dst, src []byte, dictSize uint32) (out []byte, n int, err error) {
	// liblzma's LZ decoder makes the dictionary at least 4 KiB and a
	// multiple of 16 bytes, and a distance is valid if it is within it.
	limit := (uint64(max(dictSize, 4096)) + 15) &^ 15
	if limit > uint64(^uint(0)>>1) {
		limit = uint64(^uint(0) >> 1)
	}
	buf := dst[:cap(dst)]
	var d *decoder
	defer func() {
		if d != nil {
			pool.Put(d)
		}
	}()
	pos := 0       // bytes written
	dictStart := 0 // position of the last dictionary reset
	needDictReset, needProps := true, true
	i := 0
	for {
		if i >= len(src) {
			return buf[:pos], i, corrupt(i, "truncated input (no end marker)")
		}
		c := src[i]
		if c == 0 {
			return buf[:pos], i + 1, nil
		}
		if c >= 0xE0 || c == 1 {
			needProps, needDictReset = true, false
			dictStart = pos
		} else if needDictReset {
			return buf[:pos], i, corrupt(i, "first chunk (control byte %#02x) does not reset the dictionary", c)
		}
		if c < 0x80 {
			if c > 2 {
				return buf[:pos], i, corrupt(i, "invalid control byte %#02x", c)
			}
			if len(src)-i < 3 {
				return buf[:pos], i, corrupt(i, "truncated chunk header")
			}
			size := (int(src[i+1])<<8 | int(src[i+2])) + 1
			i += 3
			if len(src)-i < size {
				return buf[:pos], i, corrupt(i, "truncated uncompressed chunk (%d bytes, %d left)", size, len(src)-i)
			}
			if len(buf)-pos < size {
				return buf[:pos], i, fmt.Errorf("lzma2: %w: uncompressed chunk of %d bytes at offset %d after %d bytes of output, limit %d", codec.ErrTooLong, size, i, pos, len(buf))
			}
			copy(buf[pos:], src[i:i+size])
			pos += size
			i += size
			continue
		}
		mode := c >> 5 & 3
		if mode < 2 && needProps {
			return buf[:pos], i, corrupt(i, "LZMA chunk (control byte %#02x) without properties after a dictionary reset", c)
		}
		hdr := 5
		if mode >= 2 {
			hdr = 6
		}
		if len(src)-i < hdr {
			return buf[:pos], i, corrupt(i, "truncated chunk header")
		}
		unpacked := (int(c&0x1F)<<16 | int(src[i+1])<<8 | int(src[i+2])) + 1
		packed := (int(src[i+3])<<8 | int(src[i+4])) + 1
		if d == nil {
			d = pool.Get().(*decoder)
		}
		if mode >= 2 {
			p := src[i+5]
			if p > 224 {
				return buf[:pos], i + 5, corrupt(i+5, "invalid properties byte %d", p)
			}
			pb, lp, lc := p/45, p%45/9, p%9
			if lc+lp > 4 {
				return buf[:pos], i + 5, corrupt(i+5, "properties lc=%d lp=%d: lc+lp > 4", lc, lp)
			}
			d.lc, d.lpMask, d.pbMask = uint32(lc), 1<<lp-1, 1<<pb-1
			needProps = false
		}
		if mode >= 1 {
			d.reset()
		}
		i += hdr
		if len(src)-i < packed {
			return buf[:pos], i, corrupt(i, "truncated LZMA chunk (%d bytes, %d left)", packed, len(src)-i)
		}
		if len(buf)-pos < unpacked {
			return buf[:pos], i, fmt.Errorf("lzma2: %w: LZMA chunk of %d bytes at offset %d after %d bytes of output, limit %d", codec.ErrTooLong, unpacked, i, pos, len(buf))
		}
		op, used, err := d.decodeChunk(buf[dictStart:], pos-dictStart, pos+unpacked-dictStart, src[i:i+packed], uint(limit))
		if err != nil {
			var ce *chunkError
			if errors.As(err, &ce) {
				return buf[:dictStart+op], i + used, fmt.Errorf("lzma2: %w: %s at offset %d (in the LZMA chunk at offset %d)", codec.ErrCorrupt, ce.msg, i+ce.off, i-hdr)
			}
			return buf[:dictStart+op], i + used, err
		}
		pos += unpacked
		i += packed
	}
}

// chunkError is an error inside an LZMA chunk, at offset off in its
// packed data.
type chunkError struct {
	msg string
	off int
}

func (e *chunkError) Error() string { return e.msg }
