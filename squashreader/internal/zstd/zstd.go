// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"encoding/binary"
	"fmt"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

func corrupt(off int, format string, args ...any) error {
	return fmt.Errorf("zstd: %w: %s at offset %d", codec.ErrCorrupt, fmt.Sprintf(format, args...), off)
}

const (
	frameMagic    = 0xFD2FB528
	skipMagicMask = 0xFFFFFFF0
	skipMagic     = 0x184D2A50
	maxBlockSize  = 128 << 10
	maxWindowLog  = 31
	// maxBlockOut is the most a compressed block may decode to: libzstd
	// 1.5.4 allows 32 bytes more than the 128 KiB of RFC 8878 when the
	// output buffer has room (its literals then sit 32 bytes after the
	// block's 128 KiB, and they are the limit).
	maxBlockOut = maxBlockSize + 32
)

// What limits a block's output.
const (
	limCap   = iota // cap(dst)
	limFCS          // the frame content size
	limBlock        // maxBlockOut
)

// decoder is the per-call state, kept in idle between calls.
type decoder struct {
	huf     [1 << maxHufLog]uint16 // Huffman table: symbol | bits<<8
	hufLog  uint8
	hufOK   bool // a Huffman table was read in this frame
	fseOK   bool // sequence tables were set in this frame
	llTab   [1 << maxLLLog]seqEntry
	mlTab   [1 << maxMLLog]seqEntry
	ofTab   [1 << maxOFLog]seqEntry
	llLog   uint8
	mlLog   uint8
	ofLog   uint8
	rep     [3]uint32
	weights [256]uint8
	norm    [256]int16
	wtab    [1 << 6]fseEntry
	spread  [1 << maxLLLog]uint8
	lits    [maxBlockSize + 16]byte
	seqs    [seqBatch]seq
	st      seqState
	pad     [8]byte
}

// idle holds decoders between calls. A decoder is 150 KiB: a sync.Pool
// would drop them at every garbage collection, and a server decoding
// 128 KiB blocks into fresh buffers collects often, so each collection
// would cost a new decoder per goroutine, zeroed. A channel keeps up to
// its capacity; callers beyond it allocate and drop theirs.
var idle = make(chan *decoder, 16)

func getDecoder() *decoder {
	select {
	case d := <-idle:
		return d
	default:
		return new(decoder)
	}
}

func putDecoder(d *decoder) {
	select {
	case idle <- d:
	default:
	}
}

// Decode decodes the zstd frames in src (zstd frames and skippable frames,
// one after another) into dst[:0], writing at most cap(dst) bytes, and
// returns the output. Errors wrap codec.ErrCorrupt or codec.ErrTooLong;
// the output returned with an error is what was decoded before it. Bytes
// of dst past the returned length may be overwritten.
func Decode(dst, src []byte) ([]byte, error) {
	defaultOnce.Do(buildDefaults)
	d := getDecoder()
	defer putDecoder(d)
	out := dst[:cap(dst)]
	op := 0
	ip := 0
	for ip < len(src) {
		if len(src)-ip < 4 {
			return out[:op], corrupt(ip, "%d bytes after the last frame", len(src)-ip)
		}
		magic := binary.LittleEndian.Uint32(src[ip:])
		if magic&skipMagicMask == skipMagic {
			if len(src)-ip < 8 {
				return out[:op], corrupt(ip, "truncated skippable frame header")
			}
			size := uint64(binary.LittleEndian.Uint32(src[ip+4:]))
			if size > uint64(len(src)-ip-8) {
				return out[:op], corrupt(ip, "truncated skippable frame")
			}
			ip += 8 + int(size)
			continue
		}
		if magic != frameMagic {
			return out[:op], corrupt(ip, "bad magic number %#08x", magic)
		}
		var err error
		ip, op, err = d.frame(out, op, src, ip)
		if err != nil {
			return out[:op], err
		}
	}
	return out[:op], nil
}

