// SPDX-License-Identifier: BSD-3-Clause

package nodecache

import (
	"container/list"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Errors; test with errors.Is.
var (
	// ErrInUse: another process holds the cache directory.
	ErrInUse = errors.New("cache directory in use")
	// ErrCorrupt: a chunk's bytes do not match its sha256 in the chunk list.
	ErrCorrupt = errors.New("chunk does not match its sha256")
	// ErrNoChunkList: the source needs a chunk list to be read through
	// the cache (every source but a FileSource), or Warm was called on an
	// image read through uncached.
	ErrNoChunkList = errors.New("image has no chunk list")
	// ErrClosed: the cache was closed.
	ErrClosed = errors.New("cache closed")
)

// Options configure a Cache.
type Options struct {
	// Size caps the bytes of chunks kept on disk (values plus keys);
	// required. Disk use is Size plus the overhead documented in
	// docs/ARCHITECTURE.md (badger's value-log garbage and LSM tree).
	Size int64
	// MemorySize bounds an in-memory cache of recently read, verified
	// chunks in front of the database (default 16 MiB; negative: none).
	// It saves re-reading and re-hashing a chunk for every small read in it.
	MemorySize int64
	// WarmParallel is the number of chunks Warm fetches at once (default 4).
	WarmParallel int
	// ReadAhead is how many chunks past one that a read had to fetch
	// (from disk or the source) while the chunk before it was in memory
	// (a reader moving forward) are fetched in the background into the
	// memory tier, and again when a read first reaches a chunk fetched
	// so: the source's latency and the hashing overlap the reader's work
	// (default 2; negative, or no memory tier: none). At most ReadAhead
	// fetches run at once cache-wide.
	ReadAhead int
	// ValueLogFileSize is the size of badger's value-log files, the unit
	// in which space is given back (default Size/16, within [1 MiB,
	// 256 MiB]). Stores wait while the GC rewrites one file.
	ValueLogFileSize int64
	// GCInterval is how often the value log is garbage-collected besides
	// after evictions (default 1 minute).
	GCInterval time.Duration
	// StoreQuiet is how long no chunk must have been fetched from a
	// source before the writer stores the chunks waiting for it (default
	// 20 ms; negative: at once). Writing to the database costs CPU
	// (badger copies each value into its memory-mapped log) that a
	// starting container would otherwise compete with; the writer also
	// starts once half its queue is full (64 MiB, at most Size/8), and
	// when Flush or Close asks.
	StoreQuiet time.Duration
	// Logger receives verification failures and badger's warnings
	// (default: discard).
	Logger *slog.Logger
}

// Stats are the cache's counters (cache-wide from Cache.Stats, one image's
// from Image.Stats).
type Stats struct {
	Hits           int64 // chunk reads served from memory or disk, the source untouched
	Misses         int64 // chunk reads that went to the source (reads and warm-up)
	SourceBytes    int64 // bytes read from sources, including uncached images and retries
	EvictedBytes   int64 // bytes of chunks evicted to stay within the cap
	EvictedChunks  int64
	VerifyFailures int64 // chunks whose bytes did not match their sha256 (cache or source)
	NotStored      int64 // chunks served but not stored: the database was over its disk budget
	// Cache-wide only:
	Chunks int64 // chunks on disk
	Bytes  int64 // bytes on disk (the figure held within Size)
	Size   int64 // the cap
}

// String formats the counters on one line (for shifter-mount --stats).
func (s Stats) String() string {
	str := fmt.Sprintf("hits %d, misses %d, from source %d bytes, evicted %d chunks (%d bytes), verification failures %d, not stored %d",
		s.Hits, s.Misses, s.SourceBytes, s.EvictedChunks, s.EvictedBytes, s.VerifyFailures, s.NotStored)
	if s.Size > 0 {
		str += fmt.Sprintf(", cached %d chunks (%d of %d bytes)", s.Chunks, s.Bytes, s.Size)
	}
	return str
}

type counters struct {
	hits, misses, sourceBytes, evictedBytes, evictedChunks, verifyFailures, notStored atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), SourceBytes: c.sourceBytes.Load(),
		EvictedBytes: c.evictedBytes.Load(), EvictedChunks: c.evictedChunks.Load(),
		VerifyFailures: c.verifyFailures.Load(), NotStored: c.notStored.Load(),
	}
}

