// SPDX-License-Identifier: BSD-3-Clause

package nodecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/squashreader"
)

// walkTree lists every entry of a squashfs through the reader's io/fs
// view: type, mode, size, mtime, link target, content hash.
func walkTree(t *testing.T, r *squashreader.Reader) map[string]string {
	t.Helper()
	fsys := r.FS()
	out := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := fsys.Lstat(p)
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %d %d", info.Mode(), info.Size(), info.ModTime().Unix())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := fsys.ReadLink(p)
			if err != nil {
				return err
			}
			desc += " -> " + l
		case info.Mode().IsRegular():
			b, err := fsys.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSquashfsThroughCache builds an image with mksquashfs and reads its
// whole tree with squashreader over the file and over the cache (cold,
// then warm from a reopened cache): the same tree each time.
func TestSquashfsThroughCache(t *testing.T) {
	src := t.TempDir()
	sqtest.MakeFeatureTree(t, src, sqtest.TreeOptions{})
	img := sqtest.Build(t, src, "-comp", "gzip")
	fsrc, f, err := OpenFileSource(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	direct, err := squashreader.Open(f, fsrc.Size(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := walkTree(t, direct)
	direct.Close()
	if len(want) < 50 {
		t.Fatalf("tree of %d entries only", len(want))
	}

	cl, err := imagestore.ComputeChunkListFile(img, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	id := testID("squashfs")
	for _, pass := range []string{"cold", "warm"} {
		c, err := Open(dir, Options{Size: 256 << 20})
		if err != nil {
			t.Fatal(err)
		}
		counted := &countingSource{Source: fsrc}
		im, err := c.Image(id, counted, cl)
		if err != nil {
			t.Fatal(err)
		}
		r, err := squashreader.Open(im, im.Size(), nil)
		if err != nil {
			t.Fatal(err)
		}
		got := walkTree(t, r)
		r.Close()
		for p, w := range want {
			if got[p] != w {
				t.Errorf("%s %s: %q, over the file %q", pass, p, got[p], w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d entries, over the file %d", pass, len(got), len(want))
		}
		st := c.Stats()
		t.Logf("%s: %+v, %d bytes from the file of %d", pass, st, counted.n.Load(), fsrc.Size())
		if pass == "warm" && (counted.n.Load() != 0 || st.Misses != 0) {
			t.Errorf("warm pass read %d bytes from the file", counted.n.Load())
		}
		if pass == "cold" && counted.n.Load() > fsrc.Size() {
			t.Errorf("cold pass read %d bytes, more than the file's %d", counted.n.Load(), fsrc.Size())
		}
		c.Close()
	}

	// The same over HTTP, from a server answering ranges with
	// http.ServeContent, into a new cache.
	enc, err := cl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/" + id + ".squashfs":
			w.Header().Set("ETag", `"`+id+`"`)
			// A reader per request: concurrent requests sharing f's
			// offset get each other's bytes (the cache caught exactly
			// that, as verification failures, in an earlier version).
			http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(f, 0, fsrc.Size()))
		case "/" + id + ".chunks":
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(enc))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	hs, err := NewHTTPSource(srv.URL, id, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	hcl, err := hs.ChunkList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := openTest(t, t.TempDir(), Options{Size: 256 << 20})
	im, err := c.Image(id, hs, hcl)
	if err != nil {
		t.Fatal(err)
	}
	r, err := squashreader.Open(im, im.Size(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := walkTree(t, r)
	r.Close()
	if len(got) != len(want) {
		t.Errorf("http: %d entries, over the file %d", len(got), len(want))
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("http %s: %q, over the file %q", p, got[p], w)
		}
	}
	if st := c.Stats(); st.VerifyFailures != 0 || st.SourceBytes != fsrc.Size() {
		t.Errorf("http: %+v, want no verification failure and each byte fetched once", st)
	}
}

// countingSource counts the bytes read from a source.
type countingSource struct {
	Source
	n atomic.Int64
}

func (c *countingSource) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.Source.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}
