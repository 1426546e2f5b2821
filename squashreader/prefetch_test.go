// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// countingReaderAt counts the reads that reach the image.
type countingReaderAt struct {
	ra    io.ReaderAt
	reads atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	return c.ra.ReadAt(p, off)
}

// TestPrefetchMetadata: after PrefetchMetadata, a full walk of every
// fixture (lookups, listings, attributes) reads nothing more from the
// image and sees what unsquashfs lists; a budget smaller than the tables
// caches a prefix and the walk still works.
func TestPrefetchMetadata(t *testing.T) {
	for _, img := range fixtures(t) {
		for _, tc := range []struct {
			name     string
			maxBytes int64
			cache    int
			complete bool
		}{
			{"all", 64 << 20, 1024, true},
			{"budget", 100, 1024, false},
			{"small cache", 64 << 20, 1, false},
			{"none", 0, 1024, false},
		} {
			t.Run(filepath.Base(img)+"/"+tc.name, func(t *testing.T) {
				f, err := os.Open(img)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				st, _ := f.Stat()
				c := &countingReaderAt{ra: f}
				r, err := Open(c, st.Size(), &Options{MetadataCacheSize: tc.cache})
				if err != nil {
					t.Fatal(err)
				}
				n, err := r.PrefetchMetadata(tc.maxBytes)
				if err != nil {
					t.Fatalf("PrefetchMetadata: %v", err)
				}
				if tc.maxBytes == 0 && n != 0 {
					t.Errorf("no budget cached %d blocks", n)
				}
				before := c.reads.Load()
				walkMetadata(t, r)
				if tc.complete {
					if n == 0 {
						t.Fatal("nothing cached")
					}
					if d := c.reads.Load() - before; d != 0 {
						t.Errorf("the walk after a complete prefetch made %d reads", d)
					}
				}
				compareListing(t, r, img)
			})
		}
	}
}

// walkMetadata looks up, lists and stats every entry (no file data).
func walkMetadata(t *testing.T, r *Reader) {
	t.Helper()
	root, err := r.Root()
	if err != nil {
		t.Fatal(err)
	}
	var walk func(dir *Inode)
	walk = func(dir *Inode) {
		ents, err := r.ReadDir(dir, 0, 1<<20)
		if err != nil {
			t.Fatalf("ReadDir: %v", err)
		}
		for _, e := range ents {
			in, err := r.Lookup(dir, e.Name)
			if err != nil {
				t.Fatalf("Lookup %s: %v", e.Name, err)
			}
			if in.Type == TypeDir {
				walk(in)
			}
		}
	}
	walk(root)
}

// TestPrefetchMetadataCrafted: damaged images fail with an error, never
// a panic, and the reader still answers afterwards.
func TestPrefetchMetadataCrafted(t *testing.T) {
	imgs, _ := filepath.Glob("testdata/crafted/*")
	imgs2, _ := filepath.Glob("testdata/fuzz/*")
	for _, img := range append(imgs, imgs2...) {
		r, err := OpenFile(img, nil)
		if err != nil {
			continue // refused at open: nothing to prefetch
		}
		_, _ = r.PrefetchMetadata(1 << 20)
		if root, err := r.Root(); err == nil {
			_, _ = r.ReadDir(root, 0, 100)
		}
		r.Close()
	}
}