// frame decodes the frame at src[ip:] (its magic number checked) into
// out[op:], returning the new positions.
func (d *decoder) frame(out []byte, op int, src []byte, ip int) (int, int, error) {
	start := ip
	if len(src)-ip < 6 {
		return ip, op, corrupt(ip, "truncated frame header")
	}
	fhd := src[ip+4]
	ip += 5
	if fhd&8 != 0 {
		return ip, op, corrupt(ip-1, "reserved bit set in the frame header descriptor")
	}
	single := fhd&0x20 != 0
	checksum := fhd&4 != 0
	didSize := [4]int{0, 1, 2, 4}[fhd&3]
	fcsFlag := fhd >> 6
	fcsSize := [4]int{0, 2, 4, 8}[fcsFlag]
	if fcsFlag == 0 && single {
		fcsSize = 1
	}
	hdrSize := didSize + fcsSize
	if !single {
		hdrSize++
	}
	if len(src)-ip < hdrSize {
		return ip, op, corrupt(start, "truncated frame header")
	}
	if !single {
		// Only the window log is checked: the window size bounds
		// nothing here, as in libzstd's one-shot decoder (offsets are
		// held to the frame's start, blocks to 128 KiB).
		if wlog := uint(src[ip]>>3) + 10; wlog > maxWindowLog {
			return ip, op, corrupt(ip, "window log %d > %d", wlog, maxWindowLog)
		}
		ip++
	}
	var did uint32
	switch didSize {
	case 1:
		did = uint32(src[ip])
	case 2:
		did = uint32(binary.LittleEndian.Uint16(src[ip:]))
	case 4:
		did = binary.LittleEndian.Uint32(src[ip:])
	}
	if did != 0 {
		return ip, op, corrupt(ip, "dictionaries not supported (dictionary ID %d)", did)
	}
	ip += didSize
	fcs := uint64(0)
	hasFCS := fcsSize > 0
	switch fcsSize {
	case 1:
		fcs = uint64(src[ip])
	case 2:
		fcs = uint64(binary.LittleEndian.Uint16(src[ip:])) + 256
	case 4:
		fcs = uint64(binary.LittleEndian.Uint32(src[ip:]))
	case 8:
		fcs = binary.LittleEndian.Uint64(src[ip:])
	}
	ip += fcsSize
	frameStart := op
	limit := len(out)
	kind := limCap
	if hasFCS {
		kind = limFCS
		if fcs > uint64(len(out)-op) {
			return ip, op, fmt.Errorf("zstd: %w: frame at offset %d has %d bytes, %d bytes of room", codec.ErrTooLong, start, fcs, len(out)-op)
		}
		limit = op + int(fcs)
	}
	d.hufOK = false
	d.fseOK = false
	d.rep = [3]uint32{1, 4, 8}

	for {
		if len(src)-ip < 3 {
			return ip, op, corrupt(ip, "truncated block header")
		}
		bh := uint32(src[ip]) | uint32(src[ip+1])<<8 | uint32(src[ip+2])<<16
		last := bh&1 != 0
		btype := (bh >> 1) & 3
		size := int(bh >> 3)
		bstart := ip
		ip += 3
		switch btype {
		case 0: // raw
			if size > len(src)-ip {
				return ip, op, corrupt(bstart, "truncated raw block")
			}
			if size > limit-op {
				return ip, op, outErr(kind, bstart, size, limit-op)
			}
			copy(out[op:], src[ip:ip+size])
			op += size
			ip += size
		case 1: // RLE
			if len(src)-ip < 1 {
				return ip, op, corrupt(bstart, "truncated RLE block")
			}
			if size > limit-op {
				return ip, op, outErr(kind, bstart, size, limit-op)
			}
			b := src[ip]
			t := out[op : op+size]
			for i := range t {
				t[i] = b
			}
			op += size
			ip++
		case 2: // compressed
			if size > len(src)-ip {
				return ip, op, corrupt(bstart, "truncated compressed block")
			}
			if size > maxBlockSize {
				return ip, op, corrupt(bstart, "compressed block of %d bytes", size)
			}
			var err error
			op, err = d.block(out[:limit], op, frameStart, src[ip:ip+size], ip, kind)
			if err != nil {
				return ip, op, err
			}
			ip += size
		default:
			return ip, op, corrupt(bstart, "reserved block type")
		}
		if last {
			break
		}
	}
	if hasFCS && op != limit {
		return ip, op, corrupt(ip, "frame content size %d, decoded %d bytes", fcs, op-frameStart)
	}
	if checksum {
		if len(src)-ip < 4 {
			return ip, op, corrupt(ip, "truncated checksum")
		}
		want := binary.LittleEndian.Uint32(src[ip:])
		if got := uint32(xxh64(out[frameStart:op])); got != want {
			return ip, op, corrupt(ip, "checksum %#08x, want %#08x", got, want)
		}
		ip += 4
	}
	return ip, op, nil
}
