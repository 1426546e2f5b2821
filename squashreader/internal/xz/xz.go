// SPDX-License-Identifier: BSD-3-Clause

package xz

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"sync"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
	"github.com/shifter-go/shifter/squashreader/internal/lzma2"
)

func corrupt(what string, off int) error {
	return fmt.Errorf("xz: %s at byte %d: %w", what, off, codec.ErrCorrupt)
}

// dataError is an error in a block's LZMA2 data.
type dataError struct {
	off int
	err error
}

func (e *dataError) Error() string   { return fmt.Sprintf("xz: block data at byte %d: %v", e.off, e.err) }
func (e *dataError) Unwrap() []error { return []error{e.err, codec.ErrCorrupt} }

func unsupported(what string, off int) error {
	return fmt.Errorf("xz: %s at byte %d: %w", what, off, codec.ErrUnsupported)
}

var (
	headerMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	footerMagic = []byte{'Y', 'Z'}
)

// Check types (the low four bits of the stream flags).
const (
	checkNone   = 0x00
	checkCRC32  = 0x01
	checkCRC64  = 0x04
	checkSHA256 = 0x0a
)

// checkSize is the size of each of the 16 check types' field.
var checkSize = [16]int{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}

// Filter ids.
const (
	filterDelta    = 0x03
	filterX86      = 0x04
	filterPowerPC  = 0x05
	filterIA64     = 0x06
	filterARM      = 0x07
	filterARMThumb = 0x08
	filterSPARC    = 0x09
	filterARM64    = 0x0a
	filterLZMA2    = 0x21
)

var crc64Table = sync.OnceValue(func() *crc64.Table { return crc64.MakeTable(crc64.ECMA) })

// filter is one non-last filter of a block's chain.
type filter struct {
	id    uint64
	start uint32 // BCJ start offset
	dist  int    // delta distance
}

// Decode decodes the .xz stream in src into dst[:0], writing at most
// cap(dst) bytes, and returns the output. src must hold exactly one
// stream, optionally followed by stream padding (zero bytes, a multiple of
// four). Every header, size, check, the index and the footer are
// verified. Bytes of dst past the returned length may be overwritten.
func Decode(dst, src []byte) ([]byte, error) {
	if len(src) < 12 {
		return nil, corrupt("stream shorter than its header", 0)
	}
	if !bytes.Equal(src[:6], headerMagic) {
		return nil, corrupt("no xz magic", 0)
	}
	flags := src[6:8]
	if crc32IEEE(flags) != binary.LittleEndian.Uint32(src[8:]) {
		return nil, corrupt("stream header CRC32 mismatch", 8)
	}
	if flags[0] != 0 || flags[1]&0xf0 != 0 {
		return nil, unsupported(fmt.Sprintf("stream flags 0x%02x%02x", flags[0], flags[1]), 6)
	}
	check := int(flags[1])
	switch check {
	case checkNone, checkCRC32, checkCRC64, checkSHA256:
	default:
		return nil, unsupported(fmt.Sprintf("check type %d", check), 7)
	}
	out := dst[:0]
	pos := 12
	type record struct{ unpadded, uncompressed uint64 }
	var records []record
	var one [1]record // no allocation for the usual one block
	records = one[:0]
	for {
		if pos >= len(src) {
			return nil, corrupt("stream ends before its index", pos)
		}
		if src[pos] == 0 {
			break // index indicator
		}
		start := len(out)
		n, err := decodeBlock(&out, src, &pos, check)
		if err != nil {
			return nil, err
		}
		records = append(records, record{uint64(n), uint64(len(out) - start)})
	}
	// Index.
	indexStart := pos
	pos++
	count, err := vli(src, &pos)
	if err != nil {
		return nil, err
	}
	if count != uint64(len(records)) {
		return nil, corrupt(fmt.Sprintf("index lists %d blocks, the stream has %d", count, len(records)), indexStart+1)
	}
	for i, r := range records {
		at := pos
		u, err := vli(src, &pos)
		if err != nil {
			return nil, err
		}
		c, err := vli(src, &pos)
		if err != nil {
			return nil, err
		}
		if u != r.unpadded || c != r.uncompressed {
			return nil, corrupt(fmt.Sprintf("index record %d (%d, %d bytes) does not match block (%d, %d)", i, u, c, r.unpadded, r.uncompressed), at)
		}
	}
	for (pos-indexStart)&3 != 0 {
		if pos >= len(src) {
			return nil, corrupt("stream ends in the index padding", pos)
		}
		if src[pos] != 0 {
			return nil, corrupt("non-zero index padding", pos)
		}
		pos++
	}
	if pos+4 > len(src) {
		return nil, corrupt("stream ends in the index CRC32", pos)
	}
	if crc32IEEE(src[indexStart:pos]) != binary.LittleEndian.Uint32(src[pos:]) {
		return nil, corrupt("index CRC32 mismatch", pos)
	}
	pos += 4
	indexSize := pos - indexStart
	// Footer.
	if pos+12 > len(src) {
		return nil, corrupt("stream ends in its footer", pos)
	}
	foot := src[pos : pos+12]
	if !bytes.Equal(foot[10:], footerMagic) {
		return nil, corrupt("no footer magic", pos+10)
	}
	if crc32IEEE(foot[4:10]) != binary.LittleEndian.Uint32(foot) {
		return nil, corrupt("stream footer CRC32 mismatch", pos)
	}
	if back := (int64(binary.LittleEndian.Uint32(foot[4:])) + 1) * 4; back != int64(indexSize) {
		return nil, corrupt(fmt.Sprintf("footer says the index is %d bytes, it is %d", back, indexSize), pos+4)
	}
	if foot[8] != flags[0] || foot[9] != flags[1] {
		return nil, corrupt("footer flags differ from the header's", pos+8)
	}
	pos += 12
	// Stream padding: zeros, a multiple of four bytes. Another stream is
	// not read: mksquashfs writes one per block.
	for i := pos; i < len(src); i++ {
		if src[i] != 0 {
			return nil, corrupt("data after the stream", i)
		}
	}
	if (len(src)-pos)&3 != 0 {
		return nil, corrupt("stream padding not a multiple of four bytes", pos)
	}
	return out, nil
}

