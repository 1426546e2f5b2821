// SPDX-License-Identifier: BSD-3-Clause

package shifterd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/nodecache"
	"github.com/shifter-go/shifter/shifterd/proto"
	"github.com/shifter-go/shifter/squashreader"
)

// CacheBackend serves images from the image store, or from an HTTP
// source, through the node cache, each over FUSE in this process.
type CacheBackend struct {
	ImageDir string // the image store: metadata, chunk lists, traces (and images, for the file source)
	// Cache is the node cache; nil reads every image straight from its
	// source (then Warm fails and no trace is recorded).
	Cache *nodecache.Cache
	// SourceURL, when set, is the HTTP base URL images are read from
	// (<url>/<id>.squashfs, <id>.chunks) instead of their files.
	SourceURL  string
	HTTPClient *http.Client
	// ChunkListDir keeps the chunk lists this node computes for images
	// published without one (file source only), with ChunkSize; "" does
	// without.
	ChunkListDir string
	ChunkSize    int64
	// DataCache is each mount's in-memory cache of decompressed blocks
	// (squashreader.Options.DataCacheSize); 0 keeps the reader's default.
	DataCache int64
	Log       *slog.Logger
	// TraceIdle ends a start-up trace once no chunk has been read for
	// this long (default 2 s); TraceMax bounds its duration (default 60 s)
	// and TraceChunks its length (default 65536 chunks).
	TraceIdle, TraceMax time.Duration
	TraceChunks         int

	mu     sync.Mutex
	images map[string]*openImage
}

// openImage is one image's source and cache view, shared by its mount
// and its warm-ups.
type openImage struct {
	id    string
	users int
	ci    *nodecache.Image // nil when there is no node cache
	ra    io.ReaderAt      // what the reader reads: ci, or the source itself
	src   nodecache.Source
	size  int64
	close func() error
}

func (b *CacheBackend) log() *slog.Logger {
	if b.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Log
}

// open returns img's shared view, opening its source on first use.
func (b *CacheBackend) open(ctx context.Context, img *imagestore.Metadata) (*openImage, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if oi := b.images[img.ID]; oi != nil {
		oi.users++
		return oi, nil
	}
	oi := &openImage{id: img.ID, users: 1, close: func() error { return nil }}
	var src nodecache.Source
	var chunks *imagestore.ChunkList
	if b.SourceURL != "" {
		hs, err := nodecache.NewHTTPSource(b.SourceURL, img.ID, b.HTTPClient)
		if err != nil {
			return nil, err
		}
		if chunks, err = b.httpChunkList(ctx, hs, img); err != nil {
			return nil, err
		}
		src, oi.size = hs, chunks.Size
	} else {
		sq, _ := imagestore.Paths(b.ImageDir, img.ID)
		fsrc, f, err := nodecache.OpenFileSource(sq)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.ID, err)
		}
		src, oi.size, oi.close = fsrc, fsrc.Size(), f.Close
		chunks, err = imagestore.LoadChunkList(b.ImageDir, img.ID)
		if errors.Is(err, fs.ErrNotExist) && b.ChunkListDir != "" {
			chunks, err = imagestore.LoadChunkList(b.ChunkListDir, img.ID)
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			chunks = nil
			b.log().Info("image has no chunk list: read through, not cached (shifterd warm makes one)", "image", img.ID)
		case err != nil:
			f.Close()
			return nil, fmt.Errorf("image %s: %w", img.ID, err)
		}
	}
	if img.Size > 0 && oi.size != img.Size {
		oi.close()
		return nil, fmt.Errorf("image %s: %d bytes, its metadata says %d", img.ID, oi.size, img.Size)
	}
	oi.ra, oi.src = src, src
	if b.Cache != nil {
		ci, err := b.Cache.Image(img.ID, src, chunks)
		if err != nil {
			oi.close()
			return nil, fmt.Errorf("image %s: %w", img.ID, err)
		}
		oi.ci, oi.ra = ci, ci
	}
	if b.images == nil {
		b.images = map[string]*openImage{}
	}
	b.images[img.ID] = oi
	return oi, nil
}

func (b *CacheBackend) release(oi *openImage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if oi.users--; oi.users > 0 {
		return
	}
	delete(b.images, oi.id)
	if err := oi.close(); err != nil {
		b.log().Warn("closing image source", "image", oi.id, "err", err)
	}
}

// cachedMount is one image mounted by CacheBackend.
type cachedMount struct {
	b     *CacheBackend
	oi    *openImage
	r     *squashreader.Reader
	srv   *fusefs.Server
	fsys  *fusefs.FS
	trace chan struct{} // closed to end the trace recorder early
	wg    sync.WaitGroup
}

