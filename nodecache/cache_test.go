// SPDX-License-Identifier: BSD-3-Clause

package nodecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/shifter-go/shifter/imagestore"
)

const cs = imagestore.MinChunkSize

func randBytes(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

func testID(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// memSource serves data, counting reads; bad(off) makes a read return
// altered bytes; gate, when set, blocks every read until closed.
type memSource struct {
	data  []byte
	reads atomic.Int64
	bytes atomic.Int64
	bad   func(off int64, attempt int64) bool
	gate  chan struct{}
	tries sync.Map // off -> *atomic.Int64
}

func (s *memSource) ReadAt(p []byte, off int64) (int, error) {
	if s.gate != nil {
		<-s.gate
	}
	s.reads.Add(1)
	if off >= int64(len(s.data)) {
		return 0, io.EOF
	}
	n := copy(p, s.data[off:])
	s.bytes.Add(int64(n))
	v, _ := s.tries.LoadOrStore(off, new(atomic.Int64))
	attempt := v.(*atomic.Int64).Add(1)
	if s.bad != nil && s.bad(off, attempt) {
		p[n/2] ^= 0x40
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *memSource) String() string { return "memory" }

func chunksOf(t testing.TB, data []byte, chunkSize int64) *imagestore.ChunkList {
	t.Helper()
	cl, err := imagestore.ComputeChunkList(bytes.NewReader(data), int64(len(data)), chunkSize, 2)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// logBuf collects log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func openTest(t testing.TB, dir string, opts Options) *Cache {
	t.Helper()
	if opts.Size == 0 {
		opts.Size = 64 << 20
	}
	c, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll reads the image in pieces of n bytes at a stride and checks
// every byte.
func checkRead(t testing.TB, ra io.ReaderAt, data []byte, piece int) {
	t.Helper()
	for off := 0; off < len(data); off += piece {
		p := make([]byte, piece)
		n, err := ra.ReadAt(p, int64(off))
		want := min(piece, len(data)-off)
		if n != want || !bytes.Equal(p[:n], data[off:off+want]) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d bytes, %v; content differs or short", piece, off, n, err)
		}
		if want < piece && err != io.EOF {
			t.Fatalf("ReadAt past the end: err %v, want io.EOF", err)
		}
		if want == piece && err != nil {
			t.Fatalf("ReadAt(%d at %d): %v", piece, off, err)
		}
	}
}

func TestReadHits(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		piece     int
		memory    int64
		chunkSize int64
	}{
		{"aligned", 8 * cs, cs, 0, cs},
		{"across chunks", 8*cs + 100, 3000, 0, cs},
		{"large reads", 8*cs + 1, 3 * cs, 0, cs},
		{"no memory cache", 5*cs + 7, 1000, -1, cs},
		{"64K chunks", 300 << 10, 10000, 0, 64 << 10},
		{"tiny image", 10, 4, -1, cs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := randBytes(uint64(tt.size), tt.size)
			src := &memSource{data: data}
			c := openTest(t, t.TempDir(), Options{MemorySize: tt.memory})
			im, err := c.Image(testID(tt.name), src, chunksOf(t, data, tt.chunkSize))
			if err != nil {
				t.Fatal(err)
			}
			if im.Size() != int64(tt.size) {
				t.Fatalf("Size = %d", im.Size())
			}
			checkRead(t, im, data, tt.piece)
			cold := src.bytes.Load()
			if cold != int64(tt.size) {
				t.Errorf("cold read took %d bytes from the source, want %d (each chunk once)", cold, tt.size)
			}
			c.Flush()
			st := c.Stats()
			if st.Misses != im.cl.Count() || st.Chunks != im.cl.Count() {
				t.Errorf("after a cold read: %+v, want %d misses and chunks", st, im.cl.Count())
			}
			checkRead(t, im, data, tt.piece)
			if src.bytes.Load() != cold {
				t.Errorf("warm read took %d more bytes from the source", src.bytes.Load()-cold)
			}
			if st2 := im.Stats(); st2.Hits == 0 || st2.Misses != st.Misses {
				t.Errorf("warm read stats %+v", st2)
			}
			// A read at or past the end.
			if n, err := im.ReadAt(make([]byte, 1), int64(tt.size)); n != 0 || err != io.EOF {
				t.Errorf("ReadAt at the end = %d, %v", n, err)
			}
			if n, err := im.ReadAt(nil, int64(tt.size)); n != 0 || err != nil {
				t.Errorf("empty ReadAt at the end = %d, %v", n, err)
			}
		})
	}
}

// TestWarmCacheReadsNothing: after Warm and a reopen (memory cache gone),
// reading the whole image takes 0 bytes from the source.
func TestWarmCacheReadsNothing(t *testing.T) {
	dir := t.TempDir()
	data := randBytes(1, 40*cs+123)
	cl := chunksOf(t, data, cs)
	id := testID("warm")
	c, err := Open(dir, Options{Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	src := &memSource{data: data}
	im, err := c.Image(id, src, cl)
	if err != nil {
		t.Fatal(err)
	}
	var calls, last int64
	if err := im.Warm(context.Background(), nil, func(done, total int64) {
		calls++
		if done != last+1 || total != cl.Count() {
			t.Errorf("progress(%d, %d) after %d", done, total, last)
		}
		last = done
	}); err != nil {
		t.Fatal(err)
	}
	if calls != cl.Count() || src.bytes.Load() != int64(len(data)) {
		t.Fatalf("warm: %d progress calls, %d source bytes", calls, src.bytes.Load())
	}
	if im.PresentChunks() != cl.Count() {
		t.Fatalf("PresentChunks = %d", im.PresentChunks())
	}
	// Warming again reads nothing.
	if err := im.Warm(context.Background(), []int64{3, 1, 2}, nil); err != nil || src.bytes.Load() != int64(len(data)) {
		t.Fatalf("second warm: %v, %d source bytes", err, src.bytes.Load())
	}
	if err := im.Warm(context.Background(), []int64{cl.Count()}, nil); err == nil {
		t.Fatal("warm of an out-of-range chunk gave no error")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = openTest(t, dir, Options{Size: 64 << 20})
	src2 := &memSource{data: data}
	im, err = c.Image(id, src2, cl)
	if err != nil {
		t.Fatal(err)
	}
	checkRead(t, im, data, 5000)
	if n := src2.bytes.Load(); n != 0 {
		t.Fatalf("warm cache read %d bytes from the source, want 0", n)
	}
	st := c.Stats()
	if st.Misses != 0 || st.Hits == 0 || st.Chunks != cl.Count() {
		t.Fatalf("stats %+v", st)
	}
	if s := st.String(); !strings.Contains(s, "misses 0, from source 0 bytes") || !strings.Contains(s, fmt.Sprintf("cached %d chunks", cl.Count())) {
		t.Fatalf("Stats.String() = %q", s)
	}
}

// TestEviction: the cache stays within its cap, evicts the least
// recently used chunk, and a chunk read often survives.
func TestEviction(t *testing.T) {
	perChunk := int64(cs + keyLen)
	c := openTest(t, t.TempDir(), Options{Size: 10 * perChunk, MemorySize: -1})
	data := randBytes(2, 40*cs)
	src := &memSource{data: data}
	im, err := c.Image(testID("evict"), src, chunksOf(t, data, cs))
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 10)
	for i := int64(1); i < 40; i++ {
		if _, err := im.ReadAt(p, i*cs); err != nil {
			t.Fatal(err)
		}
		if _, err := im.ReadAt(p, 0); err != nil { // keep chunk 0 hot
			t.Fatal(err)
		}
		if st := c.Stats(); st.Bytes > st.Size {
			t.Fatalf("after chunk %d: %d bytes cached, cap %d", i, st.Bytes, st.Size)
		}
	}
	c.Flush()
	st := c.Stats()
	if st.Chunks != 10 || st.EvictedChunks != 30 || st.EvictedBytes != 30*perChunk {
		t.Fatalf("stats %+v, want 10 chunks kept, 30 evicted", st)
	}
	if !c.present(im.key(0), false) || !c.present(im.key(39), false) || c.present(im.key(1), false) || c.present(im.key(29), false) {
		t.Fatal("LRU order not kept: want 0 and 30..39 present, 1..29 evicted")
	}
	// The evicted chunks are gone from the database too.
	n := 0
	c.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if n != 10 {
		t.Fatalf("database holds %d keys, want 10", n)
	}
	// A reopen with a smaller cap evicts down to it.
	dir := c.Dir()
	c.Close()
	c = openTest(t, dir, Options{Size: 4 * perChunk})
	if st := c.Stats(); st.Chunks != 4 || st.Bytes > 4*perChunk {
		t.Fatalf("reopened with a smaller cap: %+v", st)
	}
}

// corrupt replaces a cached chunk's bytes in the database (a torn write,
// a bad disk, or someone editing the cache).
func corrupt(t *testing.T, c *Cache, k ckey) {
	t.Helper()
	err := c.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(k.bytes())
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[len(v)/3] ^= 1
		return txn.Set(k.bytes(), v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCorruptCachedChunk(t *testing.T) {
	var logs logBuf
	c := openTest(t, t.TempDir(), Options{MemorySize: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	data := randBytes(3, 6*cs)
	src := &memSource{data: data}
	id := testID("corrupt")
	im, err := c.Image(id, src, chunksOf(t, data, cs))
	if err != nil {
		t.Fatal(err)
	}
	checkRead(t, im, data, cs)
	c.Flush()
	corrupt(t, c, im.key(2))
	before := src.bytes.Load()
	checkRead(t, im, data, cs)
	if got := src.bytes.Load() - before; got != cs {
		t.Fatalf("re-read %d bytes from the source, want one chunk (%d)", got, cs)
	}
	if st := c.Stats(); st.VerifyFailures != 1 {
		t.Fatalf("stats %+v, want 1 verification failure", st)
	}
	if !strings.Contains(logs.String(), "chunk=2") || !strings.Contains(logs.String(), id) {
		t.Fatalf("no log line naming the image and chunk:\n%s", logs.String())
	}
	// The chunk was stored again, correct: the next read hits.
	before = src.bytes.Load()
	checkRead(t, im, data, cs)
	if src.bytes.Load() != before || c.Stats().VerifyFailures != 1 {
		t.Fatal("the re-read chunk was not stored again correctly")
	}
}

func TestSourceWrongBytes(t *testing.T) {
	for _, kind := range []string{"plain", "file"} {
		t.Run(kind, func(t *testing.T) { testSourceWrongBytes(t, kind) })
	}
}

// testSourceWrongBytes: kind "file" reads through a FileSource, which
// hashes each chunk while reading it in pieces.
func testSourceWrongBytes(t *testing.T, kind string) {
	var logs logBuf
	// No read-ahead: the test counts each chunk's verifications.
	c := openTest(t, t.TempDir(), Options{ReadAhead: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	data := randBytes(4, 6*cs)
	id := testID("wrong")
	// Chunk 3 is always wrong; chunk 4 is wrong the first time only.
	src := &memSource{data: data, bad: func(off, attempt int64) bool {
		return off == 3*cs || (off == 4*cs && attempt == 1)
	}}
	var s Source = src
	if kind == "file" {
		s = NewFileSource(src, int64(len(data)), "memory")
	}
	im, err := c.Image(id, s, chunksOf(t, data, cs))
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	_, err = im.ReadAt(p, 3*cs+10)
	var re *ReadError
	if !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrCorrupt) || !errors.As(err, &re) || re.Chunk != 3 || re.Image != id {
		t.Fatalf("wrong bytes from the source: err %v, want a ReadError for chunk 3 matching EIO and ErrCorrupt", err)
	}
	if v, _ := src.tries.Load(int64(3 * cs)); v.(*atomic.Int64).Load() != 2 {
		t.Fatalf("source read %d times, want 2 (one retry)", v.(*atomic.Int64).Load())
	}
	if c.present(im.key(3), false) || c.Stats().Chunks != 0 {
		t.Fatal("a chunk that failed verification was cached")
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "chunk=3") || !strings.Contains(l, "source=memory") || !strings.Contains(l, id) {
		t.Fatalf("no clear error line:\n%s", l)
	}
	// Again: still an error, still nothing cached.
	if _, err := im.ReadAt(p, 3*cs); !errors.Is(err, syscall.EIO) || c.present(im.key(3), false) {
		t.Fatalf("second read: %v", err)
	}
	// A flaky source: the retry succeeds.
	if _, err := im.ReadAt(p, 4*cs); err != nil || !bytes.Equal(p, data[4*cs:4*cs+100]) {
		t.Fatalf("flaky chunk: %v", err)
	}
	c.Flush()
	if st := c.Stats(); st.VerifyFailures != 5 || st.Chunks != 1 {
		t.Fatalf("stats %+v, want 5 failures (2+2+1) and 1 chunk", st)
	}
}

func TestConcurrentReadersOneFetch(t *testing.T) {
	c := openTest(t, t.TempDir(), Options{ReadAhead: -1}) // counts the readers' own fetches
	data := randBytes(5, 8*cs)
	gate := make(chan struct{})
	src := &memSource{data: data, gate: gate}
	im, err := c.Image(testID("concurrent"), src, chunksOf(t, data, cs))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 512)
			off := int64(5*cs + g*64)
			if _, err := im.ReadAt(p, off); err != nil || !bytes.Equal(p, data[off:off+512]) {
				errs <- fmt.Errorf("reader %d: %v", g, err)
			}
		}()
	}
	// Other chunks are read concurrently while chunk 5 is in flight.
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, cs)
			if _, err := im.ReadAt(p, int64(g)*cs); err != nil || !bytes.Equal(p, data[g*cs:(g+1)*cs]) {
				errs <- fmt.Errorf("other chunk %d: %v", g, err)
			}
		}()
	}
	for {
		c.mu.Lock()
		n := len(c.fl)
		c.mu.Unlock()
		if n == 5 {
			break
		}
		runtime.Gosched()
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := src.reads.Load(); n != 5 {
		t.Fatalf("%d source reads for 5 chunks, want 5", n)
	}
}

func TestNoChunkList(t *testing.T) {
	c := openTest(t, t.TempDir(), Options{})
	data := randBytes(6, 3*cs+5)
	fsrc := NewFileSource(bytes.NewReader(data), int64(len(data)), "file")
	im, err := c.Image(testID("nolist"), fsrc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if im.Cached() {
		t.Fatal("an image without a chunk list is cached")
	}
	checkRead(t, im, data, 1000)
	if st := c.Stats(); st.SourceBytes != int64(len(data)) || st.Chunks != 0 {
		t.Fatalf("uncached read stats %+v", st)
	}
	if err := im.Warm(context.Background(), nil, nil); !errors.Is(err, ErrNoChunkList) {
		t.Fatalf("Warm without a chunk list: %v", err)
	}
	hs, err := NewHTTPSource("http://127.0.0.1:1", testID("nolist"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Image(testID("nolist"), hs, nil); !errors.Is(err, ErrNoChunkList) {
		t.Fatalf("HTTP source without a chunk list: %v", err)
	}
	if _, err := c.Image("xyz", fsrc, nil); err == nil {
		t.Fatal("bad id accepted")
	}
	if _, err := c.Image(testID("x"), NewFileSource(bytes.NewReader(data), 5, "short"), chunksOf(t, data, cs)); err == nil {
		t.Fatal("a file whose size differs from its chunk list was accepted")
	}
}

func TestInUse(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, Options{})
	_, err := Open(dir, Options{Size: 1 << 20})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("cache %s in use by PID %d", dir, syscall.Getpid())) {
		t.Fatalf("second open: %v", err)
	}
}

func TestTrace(t *testing.T) {
	c := openTest(t, t.TempDir(), Options{})
	data := randBytes(7, 10*cs)
	im, err := c.Image(testID("trace"), &memSource{data: data}, chunksOf(t, data, cs))
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 10)
	im.ReadAt(p, 0) // before the trace: not recorded
	tr := im.StartTrace(4)
	for _, i := range []int64{7, 2, 7, 0, 2, 9, 5, 1} {
		im.ReadAt(p, i*cs+3)
	}
	im.ReadAt(make([]byte, 2*cs), 3*cs) // not recorded: the trace is full
	if got := im.StopTrace(); got != tr {
		t.Fatal("StopTrace returned another trace")
	}
	im.ReadAt(p, 8*cs)
	if got, want := fmt.Sprint(tr.Chunks()), "[7 2 0 9]"; got != want {
		t.Fatalf("trace %s, want %s", got, want)
	}
	tr = im.StartTrace(100)
	im.ReadAt(make([]byte, cs+2), 4*cs-1) // spans chunks 3, 4, 5
	if got, want := fmt.Sprint(tr.Chunks()), "[3 4 5]"; got != want {
		t.Fatalf("trace %s, want %s", got, want)
	}
	if tr.LastRead().IsZero() {
		t.Fatal("no last read time")
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"4096", 4096, true}, {"1k", 1 << 10, true}, {"1K", 1 << 10, true},
		{"512M", 512 << 20, true}, {"20G", 20 << 30, true}, {"2t", 2 << 40, true},
		{"", 0, false}, {"M", 0, false}, {"-1", 0, false}, {"1.5G", 0, false}, {"1GB", 0, false},
		{"1 G", 0, false}, {"9223372036854775807", 1<<63 - 1, true}, {"8388608T", 0, false},
		{"99999999999999999999", 0, false}, {"+5", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{}); err == nil {
		t.Fatal("Open without a size succeeded")
	}
	if _, err := Open(t.TempDir(), Options{Size: 1 << 20, ValueLogFileSize: 1000}); err == nil {
		t.Fatal("tiny value log accepted")
	}
}

// TestReadAhead: a read that fetches chunk i while chunk i-1 is in memory
// (a reader moving forward) brings chunks i+1 and i+2 into memory in the
// background; the first read of a chunk fetched so brings the next ones;
// a read elsewhere brings nothing more; a sequential read still fetches
// each chunk once; ReadAhead -1 fetches only what is read.
func TestReadAhead(t *testing.T) {
	data := randBytes(11, 12*cs)
	for _, tt := range []struct {
		name  string
		ahead int
		want  []int64 // chunks in memory (besides 9) after reading chunk 0, then chunk 1
	}{
		{"default", 0, []int64{0, 1, 2, 3}},
		{"off", -1, []int64{0, 1}},
		{"four", 4, []int64{0, 1, 2, 3, 4, 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := openTest(t, t.TempDir(), Options{ReadAhead: tt.ahead})
			src := &memSource{data: data}
			im, err := c.Image(testID("ahead"+tt.name), src, chunksOf(t, data, cs))
			if err != nil {
				t.Fatal(err)
			}
			p := make([]byte, 100)
			inMemory := func() []int64 {
				var in []int64
				for i := range int64(12) {
					if c.memHas(im.key(i)) {
						in = append(in, i)
					}
				}
				return in
			}
			for _, off := range []int64{9 * cs, 0} { // not moving forward
				if _, err := im.ReadAt(p, off); err != nil || !bytes.Equal(p, data[off:off+100]) {
					t.Fatalf("read at %d: %v", off, err)
				}
				c.raWG.Wait()
			}
			if in := inMemory(); !slices.Equal(in, []int64{0, 9}) {
				t.Errorf("after reads of chunks 9 and 0: chunks in memory %v, want [0 9]", in)
			}
			if _, err := im.ReadAt(p, cs); err != nil || !bytes.Equal(p, data[cs:cs+100]) {
				t.Fatalf("read at %d: %v", cs, err)
			}
			c.raWG.Wait()
			if in := inMemory(); !slices.Equal(in, append(tt.want, 9)) {
				t.Errorf("then chunk 1: chunks in memory %v, want %v", in, append(tt.want, 9))
			}
			checkRead(t, im, data, 4096)
			c.raWG.Wait()
			if got := src.bytes.Load(); got != int64(len(data)) {
				t.Errorf("a sequential read took %d bytes from the source, want %d (each chunk once)", got, len(data))
			}
		})
	}
}

// TestReadAheadWarmStaysOffSource: a reader served from disk reads ahead
// only chunks on disk: a warm cache reads nothing from the source for
// the reads that filled it.
func TestReadAheadWarmStaysOffSource(t *testing.T) {
	dir := t.TempDir()
	data := randBytes(12, 12*cs)
	cl := chunksOf(t, data, cs)
	src := &memSource{data: data}
	id := testID("warm-ahead")
	c := openTest(t, dir, Options{})
	im, err := c.Image(id, src, cl)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	for _, off := range []int64{0, cs} { // chunks 0 and 1, and 2 and 3 ahead
		if _, err := im.ReadAt(p, off); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	before := src.bytes.Load()
	if before != 4*cs {
		t.Fatalf("cold read with read-ahead took %d bytes from the source, want 4 chunks", before)
	}
	c = openTest(t, dir, Options{})
	if im, err = c.Image(id, src, cl); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, cs} {
		if _, err := im.ReadAt(p, off); err != nil {
			t.Fatal(err)
		}
		c.raWG.Wait()
	}
	if !c.memHas(im.key(2)) || !c.memHas(im.key(3)) {
		t.Error("chunks 2 and 3 not read ahead from disk")
	}
	for _, off := range []int64{2 * cs, 3 * cs} {
		if _, err := im.ReadAt(p, off); err != nil || !bytes.Equal(p, data[off:off+100]) {
			t.Fatalf("read at %d: %v", off, err)
		}
		c.raWG.Wait()
	}
	if got := src.bytes.Load() - before; got != 0 || c.memHas(im.key(4)) {
		t.Errorf("warm reads took %d bytes from the source (chunk 4 in memory: %v), want 0", got, c.memHas(im.key(4)))
	}
}

// TestStoreWaitsForQuiet: chunks read from the source are served at once
// and written to the database only when reads from the source have
// stopped for StoreQuiet, when half the writer's queue is full, or when
// Flush asks; until then they are served from the queue.
func TestStoreWaitsForQuiet(t *testing.T) {
	const chunk = 256 << 10
	const capBytes = 128 << 20
	n := int(min(storeQueueBytes, capBytes/8)/2/chunk) + 4 // enough chunks to pass half the queue (an eighth of the cap)
	data := randBytes(7, n*chunk)
	tests := []struct {
		name  string
		quiet time.Duration
		read  int  // chunks read
		flush bool // call Flush
		want  func(stored int64) bool
		what  string
	}{
		{"held while not quiet", time.Hour, 3, false, func(s int64) bool { return s == 0 }, "none stored"},
		{"flush writes", time.Hour, 3, true, func(s int64) bool { return s == 3 }, "all 3 stored"},
		{"half the queue writes", time.Hour, n, false, func(s int64) bool { return s > 0 }, "some stored"},
		{"quiet writes", 10 * time.Millisecond, 3, false, func(s int64) bool { return s == 3 }, "all 3 stored"},
		{"at once", -1, 3, false, func(s int64) bool { return s == 3 }, "all 3 stored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &memSource{data: data}
			c := openTest(t, t.TempDir(), Options{Size: capBytes, StoreQuiet: tt.quiet, ReadAhead: -1, MemorySize: -1})
			im, err := c.Image(testID("quiet"), src, chunksOf(t, data, chunk))
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.read {
				if _, err := im.ReadAt(make([]byte, 100), int64(i)*chunk); err != nil {
					t.Fatal(err)
				}
			}
			if tt.flush {
				c.Flush()
			}
			// The writer runs on its own: give it time to do what it may.
			var stored int64
			wait := 2 * time.Second
			if tt.want(0) {
				wait = 100 * time.Millisecond
			}
			for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if stored = c.Stats().Chunks; tt.want(stored) && stored != 0 {
					break
				}
			}
			if !tt.want(stored) {
				t.Fatalf("%d chunks stored after reading %d, want %s", stored, tt.read, tt.what)
			}
			// Whatever waits is served without the source.
			before := src.reads.Load()
			checkRead(t, im, data[:tt.read*chunk], 4096)
			if got := src.reads.Load() - before; got != 0 {
				t.Errorf("reading them again took %d source reads", got)
			}
			c.Flush()
			if got := c.Stats().Chunks; got != int64(tt.read) {
				t.Errorf("after Flush %d chunks stored, want %d", got, tt.read)
			}
		})
	}
}

// TestReadAtHashing: a FileSource hashes what it reads, piece by piece,
// whatever the length; a short file gives io.EOF and the bytes it has.
func TestReadAtHashing(t *testing.T) {
	data := randBytes(9, 5*hashPiece+123)
	fs := NewFileSource(bytes.NewReader(data), int64(len(data)), "memory")
	tests := []struct {
		name    string
		off, n  int
		wantN   int
		wantErr error
	}{
		{"one piece", 0, hashPiece, hashPiece, nil},
		{"pieces and a tail", 10, 3*hashPiece + 7, 3*hashPiece + 7, nil},
		{"to the end", 2 * hashPiece, len(data) - 2*hashPiece, len(data) - 2*hashPiece, nil},
		{"past the end", 4 * hashPiece, 2 * hashPiece, len(data) - 4*hashPiece, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sha256.New()
			h.Write([]byte("left over")) // reset first
			p := make([]byte, tt.n)
			n, err := fs.readAtHashing(p, int64(tt.off), h)
			if n != tt.wantN || err != tt.wantErr {
				t.Fatalf("readAtHashing = %d, %v; want %d, %v", n, err, tt.wantN, tt.wantErr)
			}
			want := sha256.Sum256(data[tt.off : tt.off+n])
			if !bytes.Equal(p[:n], data[tt.off:tt.off+n]) || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatal("bytes or hash differ from the file's")
			}
		})
	}
}