// ckey names one chunk: image id, chunk size (log2) and index. Its
// database key is 'c', the 32 id bytes, the shift, and the index as 8
// big-endian bytes.
type ckey struct {
	id    [32]byte
	shift uint8
	idx   int64
}

const keyLen = 1 + 32 + 1 + 8

func (k ckey) bytes() []byte {
	b := make([]byte, keyLen)
	b[0] = 'c'
	copy(b[1:], k.id[:])
	b[33] = k.shift
	binary.BigEndian.PutUint64(b[34:], uint64(k.idx))
	return b
}

func parseKey(b []byte) (ckey, bool) {
	if len(b) != keyLen || b[0] != 'c' {
		return ckey{}, false
	}
	var k ckey
	copy(k.id[:], b[1:33])
	k.shift = b[33]
	k.idx = int64(binary.BigEndian.Uint64(b[34:]))
	return k, k.idx >= 0
}

// diskEntry is a chunk on disk in the LRU list.
type diskEntry struct {
	key  ckey
	size int64 // value bytes + key bytes
}

// memEntry is a verified chunk in memory.
type memEntry struct {
	key  ckey
	data []byte
}

// Cache is a node-local chunk cache shared by any number of images. Its
// methods are safe for concurrent use.
type Cache struct {
	dir  string
	db   *badger.DB
	lock *os.File
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	lru   list.List // of *diskEntry, front = most recently used
	index map[ckey]*list.Element
	used  int64
	fl    map[ckey]*flight
	// Verified chunks read from a source are stored by one writer
	// goroutine, off the reader's path: pending holds them (and serves
	// them) until they are in the database.
	pending   map[ckey][]byte
	pendBytes int64      // bytes in pending
	storeFIFO []storeReq // the writer's queue, oldest first (all in pending)
	flushing  int        // Flush calls waiting: the writer does not wait for quiet
	pendCond  *sync.Cond // on mu: broadcast when a pending store ends
	closing   bool       // Close has begun: no more read-ahead
	noStores  bool       // Close has waited for the read-ahead: no more stores are queued
	storeKick chan struct{}
	lastFetch atomic.Int64   // unix nanoseconds of the last read from a source
	raSem     chan struct{}  // read-ahead fetches running
	raWG      sync.WaitGroup // read-ahead fetches, waited for by Close

	memMu    sync.Mutex
	memLRU   list.List // of *memEntry
	memIndex map[ckey]*list.Element
	memUsed  int64

	stats     counters
	gcPending atomic.Int64 // bytes deleted since the last value-log GC
	gcMu      sync.Mutex   // one GC at a time
	// writeMu keeps our writes out of the value-log GC: badger 4.9's
	// rewrite reads the memtable's maxVersion while its writer updates
	// it unsynchronized (a data race the race detector reports).
	writeMu   sync.RWMutex
	deleted   atomic.Bool  // keys deleted since the last flushLSM
	written   atomic.Int64 // bytes stored since the last disk check
	overDisk  atomic.Bool  // the last disk check found the database over its budget
	gcKick    chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// storeQueueBytes is how many bytes of verified chunks may wait for the
// writer, at most an eighth of the cap (a chunk waiting has no place in
// the LRU order yet: a chunk read meanwhile from disk may be evicted
// before it, so the queue is kept small beside the cap); a reader that
// finds it full waits. Half of it is what a start may read from the
// source before the writer competes with it for CPU: a cold Python start
// reads about 18 MiB, and with a 16 MiB queue the writer ran during it.
// The gain measured is small (cold Python 153 ms against 158 ms with 16
// MiB, alternating runs; a first A/B that showed more was noise). The
// chunks waiting are mostly the memory tier's too (the same buffers).
const storeQueueBytes = 64 << 20

// storeMax is the cache's store queue size (see storeQueueBytes).
func (c *Cache) storeMax() int64 { return min(storeQueueBytes, c.opts.Size/8) }

type storeReq struct {
	k    ckey
	data []byte
}

// flight is one fetch of a chunk; concurrent readers of the chunk wait on it.
type flight struct {
	done chan struct{}
	data []byte
	from origin
	err  error
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Debugf(f string, a ...any)   {}

// blockCacheSize is badger's block cache (table blocks: keys and value
// pointers).
const blockCacheSize = 4 << 20

// HeapBudget is the memory the cache may keep on the Go heap: its memory
// tier, badger's block cache and memtables, a chunk (of up to 1 MiB) in
// flight per warm-up worker and read-ahead fetch, and the chunks queued
// for the writer. A process holding a cache counts it in its soft
// memory limit (shifter-mount does): under a limit that leaves it out,
// the collector runs all the time (a warm full read of an image went
// from 1.4 s to 3.2 s).
func (c *Cache) HeapBudget() int64 {
	return max(c.opts.MemorySize, 0) + blockCacheSize + 2*memtableSize(c.opts.Size) + int64(c.opts.WarmParallel+c.opts.ReadAhead)*(1<<20) + c.storeMax()
}

// Open opens (creating) the cache in dir and sets its mode to 0700. The directory holds
// a lock file naming the owner's pid and the badger database in db/; a
// second process opening it gets an error wrapping ErrInUse ("cache DIR
// in use by PID N"). The LRU order is rebuilt from the database: chunks
// written earlier count as less recently used.
func Open(dir string, opts Options) (*Cache, error) {
	if opts.Size <= 0 {
		return nil, fmt.Errorf("cache %s: size must be positive, got %d", dir, opts.Size)
	}
	if opts.MemorySize == 0 {
		opts.MemorySize = 16 << 20
	}
	if opts.WarmParallel <= 0 {
		opts.WarmParallel = 4
	}
	switch {
	case opts.ReadAhead < 0 || opts.MemorySize < 0:
		opts.ReadAhead = 0
	case opts.ReadAhead == 0:
		opts.ReadAhead = 2
	}
	if opts.ValueLogFileSize == 0 {
		opts.ValueLogFileSize = min(max(opts.Size/16, 1<<20), 256<<20)
	}
	if opts.ValueLogFileSize < 1<<20 || opts.ValueLogFileSize >= 2<<30 {
		return nil, fmt.Errorf("cache %s: value log file size %d outside [1 MiB, 2 GiB)", dir, opts.ValueLogFileSize)
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = time.Minute
	}
	switch {
	case opts.StoreQuiet == 0:
		opts.StoreQuiet = 20 * time.Millisecond
	case opts.StoreQuiet < 0:
		opts.StoreQuiet = 0
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// The cache holds private images: only its owner may enter it.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	// The memtable holds only keys and value pointers (about 150 bytes a
	// chunk). Badger learns which value-log bytes are garbage only when a
	// flushed memtable is compacted with older tables, so the memtable is
	// kept small for the cap: it fills after about Size/20 bytes written
	// in 256 KiB chunks.
	memtable := memtableSize(opts.Size)
	bopts := badger.DefaultOptions(filepath.Join(dir, "db")).
		WithLogger(badgerLogger{opts.Logger.With("component", "badger")}).
		WithSyncWrites(false).
		WithValueThreshold(1024).
		WithMemTableSize(memtable).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(max(memtable, 256<<10)).
		WithBaseLevelSize(4 << 20).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(0).
		WithNumCompactors(2).
		WithCompression(options.None).
		WithDetectConflicts(false).
		WithMetricsEnabled(false)
	db, err := openDB(bopts, opts.Logger)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("cache %s: open database: %w", dir, err)
	}
	c := &Cache{
		dir: dir, db: db, lock: lock, opts: opts, log: opts.Logger,
		index: map[ckey]*list.Element{}, memIndex: map[ckey]*list.Element{}, fl: map[ckey]*flight{},
		pending: map[ckey][]byte{}, storeKick: make(chan struct{}, 1), raSem: make(chan struct{}, opts.ReadAhead),
		gcKick: make(chan struct{}, 1), done: make(chan struct{}),
	}
	c.pendCond = sync.NewCond(&c.mu)
	if err := c.load(); err != nil {
		db.Close()
		lock.Close()
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	c.wg.Add(2)
	go c.gcLoop()
	go c.storeLoop()
	return c, nil
}

// memtableSize is badger's memtable size for a cache of size bytes (see
// Open).
func memtableSize(size int64) int64 { return min(max(size>>15, 16<<10), 16<<20) }

// openDB opens the database after a crash too. Badger 4.9 cannot open a
// directory where it died between creating a memtable's log file and
// sizing it (an empty .mem file: "Create a new file"); such a file holds
// nothing and is removed first. If the database still does not open,
// it is a cache: it is moved aside, removed, and started empty, with an
// error logged.
func openDB(bopts badger.Options, log *slog.Logger) (*badger.DB, error) {
	if ents, err := os.ReadDir(bopts.Dir); err == nil {
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".mem") {
				continue
			}
			if info, err := e.Info(); err == nil && info.Mode().IsRegular() && info.Size() == 0 {
				os.Remove(filepath.Join(bopts.Dir, e.Name()))
			}
		}
	}
	// Badger's own directory lock can be held a moment longer by a child
	// that a previous owner was forking (the descriptor is inherited until
	// exec): wait for it, and never take a held lock for a broken database.
	var db *badger.DB
	var err error
	for deadline := time.Now().Add(3 * time.Second); ; {
		db, err = badger.Open(bopts)
		if err == nil || !strings.Contains(err.Error(), "Cannot acquire directory lock") {
			break
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err == nil {
		return db, nil
	}
	log.Error("node cache: database does not open, starting an empty cache", "dir", bopts.Dir, "err", err)
	old := bopts.Dir + ".broken"
	if rerr := os.RemoveAll(old); rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	if rerr := os.Rename(bopts.Dir, old); rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	os.RemoveAll(old)
	return badger.Open(bopts)
}

// load rebuilds the LRU list from the database's keys, oldest write
// first, and evicts down to the cap (which may have shrunk).
func (c *Cache) load() error {
	type ent struct {
		k    ckey
		size int64
		ver  uint64
	}
	var ents []ent
	var junk [][]byte
	err := c.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k, ok := parseKey(item.Key())
			if !ok {
				junk = append(junk, item.KeyCopy(nil))
				continue
			}
			ents = append(ents, ent{k, item.ValueSize() + keyLen, item.Version()})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan database: %w", err)
	}
	slices.SortFunc(ents, func(a, b ent) int {
		switch {
		case a.ver < b.ver:
			return -1
		case a.ver > b.ver:
			return 1
		}
		return 0
	})
	for _, e := range ents {
		c.index[e.k] = c.lru.PushFront(&diskEntry{e.k, e.size})
		c.used += e.size
	}
	c.mu.Lock()
	victims := c.evictLocked(0)
	c.mu.Unlock()
	return c.deleteKeys(victims, junk)
}

// evictLocked removes least recently used entries from the index until
// need more bytes fit under the cap, and returns them for deletion.
func (c *Cache) evictLocked(need int64) []*diskEntry {
	var out []*diskEntry
	for c.used+need > c.opts.Size {
		e := c.lru.Back()
		if e == nil {
			break
		}
		de := e.Value.(*diskEntry)
		c.lru.Remove(e)
		delete(c.index, de.key)
		c.used -= de.size
		out = append(out, de)
	}
	return out
}

// deleteKeys deletes evicted chunks (and stray keys) from the database,
// counts them, and wakes the value-log GC when enough is deleted.
func (c *Cache) deleteKeys(victims []*diskEntry, extra [][]byte) error {
	if len(victims) == 0 && len(extra) == 0 {
		return nil
	}
	var bytes int64
	keys := extra
	for _, v := range victims {
		c.memDrop(v.key)
		keys = append(keys, v.key.bytes())
		bytes += v.size
	}
	if err := c.deleteAll(keys); err != nil {
		return fmt.Errorf("evict: %w", err)
	}
	c.stats.evictedBytes.Add(bytes)
	c.stats.evictedChunks.Add(int64(len(victims)))
	c.deleted.Store(true)
	if c.gcPending.Add(bytes) >= c.opts.ValueLogFileSize {
		select {
		case c.gcKick <- struct{}{}:
		default:
		}
	}
	return nil
}

// gcLoop garbage-collects the value log after evictions and periodically.
func (c *Cache) gcLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.gcKick:
		case <-t.C:
		}
		c.gcPending.Store(0)
		c.runGC()
	}
}

