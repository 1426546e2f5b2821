// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"bytes"
	"sync"

	"github.com/therootcompany/xz"
)

// xzDec decodes the xz streams mksquashfs writes (one stream per block,
// LZMA2 with an optional BCJ filter) with github.com/therootcompany/xz, a
// port of xz-embedded (the kernel's decoder) that handles the BCJ filters
// and checks the stream's CRC. Readers are pooled; the dictionary is
// limited to the block size (mksquashfs never uses more).
type xzDec struct {
	dictMax uint32
	pool    sync.Pool
}

func newXZ(blockSize int) *xzDec { return &xzDec{dictMax: uint32(max(blockSize, metadataSize))} }

func (x *xzDec) decompress(dst, src []byte) ([]byte, error) {
	br := bytes.NewReader(src)
	var zr *xz.Reader
	if v := x.pool.Get(); v != nil {
		zr = v.(*xz.Reader)
		if err := zr.Reset(br); err != nil {
			return nil, err
		}
	} else {
		var err error
		if zr, err = xz.NewReader(br, x.dictMax); err != nil {
			return nil, err
		}
	}
	zr.Multistream(false)
	out, err := readInto(dst, zr)
	if err == nil {
		x.pool.Put(zr)
	}
	return out, err
}
