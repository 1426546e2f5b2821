// SPDX-License-Identifier: BSD-3-Clause

//go:build refcodecs

package squashreader

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	kzlib "github.com/klauspost/compress/zlib"
	kzstd "github.com/klauspost/compress/zstd"
	pierrec "github.com/pierrec/lz4/v4"
	uxz "github.com/ulikunitz/xz"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// With the refcodecs build tag the reader decodes blocks with the
// libraries our codecs are tested against, for triage: a file that reads
// differently with `go test -tags refcodecs` or a binary built with the
// tag points at our codec. Not for production: they allocate per block,
// and ulikunitz/xz knows no BCJ filter (xz images made with -Xbcj fail).
var (
	gzipDecoder codec.Decoder = codec.Func(refZlib)
	xzDecoder   codec.Decoder = codec.Func(refXZ)
	lz4Decoder  codec.Decoder = codec.Func(refLZ4)
	zstdDecoder codec.Decoder = codec.Func(refZstd)
)

// readBlock reads all of r into dst[:0], at most cap(dst) bytes, and
// wraps its errors as codec errors of the codec name.
func readBlock(name string, dst []byte, r io.Reader, err error) ([]byte, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, codec.ErrCorrupt, err)
	}
	buf := dst[:cap(dst)]
	n := 0
	for {
		if n == len(buf) {
			// Full: the stream must end here.
			var b [1]byte
			m, err := io.ReadFull(r, b[:])
			if m > 0 {
				return nil, fmt.Errorf("%s: %w", name, codec.ErrTooLong)
			}
			if err != io.EOF {
				return nil, fmt.Errorf("%s: %w: %v", name, codec.ErrCorrupt, err)
			}
			return buf[:n], nil
		}
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return buf[:n], nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %v", name, codec.ErrCorrupt, err)
		}
	}
}

func refZlib(dst, src []byte) ([]byte, error) {
	r, err := kzlib.NewReader(bytes.NewReader(src))
	return readBlock("klauspost zlib", dst, r, err)
}

func refXZ(dst, src []byte) ([]byte, error) {
	r, err := uxz.ReaderConfig{SingleStream: true}.NewReader(bytes.NewReader(src))
	return readBlock("ulikunitz xz", dst, r, err)
}

func refLZ4(dst, src []byte) ([]byte, error) {
	n, err := pierrec.UncompressBlock(src, dst[:cap(dst)])
	if err != nil {
		return nil, fmt.Errorf("pierrec lz4: %w: %v", codec.ErrCorrupt, err)
	}
	return dst[:n], nil
}

// zstdRef is one klauspost decoder for all blocks (DecodeAll is safe
// for concurrent use).
var zstdRef = sync.OnceValues(func() (*kzstd.Decoder, error) {
	return kzstd.NewReader(nil, kzstd.WithDecoderConcurrency(0))
})

func refZstd(dst, src []byte) ([]byte, error) {
	d, err := zstdRef()
	if err != nil {
		return nil, fmt.Errorf("klauspost zstd: %w", err)
	}
	out, err := d.DecodeAll(src, dst[:0])
	if err != nil {
		return nil, fmt.Errorf("klauspost zstd: %w: %v", codec.ErrCorrupt, err)
	}
	if len(out) > cap(dst) {
		return nil, fmt.Errorf("klauspost zstd: %w", codec.ErrTooLong)
	}
	return out, nil
}
