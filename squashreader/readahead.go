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

	mu     sync.Mutex
	last   map[int64]int64 // first block offset of a file -> end of its last read
	closed bool
}

func newReadahead(r *Reader, depth int) *readahead {
	ra := &readahead{r: r, depth: depth, jobs: make(chan blockKey, depth*4), last: map[int64]int64{}}
	workers := max(1, min(depth, 64))
	if w := numCPU(); workers > w {
		workers = w
	}
	for i := 0; i < workers; i++ {
		ra.wg.Add(1)
		go ra.work()
	}
	return ra
}

func (ra *readahead) work() {
	defer ra.wg.Done()
	for k := range ra.jobs {
		ra.r.block(k) //nolint:errcheck // errors surface on the real read
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

// access notes a read of f at [off, off+n) and schedules the following
// blocks when the read continues the previous one.
func (ra *readahead) access(f *Inode, off, n int64) {
	if len(f.starts) < 2 {
		return
	}
	key := f.starts[0]
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.closed {
		return
	}
	prev, seen := ra.last[key]
	if len(ra.last) > 4096 {
		clear(ra.last)
	}
	ra.last[key] = off + n
	if off != 0 && (!seen || off < prev-ra.r.bs || off > prev+ra.r.bs) {
		return
	}
	bs := ra.r.bs
	first := (off + n + bs - 1) / bs
	for bi := first; bi < first+int64(ra.depth) && bi < int64(len(f.sizes)); bi++ {
		if f.sizes[bi]&^uncompressedBit == 0 {
			continue
		}
		want := min(bs, int64(f.Size)-bi*bs)
		k := blockKey{off: f.starts[bi], word: f.sizes[bi], want: uint32(want)}
		if ra.r.data.peek(k) {
			continue
		}
		select {
		case ra.jobs <- k:
		default:
			return
		}
	}
}

func numCPU() int { return runtime.GOMAXPROCS(0) }
