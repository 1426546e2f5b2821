// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// Options tunes a Reader. The zero value (or nil) means defaults.
type Options struct {
	// MetadataCacheSize is the number of decompressed metadata blocks (8 KiB
	// each) kept. Default 1024.
	MetadataCacheSize int
	// DataCacheSize is the number of bytes of decompressed data and fragment
	// blocks kept. Default 64 MiB.
	DataCacheSize int64
	// Readahead is the number of blocks decompressed ahead of a sequential
	// reader. Default (0) 2*GOMAXPROCS; negative disables read-ahead.
	Readahead int
	// DirectReads, positive, makes ReadAt decompress each whole block a
	// read covers (from its start, not cached, not being loaded) straight
	// into the caller's buffer without keeping it, and turns read-ahead
	// off. The caller keeps what it read (the kernel's page cache, for a
	// FUSE mount), so the block cache would hold a second copy, bought
	// with an allocation, its page faults and a copy. Default (0): on
	// when the process may use one CPU (GOMAXPROCS 1) and Readahead is 0,
	// where read-ahead has no core to run on; negative: off.
	DirectReads int
	// Logger receives debug messages. Default discards.
	Logger *slog.Logger
}

// Reader reads a squashfs 4.0 image. It is safe for concurrent use.
type Reader struct {
	ra     io.ReaderAt
	size   int64
	closer io.Closer
	sb     Superblock
	log    *slog.Logger
	dec    codec.Decoder
	bs     int64

	ids       []uint32
	fragIndex []uint64 // metadata block offsets of the fragment table
	xattrKV   int64    // start of the xattr key/value metadata
	xattrIDs  uint32
	xattrIdx  []uint64 // metadata block offsets of the xattr id table

	// table bounds: [start, end) of the metadata of each table
	inodeEnd, dirEnd int64

	meta   *cache[int64, *metaBlock]
	data   *cache[blockKey, []byte]
	ra8    *readahead
	direct bool // Options.DirectReads

	bufPool sync.Pool // *[]byte of blockSize, for compressed input

	nDemand, nAhead, nDirect atomic.Uint64 // data and fragment blocks decompressed
}

// ReadStats counts the data and fragment blocks decompressed so far, by
// who decompressed them. A read that finds its block being decompressed
// by read-ahead waits for it and counts in Waited.
type ReadStats struct {
	OnDemand  uint64 // by the read that needed the block
	Direct    uint64 // of those, into the read's own buffer, uncached (Options.DirectReads)
	ReadAhead uint64 // by the read-ahead workers, before a read asked
	Waited    uint64 // reads that waited for a block being decompressed
}

// ReadStats returns the decompression counts so far.
func (r *Reader) ReadStats() ReadStats {
	return ReadStats{OnDemand: r.nDemand.Load(), Direct: r.nDirect.Load(), ReadAhead: r.nAhead.Load(), Waited: r.data.waits.Load()}
}

// metaBlock is one decompressed metadata block.
type metaBlock struct {
	data []byte
	next int64 // offset of the following block
}

// OpenFile opens the image file at path; Close closes it.
func OpenFile(path string, opts *Options) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat image: %w", err)
	}
	r, err := Open(f, st.Size(), opts)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open image %s: %w", path, err)
	}
	r.closer = f
	return r, nil
}

