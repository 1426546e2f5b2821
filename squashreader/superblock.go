// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"encoding/binary"
	"time"
)

const (
	superblockSize = 96
	magic          = 0x73717368
	metadataSize   = 8192
	noFragment     = 0xffffffff
	invalidTable   = 0xffffffffffffffff
)

// Superblock flags.
const (
	FlagUncompressedInodes    = 0x0001
	FlagUncompressedData      = 0x0002
	FlagCheck                 = 0x0004
	FlagUncompressedFragments = 0x0008
	FlagNoFragments           = 0x0010
	FlagAlwaysFragments       = 0x0020
	FlagDuplicates            = 0x0040
	FlagExportable            = 0x0080
	FlagUncompressedXattrs    = 0x0100
	FlagNoXattrs              = 0x0200
	FlagCompressorOptions     = 0x0400
	FlagUncompressedIDs       = 0x0800
)

// Superblock is the decoded squashfs superblock.
type Superblock struct {
	Inodes           uint32
	ModTime          time.Time
	BlockSize        uint32
	Fragments        uint32
	CompressionID    uint16
	Compression      string // "gzip", "lzma", "lzo", "xz", "lz4", "zstd"
	BlockLog         uint16
	Flags            uint16
	IDCount          uint16
	VersionMajor     uint16
	VersionMinor     uint16
	RootInode        InodeRef
	BytesUsed        uint64
	IDTableStart     uint64
	XattrTableStart  uint64
	InodeTableStart  uint64
	DirTableStart    uint64
	FragTableStart   uint64
	ExportTableStart uint64
}

// Compression ids, the superblock's compression field
// (SQUASHFS_COMPRESSION_ID and squashfs-tools' *_COMPRESSION).
const (
	compressionGzip uint16 = 1 // zlib streams
	compressionLZMA uint16 = 2 // legacy LZMA: named, not supported
	compressionLZO  uint16 = 3
	compressionXZ   uint16 = 4
	compressionLZ4  uint16 = 5
	compressionZstd uint16 = 6
)

var compressionNames = map[uint16]string{
	compressionGzip: "gzip",
	compressionLZMA: "lzma",
	compressionLZO:  "lzo",
	compressionXZ:   "xz",
	compressionLZ4:  "lz4",
	compressionZstd: "zstd",
}

func parseSuperblock(b []byte, size int64) (Superblock, error) {
	le := binary.LittleEndian
	var s Superblock
	if len(b) < superblockSize {
		return s, formatErr(0, "image of %d bytes is smaller than a superblock", len(b))
	}
	if m := le.Uint32(b[0:]); m != magic {
		return s, formatErr(0, "bad magic 0x%08x", m)
	}
	s.Inodes = le.Uint32(b[4:])
	s.ModTime = time.Unix(int64(le.Uint32(b[8:])), 0)
	s.BlockSize = le.Uint32(b[12:])
	s.Fragments = le.Uint32(b[16:])
	s.CompressionID = le.Uint16(b[20:])
	s.BlockLog = le.Uint16(b[22:])
	s.Flags = le.Uint16(b[24:])
	s.IDCount = le.Uint16(b[26:])
	s.VersionMajor = le.Uint16(b[28:])
	s.VersionMinor = le.Uint16(b[30:])
	s.RootInode = InodeRef(le.Uint64(b[32:]))
	s.BytesUsed = le.Uint64(b[40:])
	s.IDTableStart = le.Uint64(b[48:])
	s.XattrTableStart = le.Uint64(b[56:])
	s.InodeTableStart = le.Uint64(b[64:])
	s.DirTableStart = le.Uint64(b[72:])
	s.FragTableStart = le.Uint64(b[80:])
	s.ExportTableStart = le.Uint64(b[88:])

	if s.VersionMajor != 4 || s.VersionMinor != 0 {
		return s, formatErr(28, "unsupported squashfs version %d.%d", s.VersionMajor, s.VersionMinor)
	}
	if s.BlockSize < 4096 || s.BlockSize > 1<<20 || s.BlockSize&(s.BlockSize-1) != 0 {
		return s, formatErr(12, "bad block size %d", s.BlockSize)
	}
	if 1<<s.BlockLog != s.BlockSize {
		return s, formatErr(22, "block log %d does not match block size %d", s.BlockLog, s.BlockSize)
	}
	name, ok := compressionNames[s.CompressionID]
	if !ok {
		return s, formatErr(20, "unknown compression id %d", s.CompressionID)
	}
	s.Compression = name
	if s.BytesUsed > uint64(size) || s.BytesUsed < superblockSize {
		return s, formatErr(40, "bytes used %d does not fit an image of %d bytes", s.BytesUsed, size)
	}
	if s.IDCount == 0 {
		return s, formatErr(26, "id table is empty")
	}
	end := s.BytesUsed
	check := func(off int64, name string, v uint64, optional bool) error {
		if optional && v == invalidTable {
			return nil
		}
		if v < superblockSize || v >= end {
			return formatErr(off, "%s start 0x%x outside the image (bytes used 0x%x)", name, v, end)
		}
		return nil
	}
	for _, c := range []struct {
		off      int64
		name     string
		v        uint64
		optional bool
	}{
		{48, "id table", s.IDTableStart, false},
		{56, "xattr id table", s.XattrTableStart, true},
		{64, "inode table", s.InodeTableStart, false},
		{72, "directory table", s.DirTableStart, false},
		{80, "fragment table", s.FragTableStart, true},
		{88, "export table", s.ExportTableStart, true},
	} {
		if err := check(c.off, c.name, c.v, c.optional); err != nil {
			return s, err
		}
	}
	if s.DirTableStart < s.InodeTableStart {
		return s, formatErr(72, "directory table 0x%x before inode table 0x%x", s.DirTableStart, s.InodeTableStart)
	}
	return s, nil
}
