// SPDX-License-Identifier: BSD-3-Clause

package inflate

import "encoding/binary"

const adlerMod = 65521

// adler32 returns the Adler-32 checksum (RFC 1950) of b. hash/adler32
// adds one byte at a time; this adds 16 at a time with SWAR sums (see
// adler16) and takes the modulus once per 64 KiB.
func adler32(b []byte) uint32 {
	s1, s2 := uint64(1), uint64(0)
	for len(b) > 0 {
		// 64 KiB per round keeps s2 far below 2^64: it grows by at most
		// 255*n*n/2 + n*s1 with s1 < 2^24.
		chunk := b[:min(len(b), 1<<16)]
		b = b[len(chunk):]
		var s1sum, wsum uint64 // s1 before each 16 bytes; weighted byte sums
		for len(chunk) >= 16 {
			sum, w := adler16(binary.LittleEndian.Uint64(chunk), binary.LittleEndian.Uint64(chunk[8:]))
			s1sum += s1
			wsum += w
			s1 += sum
			chunk = chunk[16:]
		}
		s2 += 16*s1sum + wsum
		for _, c := range chunk {
			s1 += uint64(c)
			s2 += s1
		}
		s1 %= adlerMod
		s2 %= adlerMod
	}
	return uint32(s2<<16 | s1)
}

// adler16 returns, for the 16 bytes c0..c15 of v0 and v1 (c0 first in
// the stream), their sum and the weighted sum 16*c0 + 15*c1 + ... + 1*c15:
// what the 16 steps s1 += c; s2 += s1 add to s2 beyond 16*s1. The bytes
// are split into 16-bit lanes (even and odd bytes) and each multiply by a
// constant adds the lanes, with their weights, into the top lane; no lane
// overflows (at most 255*136 = 34680).
func adler16(v0, v1 uint64) (sum, weighted uint64) {
	const lanes = 0x00ff00ff00ff00ff
	e0, o0 := v0&lanes, v0>>8&lanes
	e1, o1 := v1&lanes, v1>>8&lanes
	sum = (e0 + o0 + e1 + o1) * 0x0001000100010001 >> 48
	weighted = (e0*(16<<48|14<<32|12<<16|10) + o0*(15<<48|13<<32|11<<16|9) +
		e1*(8<<48|6<<32|4<<16|2) + o1*(7<<48|5<<32|3<<16|1)) >> 48
	return sum, weighted
}