// Mount implements Backend.
func (b *CacheBackend) Mount(ctx context.Context, img *imagestore.Metadata, dir string) (Mounted, error) {
	oi, err := b.open(ctx, img)
	if err != nil {
		return nil, err
	}
	m := &cachedMount{b: b, oi: oi, trace: make(chan struct{})}
	// The trace starts before the reader opens the image: a start-up
	// reads the superblock and the tables first.
	var tr *nodecache.Trace
	if oi.ci != nil && oi.ci.Cached() {
		if _, err := imagestore.LoadTrace(b.ImageDir, img); errors.Is(err, imagestore.ErrNotFound) {
			max := b.TraceChunks
			if max <= 0 {
				max = 65536
			}
			tr = oi.ci.StartTrace(max)
		}
	}
	m.r, err = squashreader.Open(oi.ra, oi.size, &squashreader.Options{DataCacheSize: b.DataCache})
	if err != nil {
		m.stopTrace()
		b.release(oi)
		return nil, fmt.Errorf("image %s: %w", img.ID, err)
	}
	fsys, err := fusefs.New(m.r, &fusefs.Options{Logger: b.log()})
	if err == nil {
		m.fsys = fsys
		m.srv, err = fusefs.Mount(dir, fsys, &fusefs.MountOptions{
			FsName:     MountSource(img.ID),
			Subtype:    "shifterd",
			AllowOther: true,
			// Not ServeOnly: go-fuse's poll hack (one round trip at
			// mount) keeps a process that serves the mount and also
			// opens files on it (the daemon's tests; a Go client's
			// netpoller registration) from waiting on itself.
			Logger: b.log(),
		})
	}
	if err != nil {
		m.stopTrace()
		m.r.Close()
		b.release(oi)
		return nil, fmt.Errorf("image %s: %w", img.ID, err)
	}
	if tr != nil {
		m.wg.Add(1)
		go m.recordTrace(img, tr)
	}
	return m, nil
}

// Requests implements RequestCounter.
func (m *cachedMount) Requests() map[string]uint64 { return m.fsys.Stats() }

func (m *cachedMount) stopTrace() {
	if m.oi.ci != nil {
		m.oi.ci.StopTrace()
	}
}

// recordTrace ends the trace once the image has been idle for TraceIdle
// (or after TraceMax, or at unmount) and publishes it.
func (m *cachedMount) recordTrace(img *imagestore.Metadata, tr *nodecache.Trace) {
	defer m.wg.Done()
	idle, max := m.b.TraceIdle, m.b.TraceMax
	if idle <= 0 {
		idle = 2 * time.Second
	}
	if max <= 0 {
		max = time.Minute
	}
	start := time.Now()
	tick := time.NewTicker(min(idle/4, 250*time.Millisecond))
	defer tick.Stop()
wait:
	for {
		select {
		case <-m.trace:
			break wait
		case now := <-tick.C:
			if now.Sub(tr.LastRead()) >= idle || now.Sub(start) >= max {
				break wait
			}
		}
	}
	m.oi.ci.StopTrace()
	chunks := tr.Chunks()
	if len(chunks) == 0 {
		return
	}
	t := &imagestore.Trace{ChunkSize: m.oi.ci.ChunkList().ChunkSize, Chunks: chunks}
	kept, err := imagestore.WriteTrace(m.b.ImageDir, img, t)
	switch {
	case err != nil:
		m.b.log().Warn("start-up trace not published", "image", img.ID, "err", err)
	case kept:
		m.b.log().Info("start-up trace published", "image", img.ID, "chunks", len(chunks), "of", m.oi.ci.ChunkList().Count())
	default:
		m.b.log().Debug("start-up trace: another node's was published first", "image", img.ID)
	}
}

// Unmount implements Mounted.
func (m *cachedMount) Unmount() error {
	close(m.trace)
	err := m.srv.UnmountLazy()
	select {
	case <-m.srv.Done():
	case <-time.After(10 * time.Second):
		m.b.log().Warn("unmounted image still served after 10 s", "image", m.oi.id)
	}
	m.wg.Wait()
	m.r.Close()
	m.b.release(m.oi)
	return err
}

// ErrNoCache is returned by Warm when shifterd runs without a node cache
// or the image cannot be cached (no chunk list).
var ErrNoCache = errors.New("nothing to warm: no node cache, or the image has no chunk list")

// Warm implements Backend.
func (b *CacheBackend) Warm(ctx context.Context, img *imagestore.Metadata, traceOnly bool, progress func(proto.Progress)) error {
	oi, err := b.open(ctx, img)
	if err != nil {
		return err
	}
	defer b.release(oi)
	if oi.ci == nil {
		return fmt.Errorf("image %s: %w", img.ID, ErrNoCache)
	}
	ci := oi.ci
	if !ci.Cached() {
		cl, err := b.computeChunkList(img, oi)
		if err != nil {
			return err
		}
		if ci, err = b.Cache.Image(img.ID, oi.src, cl); err != nil {
			return fmt.Errorf("image %s: %w", img.ID, err)
		}
	}
	cl := ci.ChunkList()
	var order []int64
	t, err := imagestore.LoadTrace(b.ImageDir, img)
	switch {
	case err == nil && t.ChunkSize == cl.ChunkSize:
		order = t.Chunks
	case err == nil:
		b.log().Warn("start-up trace ignored: its chunk size differs from the chunk list's", "image", img.ID, "trace", t.ChunkSize, "chunks", cl.ChunkSize)
	case !errors.Is(err, imagestore.ErrNotFound):
		b.log().Warn("start-up trace ignored", "image", img.ID, "err", err)
	}
	if traceOnly && order == nil {
		return fmt.Errorf("image %s: no start-up trace to warm from", img.ID)
	}
	if !traceOnly {
		order = appendRest(order, cl.Count())
	}
	before := ci.Stats().SourceBytes
	total := int64(len(order))
	return ci.Warm(ctx, order, func(done, _ int64) {
		if progress != nil {
			progress(proto.Progress{Done: done, Total: total, FromSource: ci.Stats().SourceBytes - before})
		}
	})
}