// runGC rewrites value-log files until none is at least half garbage.
func (c *Cache) runGC() {
	c.gcMu.Lock()
	defer c.gcMu.Unlock()
	if c.deleted.Swap(false) {
		c.writeMu.Lock()
		err := c.flushLSM()
		c.writeMu.Unlock()
		if err != nil {
			c.log.Warn("node cache: flush", "dir", c.dir, "err", err)
		}
	}
	for range 64 {
		select {
		case <-c.done:
			return
		default:
		}
		c.writeMu.Lock()
		err := c.db.RunValueLogGC(0.5)
		c.writeMu.Unlock()
		if err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				c.log.Warn("node cache: value log GC", "dir", c.dir, "err", err)
			}
			return
		}
	}
}

// update runs a read-write transaction, waiting out the moments when
// flushLSM blocks writes.
func (c *Cache) update(fn func(txn *badger.Txn) error) error {
	for try := 0; ; try++ {
		c.writeMu.RLock()
		err := c.db.Update(fn)
		c.writeMu.RUnlock()
		if !errors.Is(err, badger.ErrBlockedWrites) || try == 1000 {
			if errors.Is(err, badger.ErrDBClosed) {
				err = ErrClosed
			}
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

// deleteAll deletes keys in as many transactions as badger's size limit
// needs.
func (c *Cache) deleteAll(keys [][]byte) error {
	for len(keys) > 0 {
		n := 0
		err := c.update(func(txn *badger.Txn) error {
			n = 0
			for _, k := range keys {
				if err := txn.Delete(k); errors.Is(err, badger.ErrTxnTooBig) {
					break
				} else if err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n == 0 {
			return badger.ErrTxnTooBig
		}
		keys = keys[n:]
	}
	return nil
}

// sentinelKey is a key outside the chunk keys, written and dropped to
// flush badger's memtable and compact its level 0 (see flushLSM).
var sentinelKey = []byte("flush")

// flushLSM makes badger flush its memtable and compact level 0, so that
// the deletions of evicted chunks meet the entries they delete and badger
// counts their value-log bytes as garbage. Badger has no call for that;
// DropPrefix of a key that exists does exactly that (and blocks writes
// for the short while it takes: the tree holds keys and pointers only).
func (c *Cache) flushLSM() error {
	if err := c.db.Update(func(txn *badger.Txn) error { return txn.Set(sentinelKey, nil) }); err != nil {
		return err
	}
	return c.db.DropPrefix(sentinelKey)
}

// storeLoop is the writer: it stores the queued chunks in order, once
// no chunk has been fetched from a source for StoreQuiet, or half the
// queue is full, or Flush waits.
func (c *Cache) storeLoop() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		c.mu.Lock()
		wait := time.Duration(-1) // nothing queued: wait for a kick
		var r storeReq
		if len(c.storeFIFO) > 0 {
			wait = 0
			if c.flushing == 0 && c.pendBytes < c.storeMax()/2 {
				wait = max(c.opts.StoreQuiet-time.Since(time.Unix(0, c.lastFetch.Load())), 0)
			}
			if wait == 0 {
				r = c.storeFIFO[0]
				c.storeFIFO[0] = storeReq{}
				c.storeFIFO = c.storeFIFO[1:]
				if len(c.storeFIFO) == 0 {
					c.storeFIFO = nil
				}
			}
		}
		c.mu.Unlock()
		if wait != 0 {
			if wait > 0 {
				timer.Reset(wait)
			}
			select {
			case <-c.done:
				return
			case <-c.storeKick:
			case <-timer.C:
			}
			timer.Stop()
			continue
		}
		if err := c.store(r.k, r.data); err != nil {
			c.log.Warn("node cache: store chunk", "dir", c.dir, "chunk", r.k.idx, "err", err)
		}
		c.mu.Lock()
		delete(c.pending, r.k)
		c.pendBytes -= int64(len(r.data))
		c.pendCond.Broadcast()
		c.mu.Unlock()
	}
}

// kickStore wakes the writer to look at its queue again.
func (c *Cache) kickStore() {
	select {
	case c.storeKick <- struct{}{}:
	default:
	}
}

// storeLater queues a verified chunk for the writer. It waits while the
// queue is full; after Close has begun the chunk is not stored.
func (c *Cache) storeLater(k ckey, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if _, ok := c.index[k]; ok || c.noStores || c.pending[k] != nil {
			return
		}
		if c.pendBytes == 0 || c.pendBytes+int64(len(data)) <= c.storeMax() {
			break
		}
		c.kickStore()
		c.pendCond.Wait()
	}
	c.pending[k] = data
	c.pendBytes += int64(len(data))
	c.storeFIFO = append(c.storeFIFO, storeReq{k, data})
	c.kickStore()
}

// pendingGet returns a chunk waiting for the writer (verified), or nil.
func (c *Cache) pendingGet(k ckey) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[k]
}

// Flush waits until every chunk read so far is in the database (or was
// refused by it: a full disk, a chunk over the cap). Stats and DiskUsage
// count a chunk once it is.
func (c *Cache) Flush() {
	c.mu.Lock()
	c.flushing++
	c.kickStore()
	for len(c.pending) > 0 {
		c.pendCond.Wait()
	}
	c.flushing--
	c.mu.Unlock()
}

// Close stores the queued chunks, stops the GC, closes the database and
// releases the directory.
func (c *Cache) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		c.raWG.Wait()
		c.mu.Lock()
		c.noStores = true
		c.mu.Unlock()
		c.Flush()
		close(c.done)
		c.wg.Wait()
		err = c.db.Close()
		if err == nil {
			if serr := sealValueLog(filepath.Join(c.dir, "db")); serr != nil {
				c.log.Warn("node cache: end the value log with an empty file (the next open reads the last one through)", "dir", c.dir, "err", serr)
			}
		}
		c.lock.Close()
	})
	return err
}

