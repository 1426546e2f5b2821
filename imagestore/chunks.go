// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
)

// The chunk list: <id>.chunks beside <id>.squashfs. It holds the sha256 of
// every fixed-size chunk of the squashfs so a node can verify any piece of
// the image it reads (package nodecache) without reading the whole file.
// docs/image-store.md, "Chunk list", describes the format.

// Chunk list limits.
const (
	// ChunkListVersion is the only version ParseChunkList accepts.
	ChunkListVersion = 1
	// MinChunkSize and MaxChunkSize bound the chunk size, a power of two.
	MinChunkSize = 4 << 10
	MaxChunkSize = 16 << 20
	// DefaultChunkSize is the chunk size the gateway uses unless configured
	// otherwise (chosen by measurement, see docs/image-store.md).
	DefaultChunkSize = 256 << 10
	// MaxChunkListSize bounds a chunk list file (about 1M chunks); a
	// longer one is refused unread.
	MaxChunkListSize = 64 << 20
)

// ErrChunkList is wrapped by every error about a malformed chunk list.
var ErrChunkList = errors.New("invalid chunk list")

const chunkMagic = "shifter-chunks"

// ChunkList is the parsed chunk list of one image file.
type ChunkList struct {
	ChunkSize int64               // bytes per chunk (the last one may be shorter)
	Size      int64               // bytes of the image file
	Sums      [][sha256.Size]byte // sha256 of each chunk, in order
}

// chunkCount is the number of chunks of a size-byte file.
func chunkCount(size, chunkSize int64) int64 {
	return (size + chunkSize - 1) / chunkSize
}

// Count is the number of chunks.
func (c *ChunkList) Count() int64 { return int64(len(c.Sums)) }

// Range returns the offset and length of chunk i (0 <= i < Count()).
func (c *ChunkList) Range(i int64) (off, n int64) {
	off = i * c.ChunkSize
	return off, min(c.ChunkSize, c.Size-off)
}

// Verify reports whether b is exactly chunk i.
func (c *ChunkList) Verify(i int64, b []byte) bool {
	if i < 0 || i >= c.Count() {
		return false
	}
	if _, n := c.Range(i); int64(len(b)) != n {
		return false
	}
	return sha256.Sum256(b) == c.Sums[i]
}

