// SPDX-License-Identifier: BSD-3-Clause

package nodecache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shifter-go/shifter/imagestore"
)

// ReadError is the error of a read that could not be served: the source
// failed or kept returning bytes that do not match the chunk list
// (Err wraps ErrCorrupt then). It matches syscall.EIO with errors.Is, so a
// FUSE server answers EIO.
type ReadError struct {
	Image  string // image id
	Chunk  int64  // chunk index (-1 for an image read through uncached)
	Source string // the source's String()
	Err    error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("image %s chunk %d from %s: %v", e.Image, e.Chunk, e.Source, e.Err)
}

// Unwrap returns the cause and syscall.EIO.
func (e *ReadError) Unwrap() []error { return []error{e.Err, syscall.EIO} }

// Image is an io.ReaderAt over one image through the cache. Its methods
// are safe for concurrent use.
type Image struct {
	c     *Cache
	id    string
	idb   [32]byte
	src   Source
	cl    *imagestore.ChunkList // nil: read through uncached
	shift uint8
	size  int64
	stats counters
	trace atomic.Pointer[Trace]

	raMu  sync.Mutex
	ahead map[int64]bool // chunks fetched ahead that no read has reached yet: whether from the source
}

// Image returns the image id read from src through the cache, verified
// against chunks. chunks must describe the image file (the gateway writes
// it as <id>.chunks, see imagestore.LoadChunkList); it must come from a
// trusted place (the image store or the gateway), since verification is
// only as good as the list.
//
// Without a chunk list (an image published before chunk lists existed) a
// *FileSource is read through uncached, as without a cache (its bytes
// are as trusted as today's loop or FUSE mount of the file); any other
// source is refused with ErrNoChunkList, since nothing could verify it.
func (c *Cache) Image(id string, src Source, chunks *imagestore.ChunkList) (*Image, error) {
	idb, err := hexID(id)
	if err != nil {
		return nil, err
	}
	im := &Image{c: c, id: id, idb: idb, src: src, cl: chunks}
	if chunks == nil {
		fs, ok := src.(*FileSource)
		if !ok {
			return nil, fmt.Errorf("image %s from %s: %w", id, src, ErrNoChunkList)
		}
		im.size = fs.Size()
		return im, nil
	}
	if err := chunks.Validate(); err != nil {
		return nil, fmt.Errorf("image %s: %w", id, err)
	}
	if fs, ok := src.(*FileSource); ok && fs.Size() != chunks.Size {
		return nil, fmt.Errorf("image %s: %s has %d bytes, its chunk list %d", id, src, fs.Size(), chunks.Size)
	}
	im.size = chunks.Size
	im.shift = uint8(bits.TrailingZeros64(uint64(chunks.ChunkSize)))
	return im, nil
}

// ID is the image id.
func (im *Image) ID() string { return im.id }

// Size is the image file's size in bytes.
func (im *Image) Size() int64 { return im.size }

// Cached reports whether the image is read through the cache (it has a
// chunk list).
func (im *Image) Cached() bool { return im.cl != nil }

// ChunkList is the image's chunk list (nil when read through uncached).
func (im *Image) ChunkList() *imagestore.ChunkList { return im.cl }

// Stats returns this image's counters (Chunks, Bytes and Size are zero).
func (im *Image) Stats() Stats { return im.stats.snapshot() }

// PresentChunks counts the image's chunks on disk.
func (im *Image) PresentChunks() int64 {
	if im.cl == nil {
		return 0
	}
	var n int64
	for i := range im.cl.Count() {
		if im.c.present(im.key(i), false) {
			n++
		}
	}
	return n
}

func (im *Image) key(i int64) ckey { return ckey{im.idb, im.shift, i} }

// ReadAt implements io.ReaderAt. Every byte returned belongs to a chunk
// that matched its sha256; an error other than io.EOF (and a negative
// offset's) is a *ReadError.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("image %s: negative offset %d", im.id, off)
	}
	if off >= im.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > im.size-off {
		p = p[:im.size-off]
	}
	if im.cl == nil {
		n, err := im.src.ReadAt(p, off)
		im.addSource(int64(n))
		if err != nil && !(errors.Is(err, io.EOF) && n == len(p)) {
			return n, &ReadError{Image: im.id, Chunk: -1, Source: im.src.String(), Err: err}
		}
		if n < want {
			return n, io.EOF
		}
		return n, nil
	}
	cs := im.cl.ChunkSize
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		i := pos / cs
		if t := im.trace.Load(); t != nil {
			t.record(i)
		}
		data, from, err := im.chunkFrom(context.Background(), i, true)
		if err != nil {
			return n, err
		}
		fetched, fromSource := from != fromMemory, from == fromSource
		ahead := fetched && i > 0 && im.c.memHas(im.key(i-1)) // a reader moving forward
		if !fetched {
			ahead, fromSource = im.reached(i)
		}
		if ahead {
			im.readAhead(i, fromSource)
		}
		n += copy(p[n:], data[pos-i*cs:])
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