// vli reads a variable-length integer (at most 9 bytes, no redundant
// zero byte at the end, below 2^63).
func vli(src []byte, pos *int) (uint64, error) {
	start := *pos
	var v uint64
	for i := 0; i < 9; i++ {
		p := start + i
		if p >= len(src) {
			return 0, corrupt("stream ends in a number", p)
		}
		b := src[p]
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, corrupt("number with a redundant zero byte", p)
			}
			*pos = p + 1
			return v, nil
		}
	}
	return 0, corrupt("number longer than 9 bytes", start)
}

// decodeBlock decodes the block at *pos, appending to *out, moves *pos
// past its check and returns its unpadded size.
func decodeBlock(out *[]byte, src []byte, pos *int, check int) (int, error) {
	start := *pos
	hsize := (int(src[start]) + 1) * 4
	if start+hsize > len(src) {
		return 0, corrupt("stream ends in a block header", start)
	}
	hdr := src[start : start+hsize]
	if crc32IEEE(hdr[:hsize-4]) != binary.LittleEndian.Uint32(hdr[hsize-4:]) {
		return 0, corrupt("block header CRC32 mismatch", start+hsize-4)
	}
	bflags := hdr[1]
	if bflags&0x3c != 0 {
		return 0, unsupported(fmt.Sprintf("block flags 0x%02x", bflags), start+1)
	}
	p := 2
	body := hdr[:hsize-4]
	compSize, uncompSize := int64(-1), int64(-1)
	if bflags&0x40 != 0 {
		v, err := vli(body, &p)
		if err != nil {
			return 0, fmt.Errorf("block header compressed size: %w", err)
		}
		if v == 0 || v > uint64(len(src)) {
			return 0, corrupt(fmt.Sprintf("block compressed size %d", v), start+2)
		}
		compSize = int64(v)
	}
	if bflags&0x80 != 0 {
		v, err := vli(body, &p)
		if err != nil {
			return 0, fmt.Errorf("block header uncompressed size: %w", err)
		}
		if v > uint64(cap(*out)-len(*out)) {
			return 0, fmt.Errorf("xz: block of %d bytes: %w", v, codec.ErrTooLong)
		}
		uncompSize = int64(v)
	}
	nf := int(bflags&3) + 1
	var filters [3]filter
	var dictSize uint32
	for i := range nf {
		at := start + p
		id, err := vli(body, &p)
		if err != nil {
			return 0, fmt.Errorf("block header filter id: %w", err)
		}
		psize, err := vli(body, &p)
		if err != nil {
			return 0, fmt.Errorf("block header filter properties: %w", err)
		}
		if psize > uint64(len(body)-p) {
			return 0, corrupt("filter properties past the block header", start+p)
		}
		props := body[p : p+int(psize)]
		p += int(psize)
		last := i == nf-1
		switch {
		case id == filterLZMA2:
			if !last {
				return 0, corrupt("LZMA2 filter not last in the chain", at)
			}
			if len(props) != 1 {
				return 0, corrupt(fmt.Sprintf("LZMA2 properties of %d bytes", len(props)), at)
			}
			d, err := lzma2.DictSize(props[0])
			if err != nil {
				return 0, corrupt(fmt.Sprintf("LZMA2 dictionary size property %d", props[0]), at)
			}
			dictSize = d
		case last:
			return 0, corrupt(fmt.Sprintf("filter 0x%x last in the chain", id), at)
		case id == filterDelta:
			if len(props) != 1 {
				return 0, corrupt(fmt.Sprintf("delta properties of %d bytes", len(props)), at)
			}
			filters[i] = filter{id: id, dist: int(props[0]) + 1}
		case id >= filterX86 && id <= filterARM64:
			f := filter{id: id}
			switch len(props) {
			case 0:
			case 4:
				f.start = binary.LittleEndian.Uint32(props)
			default:
				return 0, corrupt(fmt.Sprintf("BCJ properties of %d bytes", len(props)), at)
			}
			filters[i] = f
		default:
			return 0, unsupported(fmt.Sprintf("filter 0x%x", id), at)
		}
	}
	for _, b := range body[p:] {
		if b != 0 {
			return 0, corrupt("non-zero block header padding", start+p)
		}
	}
	// Compressed data.
	dataStart := start + hsize
	data := src[dataStart:]
	if compSize >= 0 {
		if compSize > int64(len(data)) {
			return 0, corrupt("stream ends in a block", len(src))
		}
		data = data[:compSize]
	}
	o := *out
	room := o[len(o):cap(o)]
	if uncompSize >= 0 {
		room = room[:0:uncompSize]
	}
	dec, n, err := lzma2.Decode(room, data, dictSize)
	if err != nil {
		if errors.Is(err, codec.ErrTooLong) {
			if uncompSize >= 0 {
				return 0, corrupt(fmt.Sprintf("block decodes to more than the %d bytes its header says", uncompSize), dataStart)
			}
			return 0, fmt.Errorf("xz: %w", codec.ErrTooLong)
		}
		return 0, &dataError{dataStart, err}
	}
	if compSize >= 0 && int64(n) != compSize {
		return 0, corrupt(fmt.Sprintf("block's LZMA2 data ends after %d bytes, its header says %d", n, compSize), dataStart)
	}
	if uncompSize >= 0 && int64(len(dec)) != uncompSize {
		return 0, corrupt(fmt.Sprintf("block decodes to %d bytes, its header says %d", len(dec), uncompSize), dataStart)
	}
	for i := nf - 2; i >= 0; i-- {
		f := &filters[i]
		switch f.id {
		case filterDelta:
			unDelta(dec, f.dist)
		case filterX86:
			unX86(dec, f.start)
		case filterPowerPC:
			unPowerPC(dec, f.start)
		case filterIA64:
			unIA64(dec, f.start)
		case filterARM:
			unARM(dec, f.start)
		case filterARMThumb:
			unARMThumb(dec, f.start)
		case filterSPARC:
			unSPARC(dec, f.start)
		case filterARM64:
			unARM64(dec, f.start)
		}
	}
	*out = o[:len(o)+len(dec)]
	// Block padding, then the check.
	q := dataStart + n
	unpadded := hsize + n + checkSize[check]
	for (q-start)&3 != 0 {
		if q >= len(src) {
			return 0, corrupt("stream ends in block padding", q)
		}
		if src[q] != 0 {
			return 0, corrupt("non-zero block padding", q)
		}
		q++
	}
	cs := checkSize[check]
	if q+cs > len(src) {
		return 0, corrupt("stream ends in the block's check", q)
	}
	sum := src[q : q+cs]
	switch check {
	case checkCRC32:
		if crc32IEEE(dec) != binary.LittleEndian.Uint32(sum) {
			return 0, corrupt("CRC32 of the block's data mismatch", q)
		}
	case checkCRC64:
		if crc64.Checksum(dec, crc64Table()) != binary.LittleEndian.Uint64(sum) {
			return 0, corrupt("CRC64 of the block's data mismatch", q)
		}
	case checkSHA256:
		if h := sha256.Sum256(dec); !bytes.Equal(h[:], sum) {
			return 0, corrupt("SHA-256 of the block's data mismatch", q)
		}
	}
	*pos = q + cs
	return unpadded, nil
}