// Validate checks the chunk size (a power of two in [MinChunkSize,
// MaxChunkSize]), the size and the number of sums.
func (c *ChunkList) Validate() error {
	if c.ChunkSize < MinChunkSize || c.ChunkSize > MaxChunkSize || c.ChunkSize&(c.ChunkSize-1) != 0 {
		return fmt.Errorf("%w: chunk size %d is not a power of two in [%d, %d]", ErrChunkList, c.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if c.Size < 0 {
		return fmt.Errorf("%w: negative image size %d", ErrChunkList, c.Size)
	}
	if n := chunkCount(c.Size, c.ChunkSize); n != c.Count() {
		return fmt.Errorf("%w: %d chunk sums for %d bytes in chunks of %d (want %d)", ErrChunkList, c.Count(), c.Size, c.ChunkSize, n)
	}
	if int64(len(c.header()))+c.Count()*(2*sha256.Size+1) > MaxChunkListSize {
		return fmt.Errorf("%w: %d chunks exceed the %d-byte limit of a chunk list", ErrChunkList, c.Count(), MaxChunkListSize)
	}
	return nil
}

func (c *ChunkList) header() string {
	return fmt.Sprintf("%s %d sha256 %d %d\n", chunkMagic, ChunkListVersion, c.ChunkSize, c.Size)
}

// MarshalBinary returns the canonical encoding of the chunk list (the
// bytes of a <id>.chunks file). It fails when the list does not validate.
func (c *ChunkList) MarshalBinary() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	h := c.header()
	b := make([]byte, 0, len(h)+len(c.Sums)*(2*sha256.Size+1))
	b = append(b, h...)
	for _, s := range c.Sums {
		b = hex.AppendEncode(b, s[:])
		b = append(b, '\n')
	}
	return b, nil
}

// Digest returns the hex sha256 of the canonical encoding: a caller that
// obtained the digest over a trusted channel can pin a list fetched from
// an untrusted one. It returns "" for a list that does not validate.
func (c *ChunkList) Digest() string {
	b, err := c.MarshalBinary()
	if err != nil {
		return ""
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// parseDecimal parses a canonical non-negative decimal (no sign, no
// leading zero, at most 18 digits).
func parseDecimal(s string) (int64, bool) {
	if s == "" || len(s) > 18 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// ParseChunkList parses and validates a chunk list. It accepts exactly the
// canonical encoding (MarshalBinary's output): one header line
// "shifter-chunks 1 sha256 CHUNKSIZE SIZE", then one line of 64 lowercase
// hex digits per chunk, every line ending in '\n', nothing else.
func ParseChunkList(b []byte) (*ChunkList, error) {
	if len(b) > MaxChunkListSize {
		return nil, fmt.Errorf("%w: %d bytes exceed the limit of %d", ErrChunkList, len(b), MaxChunkListSize)
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 || nl > 128 {
		return nil, fmt.Errorf("%w: no header line", ErrChunkList)
	}
	f := bytes.Split(b[:nl], []byte{' '})
	if len(f) != 5 || string(f[0]) != chunkMagic {
		return nil, fmt.Errorf("%w: header %q is not %q", ErrChunkList, b[:nl], chunkMagic+" VERSION sha256 CHUNKSIZE SIZE")
	}
	if string(f[1]) != strconv.Itoa(ChunkListVersion) {
		return nil, fmt.Errorf("%w: version %q, want %d", ErrChunkList, f[1], ChunkListVersion)
	}
	if string(f[2]) != "sha256" {
		return nil, fmt.Errorf("%w: digest %q, want sha256", ErrChunkList, f[2])
	}
	cs, ok1 := parseDecimal(string(f[3]))
	size, ok2 := parseDecimal(string(f[4]))
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%w: header %q: chunk size and size must be canonical decimals", ErrChunkList, b[:nl])
	}
	c := &ChunkList{ChunkSize: cs, Size: size}
	if cs < MinChunkSize || cs > MaxChunkSize || cs&(cs-1) != 0 {
		return nil, fmt.Errorf("%w: chunk size %d is not a power of two in [%d, %d]", ErrChunkList, cs, MinChunkSize, MaxChunkSize)
	}
	n := chunkCount(size, cs)
	body := b[nl+1:]
	// Check the length before allocating: a header may claim any size.
	if int64(len(body)) != n*(2*sha256.Size+1) {
		return nil, fmt.Errorf("%w: %d bytes of sums, want %d chunks of 65 bytes for %d bytes in chunks of %d", ErrChunkList, len(body), n, size, cs)
	}
	c.Sums = make([][sha256.Size]byte, n)
	for i := range c.Sums {
		line := body[i*(2*sha256.Size+1) : (i+1)*(2*sha256.Size+1)]
		if line[2*sha256.Size] != '\n' {
			return nil, fmt.Errorf("%w: chunk %d: line does not end after 64 hex digits", ErrChunkList, i)
		}
		for _, ch := range line[:2*sha256.Size] {
			if !('0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f') {
				return nil, fmt.Errorf("%w: chunk %d: %q is not 64 lowercase hex digits", ErrChunkList, i, line[:2*sha256.Size])
			}
		}
		if _, err := hex.Decode(c.Sums[i][:], line[:2*sha256.Size]); err != nil {
			return nil, fmt.Errorf("%w: chunk %d: %v", ErrChunkList, i, err)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// ReadChunkList reads a chunk list of at most MaxChunkListSize bytes from
// r and parses it.
func ReadChunkList(r io.Reader) (*ChunkList, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxChunkListSize+1))
	if err != nil {
		return nil, fmt.Errorf("read chunk list: %w", err)
	}
	return ParseChunkList(b)
}

// ComputeChunkList hashes the size bytes of ra in chunks of chunkSize,
// with up to parallel goroutines (<= 0: one per CPU).
func ComputeChunkList(ra io.ReaderAt, size, chunkSize int64, parallel int) (*ChunkList, error) {
	c := &ChunkList{ChunkSize: chunkSize, Size: size}
	if size < 0 {
		return nil, fmt.Errorf("%w: negative image size %d", ErrChunkList, size)
	}
	c.Sums = make([][sha256.Size]byte, chunkCount(size, max(chunkSize, 1)))
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	var (
		mu   sync.Mutex
		next int64
		ferr error
		wg   sync.WaitGroup
	)
	for range min(int64(parallel), max(c.Count(), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, chunkSize)
			for {
				mu.Lock()
				i := next
				next++
				stop := ferr != nil
				mu.Unlock()
				if stop || i >= c.Count() {
					return
				}
				off, n := c.Range(i)
				if k, err := ra.ReadAt(buf[:n], off); int64(k) != n {
					if err == nil {
						err = io.ErrUnexpectedEOF
					}
					mu.Lock()
					if ferr == nil {
						ferr = fmt.Errorf("hash chunk %d (bytes %d-%d): %w", i, off, off+n-1, err)
					}
					mu.Unlock()
					return
				}
				c.Sums[i] = sha256.Sum256(buf[:n])
			}
		}()
	}
	wg.Wait()
	if ferr != nil {
		return nil, ferr
	}
	return c, nil
}

// ComputeChunkListFile computes the chunk list of the file at path.
func ComputeChunkListFile(path string, chunkSize int64) (*ChunkList, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("chunk list: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("chunk list: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("chunk list: %s is not a regular file", path)
	}
	c, err := ComputeChunkList(f, st.Size(), chunkSize, 0)
	if err != nil {
		return nil, fmt.Errorf("chunk list of %s: %w", path, err)
	}
	return c, nil
}

// ChunksPath is the path of image id's chunk list in dir.
func ChunksPath(dir, id string) string { return filepath.Join(dir, id+".chunks") }

// WriteChunkList writes <id>.chunks atomically (temporary file, fsync,
// rename, directory fsync), mode 0644. A writer publishes it after
// <id>.squashfs and before <id>.json, so a present image has its chunk
// list when it has one at all. An existing chunk list is replaced (its
// content depends only on the image file and the chunk size).
func WriteChunkList(dir, id string, c *ChunkList) error {
	return WriteChunkListMode(dir, id, c, ModePublic)
}

// WriteChunkListMode is WriteChunkList with the file's mode (an image
// store's chunk list has its image's, FileMode): the temporary file is
// created 0600 and given mode exactly before the rename.
func WriteChunkListMode(dir, id string, c *ChunkList, mode os.FileMode) error {
	if !ValidID(id) {
		return fmt.Errorf("image id %q: %w", id, ErrInvalid)
	}
	b, err := c.MarshalBinary()
	if err != nil {
		return fmt.Errorf("write chunk list of %s: %w", id, err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return err
	}
	tmp := filepath.Join(dir, tempPrefix+hex.EncodeToString(r[:])+".chunks")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, ModePrivate)
	if err != nil {
		return fmt.Errorf("write chunk list of %s: %w", id, err)
	}
	cherr := f.Chmod(mode.Perm()) // exact, whatever the umask
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(cherr, werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write chunk list of %s: %w", id, err)
	}
	if err := os.Rename(tmp, ChunksPath(dir, id)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write chunk list of %s: %w", id, err)
	}
	return syncDir(dir)
}

// LoadChunkList reads and parses <id>.chunks from dir (opened with
// O_NOFOLLOW, size-capped). An image without one gives an error wrapping
// fs.ErrNotExist: such images predate chunk lists and are still valid.
func LoadChunkList(dir, id string) (*ChunkList, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("image id %q: %w", id, ErrInvalid)
	}
	f, err := os.OpenFile(ChunksPath(dir, id), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("chunk list of %s: %w", id, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("chunk list of %s: %w", id, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("chunk list of %s: %w: not a regular file", id, ErrChunkList)
	}
	c, err := ReadChunkList(f)
	if err != nil {
		return nil, fmt.Errorf("chunk list of %s: %w", id, err)
	}
	return c, nil
}