// computeChunkList makes the chunk list of an image published without
// one, from its file, and keeps it in ChunkListDir. The file must match
// the sha256 its metadata records, so the list is as trustworthy as one
// the gateway would have written.
func (b *CacheBackend) computeChunkList(img *imagestore.Metadata, oi *openImage) (*imagestore.ChunkList, error) {
	if b.ChunkListDir == "" || b.SourceURL != "" || b.ChunkSize <= 0 {
		return nil, fmt.Errorf("image %s: %w", img.ID, ErrNoCache)
	}
	if img.SHA256 == "" {
		return nil, fmt.Errorf("image %s: no chunk list, and no sha256 in its metadata to make one against", img.ID)
	}
	// One pass computes both the whole file's sha256 and the chunks',
	// so the chunks hashed are the bytes checked.
	cl := &imagestore.ChunkList{ChunkSize: b.ChunkSize, Size: oi.size,
		Sums: make([][sha256.Size]byte, (oi.size+b.ChunkSize-1)/b.ChunkSize)}
	if err := cl.Validate(); err != nil {
		return nil, fmt.Errorf("image %s: %w", img.ID, err)
	}
	h := sha256.New()
	buf := make([]byte, b.ChunkSize)
	for i := range cl.Count() {
		off, n := cl.Range(i)
		if _, err := oi.src.ReadAt(buf[:n], off); err != nil && !(errors.Is(err, io.EOF) && off+n == oi.size) {
			return nil, fmt.Errorf("image %s: hashing: %w", img.ID, err)
		}
		h.Write(buf[:n])
		cl.Sums[i] = sha256.Sum256(buf[:n])
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != img.SHA256 {
		b.log().Error("image file does not match the sha256 of its metadata: not cached", "image", img.ID, "sha256", got, "want", img.SHA256)
		return nil, fmt.Errorf("image %s: file sha256 %s, its metadata says %s", img.ID, got, img.SHA256)
	}
	if err := os.MkdirAll(b.ChunkListDir, 0o700); err != nil {
		return nil, fmt.Errorf("chunk list directory: %w", err)
	}
	if err := imagestore.WriteChunkList(b.ChunkListDir, img.ID, cl); err != nil {
		return nil, err
	}
	b.log().Info("chunk list made on this node", "image", img.ID, "chunks", cl.Count(), "chunkSize", b.ChunkSize)
	return cl, nil
}

// appendRest appends to order every chunk index below count it lacks, in
// file order.
func appendRest(order []int64, count int64) []int64 {
	seen := make([]bool, count)
	for _, i := range order {
		if i >= 0 && i < count {
			seen[i] = true
		}
	}
	out := slices.Clip(order)
	for i := range count {
		if !seen[i] {
			out = append(out, i)
		}
	}
	return out
}

// CacheStatus implements Backend.
func (b *CacheBackend) CacheStatus() *proto.CacheStatus {
	if b.Cache == nil {
		return nil
	}
	st := b.Cache.Stats()
	return &proto.CacheStatus{
		Dir: b.Cache.Dir(), Size: st.Bytes, Cap: st.Size, Hits: st.Hits, Misses: st.Misses,
		SourceBytes: st.SourceBytes, EvictedBytes: st.EvictedBytes, VerifyFailure: st.VerifyFailures,
	}
}

// httpChunkList is the chunk list an HTTP source's bytes are checked
// against: the image store's own when the node sees it, else the
// source's, which must match the digest the image's metadata pins
// (ChunksSHA256). A mirror serves bytes, never the truth about them: an
// image whose chunk list cannot be pinned is not read over HTTP.
func (b *CacheBackend) httpChunkList(ctx context.Context, hs *nodecache.HTTPSource, img *imagestore.Metadata) (*imagestore.ChunkList, error) {
	if cl, err := imagestore.LoadChunkList(b.ImageDir, img.ID); err == nil {
		return cl, nil
	}
	if img.ChunksSHA256 == "" {
		return nil, fmt.Errorf("image %s: its metadata pins no chunk list (published before chunk lists?): not read over HTTP", img.ID)
	}
	cl, err := hs.ChunkList(ctx)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.ID, err)
	}
	if d := cl.Digest(); d != img.ChunksSHA256 {
		b.log().Error("chunk list from the HTTP source does not match the image's metadata", "image", img.ID, "source", hs.String(), "sha256", d, "want", img.ChunksSHA256)
		return nil, fmt.Errorf("image %s: the source's chunk list has sha256 %s, the metadata pins %s", img.ID, d, img.ChunksSHA256)
	}
	return cl, nil
}
