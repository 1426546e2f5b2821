// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"runtime"
	"sync"
)

// readahead decompresses the blocks that follow a sequential read on a
// pool of workers, into the data cache, so that a cold sequential read of
// a big file uses every core.
type readahead struct {
	r     *Reader
	depth int
	jobs  chan blockKey
	wg    sync.WaitGroup

	mu      sync.Mutex
	last    map[int64]int64 // first block offset of a file -> end of its last read
	closed  bool
	started bool // workers run (started with the first job: not on the path of opening an image)
}

func newReadahead(r *Reader, depth int) *readahead {
	return &readahead{r: r, depth: depth, jobs: make(chan blockKey, max(depth*4, 256)), last: map[int64]int64{}}
}

// startLocked starts the workers; ra.mu is held.
func (ra *readahead) startLocked() {
	ra.started = true
	workers := max(1, min(ra.depth, 64))
	if w := numCPU(); workers > w {
		workers = w
	}
	for i := 0; i < workers; i++ {
		ra.wg.Add(1)
		go ra.work()
	}
}

func (ra *readahead) work() {
	defer ra.wg.Done()
	for k := range ra.jobs {
		ra.r.block(k, true) //nolint:errcheck // errors surface on the real read
	}
}

func (ra *readahead) close() {
	ra.mu.Lock()
	if !ra.closed {
		ra.closed = true
		close(ra.jobs)
	}
	ra.mu.Unlock()
	ra.wg.Wait()
}

// access notes a read of f at [off, off+n). It hands the blocks of the
// read after the first to the workers, so that a large read decompresses
// in parallel, and when the read continues a previous one (within a few
// requests: concurrent FUSE requests arrive slightly out of order), it
// schedules the blocks that follow: Readahead blocks, and at least two
// requests' worth.
func (ra *readahead) access(f *Inode, off, n int64) {
	if len(f.starts) < 2 || n <= 0 {
		return
	}
	bs := ra.r.bs
	key := f.starts[0]
	ra.mu.Lock()
	prev, seen := ra.last[key]
	if len(ra.last) > 4096 {
		clear(ra.last)
	}
	ra.last[key] = off + n
	ra.mu.Unlock()

	firstBlock, lastBlock := off/bs, (off+n-1)/bs
	ra.schedule(f, firstBlock+1, lastBlock+1)
	window := 4 * max(n, bs)
	if off != 0 && (!seen || off < prev-window || off > prev+window) {
		return
	}
	depth := max(int64(ra.depth), 2*(lastBlock-firstBlock+1))
	ra.schedule(f, lastBlock+1, lastBlock+1+depth)
}

// schedule queues blocks [from, to) of f that are neither cached nor being
// decompressed; it never blocks (a full queue drops the rest).
func (ra *readahead) schedule(f *Inode, from, to int64) {
	to = min(to, int64(len(f.sizes)))
	for bi := from; bi < to; bi++ {
		if f.sizes[bi]&^uncompressedBit == 0 {
			continue
		}
		k := ra.r.dataKey(f, bi)
		if ra.r.data.peek(k) {
			continue
		}
		ra.mu.Lock()
		if ra.closed {
			ra.mu.Unlock()
			return
		}
		if !ra.started {
			ra.startLocked()
		}
		select {
		case ra.jobs <- k:
			ra.mu.Unlock()
		default:
			ra.mu.Unlock()
			return
		}
	}
}

func numCPU() int { return runtime.GOMAXPROCS(0) }
