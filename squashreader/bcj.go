// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import "encoding/binary"

// BCJ decoders of the xz format (filter ids 0x04..0x09), applied to a whole
// decompressed buffer at once. They follow the xz file format
// specification's reference behaviour: the encoder turned relative branch
// targets into absolute ones; decoding subtracts the position again. Bytes
// too close to the end to hold a whole instruction stay as they are.

const (
	bcjX86      = 0x04
	bcjPowerPC  = 0x05
	bcjIA64     = 0x06
	bcjARM      = 0x07
	bcjARMThumb = 0x08
	bcjSPARC    = 0x09
)

func bcjKnown(id uint64) bool { return id >= bcjX86 && id <= bcjSPARC }

func bcjDecode(id uint64, b []byte, pos uint32) {
	switch id {
	case bcjX86:
		bcjX86Decode(b, pos)
	case bcjPowerPC:
		bcjPowerPCDecode(b, pos)
	case bcjIA64:
		bcjIA64Decode(b, pos)
	case bcjARM:
		bcjARMDecode(b, pos)
	case bcjARMThumb:
		bcjARMThumbDecode(b, pos)
	case bcjSPARC:
		bcjSPARCDecode(b, pos)
	}
}

func x86MSByte(b byte) bool { return b == 0x00 || b == 0xff }

func bcjX86Decode(buf []byte, pos uint32) {
	maskAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskBit := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	if len(buf) <= 4 {
		return
	}
	size := len(buf) - 4
	prevPos := -1
	var prevMask uint32
	for i := 0; i < size; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		d := i - prevPos
		if d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << uint(d-1)) & 7
			if prevMask != 0 {
				b := buf[i+4-int(maskBit[prevMask])]
				if !maskAllowed[prevMask] || x86MSByte(b) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if x86MSByte(buf[i+4]) {
			src := binary.LittleEndian.Uint32(buf[i+1:])
			var dest uint32
			for {
				dest = src - (pos + uint32(i) + 5)
				if prevMask == 0 {
					break
				}
				j := maskBit[prevMask] * 8
				b := byte(dest >> (24 - j))
				if !x86MSByte(b) {
					break
				}
				src = dest ^ (1<<(32-j) - 1)
			}
			dest &= 0x01ffffff
			dest |= 0 - (dest & 0x01000000)
			binary.LittleEndian.PutUint32(buf[i+1:], dest)
			i += 4
		} else {
			prevMask = prevMask<<1 | 1
		}
	}
}

func bcjPowerPCDecode(buf []byte, pos uint32) {
	for i := 0; i+4 <= len(buf); i += 4 {
		instr := binary.BigEndian.Uint32(buf[i:])
		if instr&0xfc000003 == 0x48000001 {
			instr &= 0x03fffffc
			instr -= pos + uint32(i)
			instr &= 0x03fffffc
			instr |= 0x48000001
			binary.BigEndian.PutUint32(buf[i:], instr)
		}
	}
}

func bcjIA64Decode(buf []byte, pos uint32) {
	branchTable := [32]uint32{
		0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0,
		4, 4, 6, 6, 0, 0, 7, 7,
		4, 4, 0, 0, 4, 4, 0, 0,
	}
	for i := 0; i+16 <= len(buf); i += 16 {
		mask := branchTable[buf[i]&0x1f]
		bitPos := uint32(5)
		for slot := uint32(0); slot < 3; slot, bitPos = slot+1, bitPos+41 {
			if (mask>>slot)&1 == 0 {
				continue
			}
			bytePos := int(bitPos >> 3)
			bitRes := bitPos & 7
			var instr uint64
			for j := 0; j < 6; j++ {
				instr |= uint64(buf[i+j+bytePos]) << (8 * j)
			}
			norm := instr >> bitRes
			if (norm>>37)&0x0f == 0x05 && (norm>>9)&0x07 == 0 {
				addr := uint32((norm >> 13) & 0x0fffff)
				addr |= (uint32(norm>>36) & 1) << 20
				addr <<= 4
				addr -= pos + uint32(i)
				addr >>= 4
				norm &^= uint64(0x8fffff) << 13
				norm |= uint64(addr&0x0fffff) << 13
				norm |= uint64(addr&0x100000) << (36 - 20)
				instr &= 1<<bitRes - 1
				instr |= norm << bitRes
				for j := 0; j < 6; j++ {
					buf[i+j+bytePos] = byte(instr >> (8 * j))
				}
			}
		}
	}
}

func bcjARMDecode(buf []byte, pos uint32) {
	for i := 0; i+4 <= len(buf); i += 4 {
		if buf[i+3] == 0xeb {
			addr := uint32(buf[i]) | uint32(buf[i+1])<<8 | uint32(buf[i+2])<<16
			addr <<= 2
			addr -= pos + uint32(i) + 8
			addr >>= 2
			buf[i] = byte(addr)
			buf[i+1] = byte(addr >> 8)
			buf[i+2] = byte(addr >> 16)
		}
	}
}

func bcjARMThumbDecode(buf []byte, pos uint32) {
	if len(buf) < 4 {
		return
	}
	size := len(buf) - 4
	for i := 0; i <= size; i += 2 {
		if buf[i+1]&0xf8 == 0xf0 && buf[i+3]&0xf8 == 0xf8 {
			addr := (uint32(buf[i+1])&7)<<19 | uint32(buf[i])<<11 | (uint32(buf[i+3])&7)<<8 | uint32(buf[i+2])
			addr <<= 1
			addr -= pos + uint32(i) + 4
			addr >>= 1
			buf[i+1] = byte(0xf0 | (addr>>19)&7)
			buf[i] = byte(addr >> 11)
			buf[i+3] = byte(0xf8 | (addr>>8)&7)
			buf[i+2] = byte(addr)
			i += 2
		}
	}
}

func bcjSPARCDecode(buf []byte, pos uint32) {
	for i := 0; i+4 <= len(buf); i += 4 {
		instr := binary.BigEndian.Uint32(buf[i:])
		if instr>>22 == 0x100 || instr>>22 == 0x1ff {
			instr <<= 2
			instr -= pos + uint32(i)
			instr >>= 2
			instr = (0x40000000 - instr&0x400000) | 0x40000000 | instr&0x3fffff
			binary.BigEndian.PutUint32(buf[i:], instr)
		}
	}
}
