// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// TestConcurrentReads reads every file from many goroutines at once, with
// caches small enough to evict, and compares with a serial read.
func TestConcurrentReads(t *testing.T) {
	tree := featureTree(t, true)
	img := sqtest.Build(t, tree.Dir, "-b", "4K")
	ref, err := OpenFile(img, &Options{Readahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	ins := walkInodes(t, ref)
	want := map[string][]byte{}
	for p, in := range ins {
		if in.Type == TypeFile {
			b := make([]byte, in.Size)
			if _, err := ref.ReadAt(in, b, 0); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			want[p] = b
		}
	}
	for _, opts := range []*Options{
		{MetadataCacheSize: 2, DataCacheSize: 16 << 10, Readahead: 4},
		{MetadataCacheSize: 1, DataCacheSize: -1, Readahead: -1},
		{DataCacheSize: 1 << 20, DirectReads: 1},
		nil,
	} {
		t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
			r, err := OpenFile(img, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for p, w := range want {
						in, err := r.LookupPath(pathKey(p))
						if err != nil {
							errs <- err
							return
						}
						got := make([]byte, len(w))
						// Different chunkings per goroutine.
						chunk := 1000 + g*777
						if g%2 == 1 { // whole blocks too (DirectReads)
							chunk = g * 70001
						}
						for off := 0; off < len(w); off += chunk {
							end := min(off+chunk, len(w))
							if _, err := r.ReadAt(in, got[off:end], int64(off)); err != nil && err != io.EOF {
								errs <- err
								return
							}
						}
						if !bytes.Equal(got, w) {
							errs <- fmt.Errorf("%s: contents differ", p)
							return
						}
					}
				}(g)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func pathKey(p string) string {
	if p == "squashfs-root" {
		return "."
	}
	return p[len("squashfs-root/"):]
}

// TestReadaheadFillsCache checks that a sequential read makes the workers
// decompress the following blocks: after reading the first two blocks of a
// file, the next eight enter the data cache without being asked for; a
// random read does not trigger read-ahead.
func TestReadaheadFillsCache(t *testing.T) {
	tree := featureTree(t, false)
	img := sqtest.Build(t, tree.Dir, "-b", "4K")
	r, in := openLookup(t, img, &Options{Readahead: 8}, "files/text-1048577")
	buf := make([]byte, 4096)
	// A random read in the middle: no read-ahead.
	if _, err := r.ReadAt(in, buf, 100*4096); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if k := (blockKey{off: in.starts[101], word: in.sizes[101], want: 4096}); r.data.peek(k) {
		t.Errorf("a random read triggered read-ahead")
	}
	for off := int64(0); off < 8192; off += 4096 {
		if _, err := r.ReadAt(in, buf, off); err != nil {
			t.Fatal(err)
		}
	}
	// Blocks 2..9 get decompressed in the background.
	deadline := time.Now().Add(10 * time.Second)
	for bi := 2; bi < 10; bi++ {
		k := blockKey{off: in.starts[bi], word: in.sizes[bi], want: 4096}
		for !r.data.peek(k) {
			if time.Now().After(deadline) {
				t.Fatalf("block %d not read ahead", bi)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestDirectReads: with DirectReads, a read holding whole blocks gets
// them decompressed into its own buffer and the data cache stays empty;
// a read of part of a block goes through the cache; a block already
// cached is copied from it; a corrupt block is an error, whichever way
// it is read. The default is on only on one CPU.
func TestDirectReads(t *testing.T) {
	tree := featureTree(t, false)
	img := sqtest.Build(t, tree.Dir, "-b", "4K")
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	ref, in := openLookup(t, img, &Options{Readahead: -1, DirectReads: -1}, "files/text-1048577")
	want := make([]byte, in.Size)
	if _, err := ref.ReadAt(in, want, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		off, n     int64
		wantCached int64 // blocks the read leaves in the data cache
	}{
		{"whole blocks", 4096, 3 * 4096, 0},
		{"whole blocks and a part", 8 * 4096, 2*4096 + 100, 1},
		{"part of a block", 20*4096 + 7, 100, 1},
		{"straddling", 30*4096 + 4000, 4096 + 200, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := OpenFile(img, &Options{DirectReads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.ra8 != nil {
				t.Fatal("read-ahead runs with DirectReads")
			}
			got := make([]byte, tt.n)
			if _, err := r.ReadAt(in, got, tt.off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want[tt.off:tt.off+tt.n]) {
				t.Fatal("contents differ")
			}
			if n := int64(r.data.lru.Len()); n != tt.wantCached {
				t.Errorf("%d blocks cached, want %d", n, tt.wantCached)
			}
			if st := r.ReadStats(); st.OnDemand != st.Direct+uint64(tt.wantCached) || st.ReadAhead != 0 {
				t.Errorf("stats %+v: want %d decompressed into the cache, the rest direct, none ahead", st, tt.wantCached)
			}
			// Read again over the cached blocks: the same bytes.
			if _, err := r.ReadAt(in, got, tt.off); err != nil || !bytes.Equal(got, want[tt.off:tt.off+tt.n]) {
				t.Fatalf("second read: %v or contents differ", err)
			}
		})
	}
	t.Run("corrupt block", func(t *testing.T) {
		bad := bytes.Clone(raw)
		k := in.starts[5]
		size := int64(in.sizes[5] &^ uncompressedBit)
		for i := k; i < k+size; i++ {
			bad[i] ^= 0x5a
		}
		r, err := Open(bytes.NewReader(bad), int64(len(bad)), &Options{DirectReads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		bin, err := r.LookupPath("files/text-1048577")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int64{4096, 100} { // direct, then through the cache
			if _, err := r.ReadAt(bin, make([]byte, n), 5*4096); !errors.Is(err, ErrFormat) {
				t.Errorf("read of %d bytes of a corrupt block: %v, want ErrFormat", n, err)
			}
		}
	})
	t.Run("decoder panic", func(t *testing.T) {
		r, err := OpenFile(img, &Options{DirectReads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		r.dec = codec.Func(func(dst, src []byte) ([]byte, error) { panic("boom") })
		for _, n := range []int64{4096, 100} { // direct, then through the cache
			if _, err := r.ReadAt(in, make([]byte, n), 40*4096); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "decoder panic: boom") {
				t.Errorf("read of %d bytes with a panicking decoder: %v, want a format error naming the panic", n, err)
			}
		}
	})
	t.Run("default", func(t *testing.T) {
		old := runtime.GOMAXPROCS(1)
		defer runtime.GOMAXPROCS(old)
		for _, tc := range []struct {
			opts   *Options
			direct bool
		}{{nil, true}, {&Options{Readahead: 4}, false}, {&Options{DirectReads: -1}, false}} {
			r, err := OpenFile(img, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if r.direct != tc.direct {
				t.Errorf("GOMAXPROCS 1, options %+v: DirectReads %v, want %v", tc.opts, r.direct, tc.direct)
			}
			r.Close()
		}
	})
}