// Open reads the superblock and the small tables of the image in ra, of
// size bytes.
func Open(ra io.ReaderAt, size int64, opts *Options) (*Reader, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MetadataCacheSize == 0 {
		o.MetadataCacheSize = 1024
	}
	if o.DataCacheSize == 0 {
		o.DataCacheSize = 64 << 20
	}
	if o.DirectReads == 0 && o.Readahead == 0 && runtime.GOMAXPROCS(0) == 1 {
		o.DirectReads = 1
	}
	switch {
	case o.DirectReads > 0:
		o.Readahead = -1
	case o.Readahead == 0:
		o.Readahead = 2 * runtime.GOMAXPROCS(0)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var buf [superblockSize]byte
	if size < superblockSize {
		return nil, formatErr(0, "image of %d bytes is smaller than a superblock", size)
	}
	if _, err := ra.ReadAt(buf[:], 0); err != nil {
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	sb, err := parseSuperblock(buf[:], size)
	if err != nil {
		return nil, err
	}
	r := &Reader{ra: ra, size: int64(sb.BytesUsed), sb: sb, log: o.Logger, bs: int64(sb.BlockSize)}
	r.meta = newCache[int64, *metaBlock](int64(max(o.MetadataCacheSize, 1)), func(*metaBlock) int64 { return 1 })
	r.data = newCache[blockKey, []byte](max(o.DataCacheSize, 0), func(b []byte) int64 { return int64(cap(b)) + 64 })
	r.bufPool.New = func() any { b := make([]byte, r.bs); return &b }

	// Table bounds: each metadata table ends before the next table's start.
	r.inodeEnd = int64(sb.DirTableStart)
	r.dirEnd = r.size
	for _, v := range []uint64{sb.FragTableStart, sb.ExportTableStart, sb.IDTableStart, sb.XattrTableStart} {
		if v != invalidTable && v > sb.DirTableStart && int64(v) < r.dirEnd {
			r.dirEnd = int64(v)
		}
	}

	var copts []byte
	if sb.Flags&FlagCompressorOptions != 0 {
		// The options block is a metadata block right after the
		// superblock (mksquashfs stores it uncompressed; decode it with the
		// codec's defaults in case it is not).
		d, err := newDecoder(sb.CompressionID, nil, int(r.bs))
		if err != nil {
			return nil, formatErr(20, "compressor %s: %v", sb.Compression, err)
		}
		r.dec = d
		mb, err := r.readMetaBlock(superblockSize, r.size)
		if err != nil {
			return nil, fmt.Errorf("read compressor options: %w", err)
		}
		copts = mb.data
	}
	d, err := newDecoder(sb.CompressionID, copts, int(r.bs))
	if err != nil {
		return nil, formatErr(superblockSize, "compressor %s: %v", sb.Compression, err)
	}
	r.dec = d
	r.meta = newCache[int64, *metaBlock](int64(max(o.MetadataCacheSize, 1)), func(*metaBlock) int64 { return 1 }) // drop the options block

	if err := r.readTables(); err != nil {
		r.Close()
		return nil, err
	}
	if o.Readahead > 0 {
		r.ra8 = newReadahead(r, o.Readahead)
	}
	r.direct = o.DirectReads > 0
	if _, err := r.Root(); err != nil {
		r.Close()
		return nil, fmt.Errorf("read root inode: %w", err)
	}
	return r, nil
}

func (r *Reader) readTables() error {
	sb := r.sb
	if err := r.readIDs(); err != nil {
		return err
	}
	if sb.FragTableStart != invalidTable && sb.Fragments > 0 {
		idx, err := r.readIndex(int64(sb.FragTableStart), uint64(sb.Fragments)*16, "fragment table")
		if err != nil {
			return err
		}
		r.fragIndex = idx
	} else if sb.Fragments > 0 {
		return formatErr(16, "%d fragments but no fragment table", sb.Fragments)
	}
	if sb.XattrTableStart != invalidTable {
		if err := r.readXattrTable(); err != nil {
			return err
		}
	}
	return nil
}

// Close stops read-ahead workers and closes the file opened by OpenFile.
func (r *Reader) Close() error {
	if r.ra8 != nil {
		r.ra8.close()
	}
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// Superblock returns the decoded superblock.
func (r *Reader) Superblock() Superblock { return r.sb }

// readFull reads exactly len(p) bytes at off, inside the image.
func (r *Reader) readFull(p []byte, off int64, what string) error {
	if off < 0 || off > r.size || int64(len(p)) > r.size-off {
		return formatErr(off, "%s of %d bytes past the end of the image (0x%x)", what, len(p), r.size)
	}
	n, err := r.ra.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %s at 0x%x: %w", what, off, err)
}

// readMetaBlock returns the metadata block at off, which must end before
// end.
func (r *Reader) readMetaBlock(off, end int64) (*metaBlock, error) {
	if off < superblockSize || off+2 > end {
		return nil, formatErr(off, "metadata block outside its table (ends 0x%x)", end)
	}
	return r.meta.get(off, func() (*metaBlock, error) { return r.decodeMetaBlock(off, end, r.readFull) })
}

// decodeMetaBlock reads (with read) and decompresses the metadata block
// at off, which must end before end.
func (r *Reader) decodeMetaBlock(off, end int64, read func(p []byte, off int64, what string) error) (*metaBlock, error) {
	var h [2]byte
	if err := read(h[:], off, "metadata block header"); err != nil {
		return nil, err
	}
	hv := binary.LittleEndian.Uint16(h[:])
	n := int64(hv & 0x7fff)
	if n == 0 || n > metadataSize {
		return nil, formatErr(off, "metadata block of %d bytes", n)
	}
	if off+2+n > end {
		return nil, formatErr(off, "metadata block of %d bytes runs past its table (ends 0x%x)", n, end)
	}
	src := make([]byte, n)
	if err := read(src, off+2, "metadata block"); err != nil {
		return nil, err
	}
	mb := &metaBlock{next: off + 2 + n}
	if hv&0x8000 != 0 {
		mb.data = src
		return mb, nil
	}
	out, err := r.dec.Decode(make([]byte, 0, metadataSize), src)
	if err != nil {
		return nil, formatErr(off, "decompress metadata block: %v", err)
	}
	if len(out) == 0 {
		return nil, formatErr(off, "empty metadata block")
	}
	mb.data = out
	return mb, nil
}

// PrefetchMetadata reads the inode and directory tables from their start
// (at most maxBytes of them) in one sequential read and keeps their
// decompressed blocks in the metadata cache, as many as it holds, so
// that the lookups and listings that follow read and decompress nothing:
// a mounted image's first lookups otherwise each wait for a small read
// and a decompression. It returns how many blocks it cached.
func (r *Reader) PrefetchMetadata(maxBytes int64) (int, error) {
	start := int64(r.sb.InodeTableStart)
	end := min(r.dirEnd, start+max(maxBytes, 0))
	if end <= start {
		return 0, nil
	}
	buf := make([]byte, end-start)
	if err := r.readFull(buf, start, "metadata tables"); err != nil {
		return 0, err
	}
	read := func(p []byte, off int64, what string) error {
		if off < start || off+int64(len(p)) > end {
			return r.readFull(p, off, what)
		}
		copy(p, buf[off-start:])
		return nil
	}
	n := 0
	for off := start; off+2 <= end && int64(n) < r.meta.max; n++ {
		tableEnd := r.inodeEnd
		if off >= r.inodeEnd {
			tableEnd = r.dirEnd
		}
		mb, err := r.meta.get(off, func() (*metaBlock, error) { return r.decodeMetaBlock(off, tableEnd, read) })
		if err != nil {
			return n, err
		}
		off = mb.next
	}
	return n, nil
}

// readIndex reads the array of u64 metadata block offsets that locates a
// table of n bytes, at off.
func (r *Reader) readIndex(off int64, n uint64, what string) ([]uint64, error) {
	count := (n + metadataSize - 1) / metadataSize
	if off < 0 || count > uint64(r.size-off)/8 {
		return nil, formatErr(off, "%s index of %d entries does not fit the image", what, count)
	}
	b := make([]byte, count*8)
	if err := r.readFull(b, off, what+" index"); err != nil {
		return nil, err
	}
	idx := make([]uint64, count)
	for i := range idx {
		idx[i] = binary.LittleEndian.Uint64(b[i*8:])
		if idx[i] < superblockSize || idx[i] >= uint64(off) {
			return nil, formatErr(off+int64(i)*8, "%s block %d at 0x%x outside the table", what, i, idx[i])
		}
	}
	return idx, nil
}

// tableEntry reads entry i of size sz of a table located by idx into p.
func (r *Reader) tableEntry(idx []uint64, end int64, i uint64, p []byte, what string) error {
	per := uint64(metadataSize / len(p))
	bi := i / per
	if bi >= uint64(len(idx)) {
		return formatErr(-1, "%s entry %d beyond the table", what, i)
	}
	pos := metaPos{block: int64(idx[bi]), off: int((i % per) * uint64(len(p)))}
	return r.readMeta(&pos, p, end)
}

func (r *Reader) readIDs() error {
	n := uint64(r.sb.IDCount)
	idx, err := r.readIndex(int64(r.sb.IDTableStart), n*4, "id table")
	if err != nil {
		return err
	}
	r.ids = make([]uint32, n)
	var b [4]byte
	for i := range r.ids {
		if err := r.tableEntry(idx, int64(r.sb.IDTableStart), uint64(i), b[:], "id table"); err != nil {
			return fmt.Errorf("read id %d: %w", i, err)
		}
		r.ids[i] = binary.LittleEndian.Uint32(b[:])
	}
	return nil
}

// metaPos is a position in a metadata table: the disk offset of a block
// and an offset into its decompressed data.
type metaPos struct {
	block int64
	off   int
}

// readMeta reads len(p) bytes at pos, moving on through following blocks,
// none of which may reach end.
func (r *Reader) readMeta(pos *metaPos, p []byte, end int64) error {
	for len(p) > 0 {
		mb, err := r.readMetaBlock(pos.block, end)
		if err != nil {
			return err
		}
		if pos.off > len(mb.data) {
			return formatErr(pos.block, "offset %d beyond metadata block of %d bytes", pos.off, len(mb.data))
		}
		if pos.off == len(mb.data) {
			pos.block, pos.off = mb.next, 0
			continue
		}
		n := copy(p, mb.data[pos.off:])
		p = p[n:]
		pos.off += n
	}
	return nil
}

// skipMeta moves pos forward by n bytes.
func (r *Reader) skipMeta(pos *metaPos, n int64, end int64) error {
	for n > 0 {
		mb, err := r.readMetaBlock(pos.block, end)
		if err != nil {
			return err
		}
		if pos.off > len(mb.data) {
			return formatErr(pos.block, "offset %d beyond metadata block of %d bytes", pos.off, len(mb.data))
		}
		left := int64(len(mb.data) - pos.off)
		if n < left {
			pos.off += int(n)
			return nil
		}
		n -= left
		pos.block, pos.off = mb.next, 0
	}
	return nil
}