// Dir is the cache directory.
func (c *Cache) Dir() string { return c.dir }

// Stats returns a snapshot of the cache-wide counters.
func (c *Cache) Stats() Stats {
	s := c.stats.snapshot()
	c.mu.Lock()
	s.Chunks, s.Bytes = int64(c.lru.Len()), c.used
	c.mu.Unlock()
	s.Size = c.opts.Size
	return s
}

// DiskUsage returns the bytes allocated to the files in the cache
// directory (what Stats().Bytes plus the database's overhead takes on
// disk; badger preallocates its files sparsely, so this is less than the
// sum of their sizes).
func (c *Cache) DiskUsage() (int64, error) {
	var n int64
	err := filepath.WalkDir(c.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += allocated(info)
		}
		return nil
	})
	return n, err
}

// memGet returns a verified chunk from memory.
func (c *Cache) memGet(k ckey) []byte {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	if e, ok := c.memIndex[k]; ok {
		c.memLRU.MoveToFront(e)
		return e.Value.(*memEntry).data
	}
	return nil
}

// memHas reports whether a chunk is in memory, without touching its
// place in the LRU order.
func (c *Cache) memHas(k ckey) bool {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	_, ok := c.memIndex[k]
	return ok
}

func (c *Cache) memPut(k ckey, data []byte) {
	if int64(len(data)) > c.opts.MemorySize {
		return
	}
	c.memMu.Lock()
	defer c.memMu.Unlock()
	if _, ok := c.memIndex[k]; ok {
		return
	}
	c.memIndex[k] = c.memLRU.PushFront(&memEntry{k, data})
	c.memUsed += int64(len(data))
	for c.memUsed > c.opts.MemorySize {
		e := c.memLRU.Back()
		me := e.Value.(*memEntry)
		c.memLRU.Remove(e)
		delete(c.memIndex, me.key)
		c.memUsed -= int64(len(me.data))
	}
}

