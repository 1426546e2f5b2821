// SPDX-License-Identifier: BSD-3-Clause

// Package squashreader reads squashfs 4.0 images, as mksquashfs writes
// them, from an io.ReaderAt. It knows nothing of FUSE.
//
// # API
//
// The inode-level API serves a FUSE server: Root, Inode (by InodeRef),
// Lookup, ReadDir with resumable cookies (DirEntry.Next), ReadAt, Readlink,
// Xattrs, Xattr and XattrSize. Inode carries the attributes the kernel's
// driver reports (Ino, UnixMode, Nlink, UID, GID, Size, Mtime, Rdev) and
// the fields it derives others from: Sparse (a file's sparse bytes,
// subtracted for st_blocks), Parent (a directory's parent inode number,
// the d_ino of its ".."); XattrSize is the xattr id entry's size, added to
// st_blocks.
//
// The io/fs view: *Reader is fs.FS, fs.StatFS, fs.ReadFileFS and
// fs.ReadLinkFS; Reader.FS() returns an FS that adds fs.ReadDirFS (a
// ReadDir(name) method on Reader would clash with the inode-level
// ReadDir). Open and Stat follow symlinks inside the image (absolute
// targets resolve from the image root, at most 40 hops); Lstat and
// ReadLink do not. fs.FileInfo.Sys() returns *Inode. Devices, fifos and
// sockets read as empty files.
//
// A Reader is safe for concurrent use.
//
// # Format notes
//
//   - Superblock (96 bytes) at offset 0, then an optional compressor
//     options metadata block; tables follow the data: inode table,
//     directory table, fragment table, export table, id table, xattr
//     tables. Each lookup table (ids, fragments, xattr ids) is a list of
//     metadata blocks located by an array of u64 offsets at the table's
//     start field.
//   - Metadata blocks: u16 header (bit 15: stored uncompressed; low 15
//     bits: size on disk), at most 8 KiB decompressed. An InodeRef is the
//     block's offset from the inode table start << 16 | offset in block.
//   - Data block size words: bit 24 set = stored uncompressed, low 24 bits
//     = size on disk, 0 = sparse block (zeros). A file has ceil(size/bs)
//     blocks, or floor(size/bs) and a tail in a fragment block.
//   - Directories: runs of a 12-byte header (count-1, inode block, base
//     inode number) and up to 256 entries (offset, signed inode-number
//     delta, basic type, name size-1, name), sorted by name. The listing
//     size is the inode's file_size - 3. Large directories carry an index
//     (listing position, metadata block, first name) used by Lookup and
//     by ReadDir to resume. A DirEntry.Next cookie is header position << 32
//     | position after the entry.
//   - Device numbers are stored in the kernel's new_encode_dev form; Rdev
//     keeps it, Major and Minor decode it as new_decode_dev does.
//   - xattrs: key type 0/1/2 = user/trusted/security, 0x100 = value stored
//     out of line (an 8-byte reference to a value shared by several
//     inodes).
//   - xz: one stream per block, LZMA2 after an optional BCJ filter
//     (x86, PowerPC, IA-64, ARM, ARM-Thumb, SPARC), decoded buffer to
//     buffer by our own internal/xz and internal/lzma2 (the output
//     buffer is the dictionary). gzip is zlib, decoded by our own
//     internal/inflate; lz4 (the block format) by our own internal/lz4,
//     with liblz4's acceptance rules; zstd by our own internal/zstd, with
//     libzstd's; lzo by anchore/go-lzo (lzo1x). The legacy lzma compressor
//     (id 2) is not supported.
//
// # Safety rules
//
// The image is untrusted input:
//
//   - Every offset, index, count and size read from the image is checked
//     before use: table starts against the image size, metadata and inode
//     references against their table, ids, fragments and xattr ids against
//     their counts (an index equal to the count is rejected), fragment
//     offset plus tail length against the decompressed fragment, block
//     sizes against the block size, data blocks against the image end,
//     directory header counts (<= 256) and name sizes against the listing.
//   - Every problem is a *FormatError (what and where; it wraps ErrFormat).
//     Decoder panics are recovered and reported as format errors.
//   - Allocation never follows a claimed size beyond what the image can
//     hold: lookup-table index arrays must fit in the file, block lists
//     are read in chunks as the inode table delivers them, symlink targets
//     are at most 4096 bytes, xattr values 64 KiB, decompression writes
//     into a buffer of the expected size (a block longer than that is an
//     error, a data block shorter than expected too), ReadFile grows with
//     the data read.
//   - Names returned by ReadDir and Lookup are never empty, ".", "..", nor
//     contain '/' or NUL, and are strictly increasing (an out-of-order or
//     duplicate entry is an error, which also keeps Lookup and ReadDir
//     consistent).
//   - Path resolution detects a directory that contains one of its
//     ancestors (a loop) and bounds symlink hops and path depth, so walks
//     of the io/fs view end; inode-level walkers must track their own
//     ancestors (inode numbers of directories are unique in valid images).
//   - Bytes come only from inside decompressed blocks: reads are bounded
//     by the decompressed block, never by the claimed file size.
//
// # Caches and read-ahead
//
// Decompressed metadata blocks (Options.MetadataCacheSize, default 1024
// blocks = 8 MiB) and data and fragment blocks (Options.DataCacheSize,
// default 64 MiB) are kept in LRU caches; concurrent requests for a block
// being decompressed wait for that one decompression (singleflight). When
// a read of a file continues the previous one, the next Options.Readahead
// blocks (default 2*GOMAXPROCS) are decompressed by a pool of GOMAXPROCS
// workers into the data cache, so a cold sequential read uses every core.
// Reader.ReadStats counts the blocks decompressed on demand and ahead, and
// the reads that waited for a block being decompressed: a block is never
// decompressed twice while it stays cached.
//
// # Tests
//
// The tests build images with mksquashfs from generated trees
// (internal/sqtest) with every compressor, option and block size and
// compare the reader with unsquashfs -lln, unsquashfs -d and the kernel's
// squashfs driver. testdata/make.sh makes the small committed fixtures
// that seed the fuzz targets FuzzOpen and FuzzWalk. The codecs' tests,
// fuzzing and speed: docs/codecs.md.
package squashreader
