// SPDX-License-Identifier: BSD-3-Clause

package xz

import "hash/crc32"

// crc32Small is the size up to which crc32IEEE uses the compiled-in
// table: the headers, index and footer of every stream and the check of
// 8 KiB metadata blocks. hash/crc32 builds an 8 KiB table of its own on
// first use (tens of microseconds, on the path of every mount's first
// metadata block); it takes the larger inputs, the data blocks, which
// its carry-less multiplication code checks several times faster.
const crc32Small = 16 << 10

// crc32IEEE returns the CRC-32 (IEEE) of b, as crc32.ChecksumIEEE.
//
// crc32_table.go is generated: the table is checked against hash/crc32
// by TestCRC32Table, which prints a fresh file when they differ.
func crc32IEEE(b []byte) uint32 {
	if len(b) > crc32Small {
		return crc32.ChecksumIEEE(b)
	}
	t := &crc32Table
	crc := ^uint32(0)
	for len(b) >= 8 {
		crc ^= uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		crc = t[0][b[7]] ^ t[1][b[6]] ^ t[2][b[5]] ^ t[3][b[4]] ^
			t[4][crc>>24] ^ t[5][crc>>16&0xff] ^ t[6][crc>>8&0xff] ^ t[7][crc&0xff]
		b = b[8:]
	}
	for _, c := range b {
		crc = t[0][byte(crc)^c] ^ crc>>8
	}
	return ^crc
}