func (c *Cache) memDrop(k ckey) {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	if e, ok := c.memIndex[k]; ok {
		c.memLRU.Remove(e)
		delete(c.memIndex, k)
		c.memUsed -= int64(len(e.Value.(*memEntry).data))
	}
}

// present reports whether the chunk is on disk (per the index) or on
// its way there, and marks it recently used.
func (c *Cache) present(k ckey, touch bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[k] != nil {
		return true
	}
	e, ok := c.index[k]
	if ok && touch {
		c.lru.MoveToFront(e)
	}
	return ok
}

// forget drops a chunk from the index and the database (a chunk that
// failed verification, or that the index had and the database did not).
func (c *Cache) forget(k ckey) {
	c.memDrop(k)
	c.mu.Lock()
	if e, ok := c.index[k]; ok {
		c.lru.Remove(e)
		delete(c.index, k)
		c.used -= e.Value.(*diskEntry).size
	}
	c.mu.Unlock()
	if err := c.deleteAll([][]byte{k.bytes()}); err != nil {
		c.log.Warn("node cache: drop chunk", "dir", c.dir, "err", err)
	}
}

// diskGet reads a chunk from the database; nil, nil when absent.
func (c *Cache) diskGet(k ckey) ([]byte, error) {
	var data []byte
	err := c.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k.bytes())
		if err != nil {
			return err
		}
		data, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if errors.Is(err, badger.ErrDBClosed) {
		return nil, ErrClosed
	}
	return data, err
}

