// SPDX-License-Identifier: BSD-3-Clause

package xz

import "encoding/binary"

// The branch/call/jump (BCJ) filters turn the absolute addresses an
// encoder wrote into branch instructions back into relative ones. Each
// works on a whole block's output at once (its position in the stream is
// start plus the index), which gives what the streaming filters give: the
// bytes after the last whole instruction are left as they are.

// unDelta undoes the delta filter: every byte was stored as its
// difference from the byte dist before it.
func unDelta(b []byte, dist int) {
	for i := dist; i < len(b); i++ {
		b[i] += b[i-dist]
	}
}

// unX86 undoes the x86 filter on CALL (E8) and JMP (E9) rel32 operands.
// An opcode byte found inside the operand of one of the three previous
// candidates is treated as the encoder treated it (prevMask remembers
// which of the previous bytes were candidates).
func unX86(b []byte, start uint32) {
	if len(b) < 5 {
		return
	}
	isMS := func(c byte) bool { return c == 0 || c == 0xff }
	allowed := [8]bool{true, true, true, false, true, false, false, false}
	bitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	prevPos := -1
	var prevMask uint32
	end := len(b) - 4
	for i := 0; i < end; i++ {
		if b[i]&0xfe != 0xe8 {
			continue
		}
		gap := i - prevPos
		if gap > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (gap - 1)) & 7
			if prevMask != 0 {
				c := b[i+4-int(bitNum[prevMask])]
				if !allowed[prevMask] || isMS(c) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !isMS(b[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(b[i+1:])
		var dest uint32
		for {
			dest = src - (start + uint32(i) + 5)
			if prevMask == 0 {
				break
			}
			j := bitNum[prevMask] * 8
			if !isMS(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= -(dest & 0x01000000)
		binary.LittleEndian.PutUint32(b[i+1:], dest)
		i += 4
	}
}

// unPowerPC undoes the filter on big-endian "bl" (branch with link,
// absolute bit clear).
func unPowerPC(b []byte, start uint32) {
	for i := 0; i+4 <= len(b); i += 4 {
		if b[i]>>2 != 0x12 || b[i+3]&3 != 1 {
			continue
		}
		src := binary.BigEndian.Uint32(b[i:]) & 0x03fffffc
		dest := src - (start + uint32(i))
		binary.BigEndian.PutUint32(b[i:], 0x48000000|dest&0x03fffffc|1)
	}
}

// unIA64 undoes the filter on the branch slots of IA-64 instruction
// bundles (16 bytes; the template in the low five bits says which of the
// three 41-bit slots may hold a branch).
func unIA64(b []byte, start uint32) {
	branch := [32]byte{16: 4, 17: 4, 18: 6, 19: 6, 22: 7, 23: 7, 24: 4, 25: 4, 28: 4, 29: 4}
	for i := 0; i+16 <= len(b); i += 16 {
		mask := branch[b[i]&0x1f]
		for slot, bitPos := 0, 5; slot < 3; slot, bitPos = slot+1, bitPos+41 {
			if mask>>slot&1 == 0 {
				continue
			}
			bytePos, bitRes := bitPos>>3, uint(bitPos&7)
			var instr uint64
			for j := range 6 {
				instr |= uint64(b[i+bytePos+j]) << (8 * j)
			}
			norm := instr >> bitRes
			if norm>>37&0xf != 5 || norm>>9&7 != 0 {
				continue
			}
			addr := uint32(norm>>13) & 0x0fffff
			addr |= uint32(norm>>36) & 1 << 20
			addr <<= 4
			addr -= start + uint32(i)
			addr >>= 4
			norm &^= 0x8fffff << 13
			norm |= uint64(addr&0x0fffff) << 13
			norm |= uint64(addr&0x100000) << (36 - 20)
			instr &= 1<<bitRes - 1
			instr |= norm << bitRes
			for j := range 6 {
				b[i+bytePos+j] = byte(instr >> (8 * j))
			}
		}
	}
}

// unARM undoes the filter on little-endian ARM "BL" instructions.
func unARM(b []byte, start uint32) {
	for i := 0; i+4 <= len(b); i += 4 {
		if b[i+3] != 0xeb {
			continue
		}
		src := (uint32(b[i+2])<<16 | uint32(b[i+1])<<8 | uint32(b[i])) << 2
		dest := (src - (start + uint32(i) + 8)) >> 2
		b[i], b[i+1], b[i+2] = byte(dest), byte(dest>>8), byte(dest>>16)
	}
}

// unARMThumb undoes the filter on Thumb "BL" instruction pairs.
func unARMThumb(b []byte, start uint32) {
	for i := 0; i+4 <= len(b); i += 2 {
		if b[i+1]&0xf8 != 0xf0 || b[i+3]&0xf8 != 0xf8 {
			continue
		}
		src := (uint32(b[i+1])&7)<<19 | uint32(b[i])<<11 | (uint32(b[i+3])&7)<<8 | uint32(b[i+2])
		src <<= 1
		dest := (src - (start + uint32(i) + 4)) >> 1
		b[i+1] = 0xf0 | byte(dest>>19)&7
		b[i] = byte(dest >> 11)
		b[i+3] = 0xf8 | byte(dest>>8)&7
		b[i+2] = byte(dest)
		i += 2
	}
}

// unSPARC undoes the filter on SPARC "call" instructions.
func unSPARC(b []byte, start uint32) {
	for i := 0; i+4 <= len(b); i += 4 {
		if !(b[i] == 0x40 && b[i+1]&0xc0 == 0) && !(b[i] == 0x7f && b[i+1]&0xc0 == 0xc0) {
			continue
		}
		src := binary.BigEndian.Uint32(b[i:]) << 2
		dest := (src - (start + uint32(i))) >> 2
		dest = (-(dest>>22&1)<<22)&0x3fffffff | dest&0x3fffff | 0x40000000
		binary.BigEndian.PutUint32(b[i:], dest)
	}
}

// unARM64 undoes the filter on ARM64 "BL" and "ADRP" instructions (the
// latter only for addresses within +-512 MiB, as the encoder does).
func unARM64(b []byte, start uint32) {
	for i := 0; i+4 <= len(b); i += 4 {
		pc := start + uint32(i)
		ins := binary.LittleEndian.Uint32(b[i:])
		switch {
		case ins>>26 == 0x25: // BL
			ins = 0x94000000 | (ins-pc>>2)&0x03ffffff
		case ins&0x9f000000 == 0x90000000: // ADRP
			src := ins>>29&3 | ins>>3&0x001ffffc
			if (src+0x00020000)&0x001c0000 != 0 {
				continue
			}
			dest := src - pc>>12
			ins &= 0x9000001f
			ins |= (dest & 3) << 29
			ins |= (dest & 0x0003fffc) << 3
			ins |= -(dest & 0x00020000) & 0x00e00000
		default:
			continue
		}
		binary.LittleEndian.PutUint32(b[i:], ins)
	}
}