func (im *Image) addSource(n int64) {
	im.stats.sourceBytes.Add(n)
	im.c.stats.sourceBytes.Add(n)
}

// reached reports whether chunk i was fetched ahead and this is the
// first read to reach it, and whether that read ahead could use the source.
func (im *Image) reached(i int64) (ok, fromSource bool) {
	if im.c.opts.ReadAhead == 0 {
		return false, false
	}
	im.raMu.Lock()
	defer im.raMu.Unlock()
	fromSource, ok = im.ahead[i]
	delete(im.ahead, i)
	return ok, fromSource
}

// readAhead fetches the ReadAhead chunks after i that are not in memory
// into the memory tier in the background, as far as the cache-wide bound
// on read-ahead fetches allows. Their errors are left to the read that
// wants them. Only a reader that had to go to the source reads ahead
// from the source: one served from disk reads ahead only what is on
// disk (a warm cache stays off the source).
func (im *Image) readAhead(i int64, fromSource bool) {
	c := im.c
	for j := i + 1; j <= i+int64(c.opts.ReadAhead) && j < im.cl.Count(); j++ {
		k := im.key(j)
		if c.memHas(k) || (!fromSource && !c.present(k, false)) {
			continue
		}
		select {
		case c.raSem <- struct{}{}:
		default:
			return
		}
		c.mu.Lock()
		_, inFlight := c.fl[k]
		if inFlight || c.closing {
			c.mu.Unlock()
			<-c.raSem
			if inFlight {
				continue
			}
			return
		}
		c.raWG.Add(1)
		c.mu.Unlock()
		im.raMu.Lock()
		if im.ahead == nil || len(im.ahead) > 1024 {
			im.ahead = map[int64]bool{}
		}
		im.ahead[j] = fromSource
		im.raMu.Unlock()
		go func() {
			defer func() { <-c.raSem; c.raWG.Done() }()
			im.chunkFrom(context.Background(), j, true)
		}()
	}
}

// chunk returns the verified bytes of chunk i: from memory, from disk, or
// from the source (once, however many readers want it at the same time).
// forRead keeps the chunk in memory for the next small read in it.
func (im *Image) chunk(ctx context.Context, i int64, forRead bool) ([]byte, error) {
	data, _, err := im.chunkFrom(ctx, i, forRead)
	return data, err
}

// origin is where chunkFrom found a chunk.
type origin uint8

const (
	fromMemory origin = iota
	fromDisk          // the database, or the writer's queue
	fromSource
)

// chunkFrom is chunk, and tells where the chunk came from.
func (im *Image) chunkFrom(ctx context.Context, i int64, forRead bool) ([]byte, origin, error) {
	c := im.c
	k := im.key(i)
	if forRead {
		if d := c.memGet(k); d != nil {
			im.hit()
			return d, fromMemory, nil
		}
	}
	c.mu.Lock()
	if f, ok := c.fl[k]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.data, f.from, f.err
		case <-ctx.Done():
			return nil, fromMemory, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.fl[k] = f
	c.mu.Unlock()
	f.data, f.from, f.err = im.fetch(k, forRead)
	c.mu.Lock()
	delete(c.fl, k)
	c.mu.Unlock()
	close(f.done)
	return f.data, f.from, f.err
}

func (im *Image) hit() {
	im.stats.hits.Add(1)
	im.c.stats.hits.Add(1)
}

func (im *Image) verifyFailed() {
	im.stats.verifyFailures.Add(1)
	im.c.stats.verifyFailures.Add(1)
}

// readSource reads buf at off from the source and returns the sha256 of
// what it read, hashed while reading when the source can.
func (im *Image) readSource(buf []byte, off int64) (n int, sum [32]byte, err error) {
	if hs, ok := im.src.(hashingSource); ok {
		h := sha256.New()
		n, err = hs.readAtHashing(buf, off, h)
		h.Sum(sum[:0])
		return n, sum, err
	}
	n, err = im.src.ReadAt(buf, off)
	return n, sha256.Sum256(buf[:n]), err
}