// store writes a verified chunk, evicting least recently used chunks to
// stay within the cap. A chunk larger than the cap is not stored.
func (c *Cache) store(k ckey, data []byte) error {
	size := int64(len(data)) + keyLen
	if size > c.opts.Size {
		return nil
	}
	if !c.roomOnDisk(size) {
		c.stats.notStored.Add(1)
		return nil
	}
	c.mu.Lock()
	if _, ok := c.index[k]; ok {
		c.mu.Unlock()
		return nil
	}
	victims := c.evictLocked(size)
	c.index[k] = c.lru.PushFront(&diskEntry{k, size})
	c.used += size
	c.mu.Unlock()
	err := c.update(func(txn *badger.Txn) error { return txn.Set(k.bytes(), data) })
	if err != nil {
		c.mu.Lock()
		if e, ok := c.index[k]; ok {
			c.lru.Remove(e)
			delete(c.index, k)
			c.used -= size
		}
		c.mu.Unlock()
		if errors.Is(err, badger.ErrDBClosed) {
			err = ErrClosed
		}
		err = fmt.Errorf("store chunk: %w", err)
	}
	return errors.Join(err, c.deleteKeys(victims, nil))
}

// DiskOverhead bounds the disk use of a cache: its directory takes at
// most Size*(1+DiskOverhead) + DiskSlack bytes (give or take a value-log
// file), measured under churn by TestChurnDiskUsage. When badger's
// value-log GC lags behind evictions (it learns of garbage only after
// compactions), stores wait for one GC round and, if that is not enough,
// chunks are served without being stored until the GC catches up
// (counted in Stats.NotStored).
const (
	DiskOverhead = 0.5
	DiskSlack    = 16 << 20
)

