// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"encoding/binary"
	"math/bits"
)

// XXH64 (seed 0), for the content checksum: its low 4 bytes end a frame
// whose header sets the checksum flag.

const (
	prime64_1 uint64 = 11400714785074694791
	prime64_2 uint64 = 14029467366897019727
	prime64_3 uint64 = 1609587929392839161
	prime64_4 uint64 = 9650029242287828579
	prime64_5 uint64 = 2870177450012600261
)

func xxhRound(acc, in uint64) uint64 {
	acc += in * prime64_2
	acc = bits.RotateLeft64(acc, 31)
	return acc * prime64_1
}

func xxhMerge(acc, v uint64) uint64 {
	acc ^= xxhRound(0, v)
	return acc*prime64_1 + prime64_4
}

// xxh64 returns the XXH64 hash of b with seed 0.
func xxh64(b []byte) uint64 {
	n := len(b)
	var h uint64
	if n >= 32 {
		p1 := prime64_1
		v1 := p1 + prime64_2
		v2 := prime64_2
		v3 := uint64(0)
		v4 := -p1
		for len(b) >= 32 {
			v1 = xxhRound(v1, binary.LittleEndian.Uint64(b[0:8]))
			v2 = xxhRound(v2, binary.LittleEndian.Uint64(b[8:16]))
			v3 = xxhRound(v3, binary.LittleEndian.Uint64(b[16:24]))
			v4 = xxhRound(v4, binary.LittleEndian.Uint64(b[24:32]))
			b = b[32:]
		}
		h = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) + bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		h = xxhMerge(h, v1)
		h = xxhMerge(h, v2)
		h = xxhMerge(h, v3)
		h = xxhMerge(h, v4)
	} else {
		h = prime64_5
	}
	h += uint64(n)
	for len(b) >= 8 {
		h ^= xxhRound(0, binary.LittleEndian.Uint64(b))
		h = bits.RotateLeft64(h, 27)*prime64_1 + prime64_4
		b = b[8:]
	}
	if len(b) >= 4 {
		h ^= uint64(binary.LittleEndian.Uint32(b)) * prime64_1
		h = bits.RotateLeft64(h, 23)*prime64_2 + prime64_3
		b = b[4:]
	}
	for _, c := range b {
		h ^= uint64(c) * prime64_5
		h = bits.RotateLeft64(h, 11) * prime64_1
	}
	h ^= h >> 33
	h *= prime64_2
	h ^= h >> 29
	h *= prime64_3
	h ^= h >> 32
	return h
}