// fetch is the body of a flight.
func (im *Image) fetch(k ckey, forRead bool) (data []byte, from origin, err error) {
	c := im.c
	i := k.idx
	if data := c.pendingGet(k); data != nil {
		im.hit()
		if forRead {
			c.memPut(k, data)
		}
		return data, fromDisk, nil
	}
	if c.present(k, true) {
		data, err := c.diskGet(k)
		switch {
		case err != nil:
			c.log.Warn("node cache: read chunk from disk, reading the source", "dir", c.dir, "image", im.id, "chunk", i, "err", err)
			if errors.Is(err, ErrClosed) {
				return nil, fromDisk, &ReadError{Image: im.id, Chunk: i, Source: c.dir, Err: err}
			}
		case data == nil:
			c.forget(k) // evicted under us
		case im.cl.Verify(i, data):
			im.hit()
			if forRead {
				c.memPut(k, data)
			}
			return data, fromDisk, nil
		default:
			im.verifyFailed()
			c.log.Warn("node cache: cached chunk does not match its sha256, dropped; reading the source",
				"dir", c.dir, "image", im.id, "chunk", i)
			c.forget(k)
		}
	}
	im.stats.misses.Add(1)
	c.stats.misses.Add(1)
	off, n := im.cl.Range(i)
	var lastErr error
	for attempt := range 2 {
		buf := make([]byte, n)
		c.lastFetch.Store(time.Now().UnixNano())
		got, sum, err := im.readSource(buf, off)
		c.lastFetch.Store(time.Now().UnixNano())
		im.addSource(int64(got))
		if int64(got) < n {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			// The source retries transient errors itself.
			return nil, fromSource, &ReadError{Image: im.id, Chunk: i, Source: im.src.String(), Err: err}
		}
		if sum == im.cl.Sums[i] {
			c.storeLater(k, buf)
			if forRead {
				c.memPut(k, buf)
			}
			return buf, fromSource, nil
		}
		im.verifyFailed()
		lastErr = fmt.Errorf("bytes %d-%d: %w", off, off+n-1, ErrCorrupt)
		if attempt == 0 {
			c.log.Warn("node cache: chunk from the source does not match its sha256, reading it again",
				"image", im.id, "chunk", i, "source", im.src.String())
		}
	}
	c.log.Error("node cache: chunk from the source does not match its sha256 twice, I/O error",
		"image", im.id, "chunk", i, "source", im.src.String())
	return nil, fromSource, &ReadError{Image: im.id, Chunk: i, Source: im.src.String(), Err: lastErr}
}

// Warm fetches the image's missing chunks into the cache, WarmParallel at
// a time: the chunks in order (nil: all of them, in file order), the
// earlier ones first. progress, if not nil, is called after each chunk
// (present or fetched) with the count done and the total, from one
// goroutine at a time. It stops at the first error or when ctx ends.
// Chunks already cached are not read; fetched ones do not go into the
// memory cache. An index out of range is an error before anything is read.
func (im *Image) Warm(ctx context.Context, order []int64, progress func(done, total int64)) error {
	if im.cl == nil {
		return fmt.Errorf("warm image %s: %w", im.id, ErrNoChunkList)
	}
	count := im.cl.Count()
	if order == nil {
		order = make([]int64, count)
		for i := range order {
			order[i] = int64(i)
		}
	}
	for _, i := range order {
		if i < 0 || i >= count {
			return fmt.Errorf("warm image %s: chunk %d out of range [0, %d)", im.id, i, count)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	total := int64(len(order))
	var (
		mu   sync.Mutex
		done int64
		ferr error
		wg   sync.WaitGroup
	)
	next := make(chan int64)
	for range im.c.opts.WarmParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if ctx.Err() != nil {
					continue
				}
				if !im.c.present(im.key(i), false) {
					if _, err := im.chunk(ctx, i, false); err != nil {
						mu.Lock()
						if ferr == nil {
							ferr = err
						}
						mu.Unlock()
						cancel()
						continue
					}
				}
				mu.Lock()
				done++
				if progress != nil && ferr == nil {
					progress(done, total)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, i := range order {
		if ctx.Err() != nil {
			break
		}
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	im.c.Flush() // warm means on disk
	if ferr != nil {
		return fmt.Errorf("warm image %s: %w", im.id, ferr)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("warm image %s: %w", im.id, err)
	}
	return nil
}

// Trace records which chunks of an image are read, in the order of their
// first read, up to a bound. shifterd records a start-up trace with it and
// replays it with Warm.
type Trace struct {
	mu    sync.Mutex
	max   int
	seen  []uint64 // bitset by chunk index
	order []int64
	last  time.Time
}

// StartTrace starts recording the image's reads into a new Trace of at
// most max chunks (replacing any trace in progress) and returns it.
// Recording costs a mutex per read while the trace runs.
func (im *Image) StartTrace(max int) *Trace {
	var n int64
	if im.cl != nil {
		n = im.cl.Count()
	}
	t := &Trace{max: max, seen: make([]uint64, (n+63)/64), last: time.Now()}
	im.trace.Store(t)
	return t
}

// StopTrace stops recording and returns the trace (nil if none ran).
func (im *Image) StopTrace() *Trace { return im.trace.Swap(nil) }

func (t *Trace) record(i int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last = time.Now()
	if len(t.order) >= t.max || i>>6 >= int64(len(t.seen)) || t.seen[i>>6]&(1<<(i&63)) != 0 {
		return
	}
	t.seen[i>>6] |= 1 << (i & 63)
	t.order = append(t.order, i)
}

// Chunks returns the chunk indexes recorded so far, in order.
func (t *Trace) Chunks() []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]int64(nil), t.order...)
}

// LastRead is the time of the last read seen (or of the start), for
// stopping a trace once the image has been idle for a while.
func (t *Trace) LastRead() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}