// roomOnDisk checks, every quarter value-log file written, whether the
// database is within its disk budget; over it, it runs a GC round, and
// reports false while still over.
func (c *Cache) roomOnDisk(size int64) bool {
	if c.written.Add(size) < c.opts.ValueLogFileSize/4 {
		return !c.overDisk.Load()
	}
	c.written.Store(0)
	limit := c.opts.Size + int64(float64(c.opts.Size)*DiskOverhead) + DiskSlack
	du, err := c.DiskUsage()
	if err == nil && du > limit {
		c.runGC()
		du, err = c.DiskUsage()
	}
	over := err == nil && du > limit
	c.overDisk.Store(over)
	return !over
}

// ParseSize parses a size: a decimal number of bytes with an optional
// suffix k, M, G or T (either case; powers of 1024), e.g. "512M", "20G".
func ParseSize(s string) (int64, error) {
	num, mult := s, int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			num = s[:n-1]
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional k, M, G or T suffix", s)
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return v * mult, nil
}

// hexID decodes a 64-hex-digit image id.
func hexID(id string) ([32]byte, error) {
	var b [32]byte
	if len(id) != 64 || strings.ToLower(id) != id {
		return b, fmt.Errorf("image id %q is not 64 lowercase hex digits", id)
	}
	if _, err := hex.Decode(b[:], []byte(id)); err != nil {
		return b, fmt.Errorf("image id %q is not 64 lowercase hex digits", id)
	}
	return b, nil
}
