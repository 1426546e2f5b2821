// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/shifter-go/shifter/internal/sqtest"
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
	r, err := OpenFile(img, &Options{Readahead: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	in, err := r.LookupPath("files/text-1048577")
	if err != nil {
		t.Fatal(err)
	}
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
