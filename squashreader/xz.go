// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ulikunitz/xz/lzma"
)

// xzDec decodes the xz streams mksquashfs writes: one stream holding one
// block whose filter chain is LZMA2, optionally preceded by a branch/call/
// jump (BCJ) filter. github.com/ulikunitz/xz only decodes LZMA2-only
// chains, so the container is parsed here, the LZMA2 data is decoded with
// its lzma.Reader2 and the BCJ filter (bcj.go) is undone afterwards.
type xzDec struct{ dictCap int }

const (
	xzFilterDelta = 0x03
	xzFilterLZMA2 = 0x21
)

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

func xzVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 9; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("bad xz varint")
}

type xzFilter struct {
	id    uint64
	props []byte
}

func (x *xzDec) decompress(dst, src []byte) ([]byte, error) {
	if len(src) < 12+8 || !bytes.Equal(src[:6], xzMagic) {
		return nil, errors.New("not an xz stream")
	}
	if src[6] != 0 || src[7]&0xf0 != 0 {
		return nil, errors.New("bad xz stream flags")
	}
	b := src[12:]
	hsize := (int(b[0]) + 1) * 4
	if b[0] == 0 || hsize > len(b) || hsize < 8 {
		return nil, errors.New("bad xz block header size")
	}
	hdr := b[1 : hsize-4] // without the size byte and the CRC32
	flags := hdr[0]
	if flags&0x3c != 0 {
		return nil, errors.New("reserved xz block flags set")
	}
	p := hdr[1:]
	var uncomp uint64 = ^uint64(0)
	if flags&0x40 != 0 {
		_, n, err := xzVarint(p)
		if err != nil {
			return nil, err
		}
		p = p[n:]
	}
	if flags&0x80 != 0 {
		v, n, err := xzVarint(p)
		if err != nil {
			return nil, err
		}
		uncomp = v
		p = p[n:]
	}
	nf := int(flags&3) + 1
	filters := make([]xzFilter, 0, 4)
	for i := 0; i < nf; i++ {
		id, n, err := xzVarint(p)
		if err != nil {
			return nil, err
		}
		p = p[n:]
		ps, n, err := xzVarint(p)
		if err != nil {
			return nil, err
		}
		p = p[n:]
		if ps > uint64(len(p)) {
			return nil, errors.New("xz filter properties past the block header")
		}
		filters = append(filters, xzFilter{id, p[:ps]})
		p = p[ps:]
	}
	last := filters[len(filters)-1]
	if last.id != xzFilterLZMA2 || len(last.props) != 1 {
		return nil, fmt.Errorf("xz filter chain does not end in LZMA2 (id 0x%x)", last.id)
	}
	for _, f := range filters[:len(filters)-1] {
		if !bcjKnown(f.id) && f.id != xzFilterDelta {
			return nil, fmt.Errorf("unsupported xz filter 0x%x", f.id)
		}
		if f.id == xzFilterDelta && len(f.props) != 1 {
			return nil, errors.New("bad xz delta filter properties")
		}
		if f.id != xzFilterDelta && len(f.props) != 0 && len(f.props) != 4 {
			return nil, errors.New("bad xz bcj filter properties")
		}
	}
	if uncomp != ^uint64(0) && uncomp > uint64(cap(dst)) {
		return nil, errTooLong
	}
	dict := max(x.dictCap, cap(dst), lzma.MinDictCap)
	lr, err := lzma.Reader2Config{DictCap: dict}.NewReader2(bytes.NewReader(b[hsize:]))
	if err != nil {
		return nil, err
	}
	out, err := readInto(dst, lr)
	if err != nil {
		return nil, err
	}
	if uncomp != ^uint64(0) && uint64(len(out)) != uncomp {
		return nil, errors.New("xz block size differs from its header")
	}
	for i := len(filters) - 2; i >= 0; i-- {
		f := filters[i]
		if f.id == xzFilterDelta {
			deltaDecode(out, int(f.props[0])+1)
			continue
		}
		var start uint32
		if len(f.props) == 4 {
			start = binary.LittleEndian.Uint32(f.props)
		}
		bcjDecode(f.id, out, start)
	}
	return out, nil
}

func deltaDecode(b []byte, dist int) {
	for i := dist; i < len(b); i++ {
		b[i] += b[i-dist]
	}
}
