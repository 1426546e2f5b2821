// SPDX-License-Identifier: BSD-3-Clause

package nodecache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// imageServer serves one image file and its chunk list the way the
// gateway will: http.ServeContent (Range handling) with the image id as
// ETag. fail makes the next n requests answer 503; mangle alters the
// image bytes served.
type imageServer struct {
	id      string
	data    []byte
	chunks  []byte
	fail    atomic.Int64
	reqs    atomic.Int64
	etag    string
	mangle  bool
	noRange bool
}

func (s *imageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.reqs.Add(1)
	if s.fail.Add(-1) >= 0 {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case "/images/" + s.id + ".squashfs":
		data := s.data
		if s.mangle {
			data = bytes.Clone(data)
			for i := 100; i < len(data); i += 5000 {
				data[i] ^= 1
			}
		}
		w.Header().Set("ETag", s.etag)
		if s.noRange {
			r.Header.Del("Range")
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	case "/images/" + s.id + ".chunks":
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.chunks))
	default:
		http.NotFound(w, r)
	}
}

func newImageServer(t *testing.T, name string, size int) (*imageServer, *httptest.Server) {
	t.Helper()
	data := randBytes(uint64(size), size)
	cl := chunksOf(t, data, cs)
	enc, err := cl.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	is := &imageServer{id: testID(name), data: data, chunks: enc}
	is.etag = `"` + is.id + `"`
	srv := httptest.NewServer(is)
	t.Cleanup(srv.Close)
	return is, srv
}

func httpSource(t *testing.T, srv *httptest.Server, id string) *HTTPSource {
	t.Helper()
	hs, err := NewHTTPSource(srv.URL+"/images/", id, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	hs.Backoff = time.Millisecond
	return hs
}

// TestHTTPSource reads an image over HTTP through the cache: byte
// identical, then served from the cache without a request.
func TestHTTPSource(t *testing.T) {
	is, srv := newImageServer(t, "http", 20*cs+321)
	hs := httpSource(t, srv, is.id)
	cl, err := hs.ChunkList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := openTest(t, t.TempDir(), Options{MemorySize: -1})
	im, err := c.Image(is.id, hs, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, piece := range []int{7000, cs, 3*cs + 1} {
		checkRead(t, im, is.data, piece)
	}
	if got := c.Stats().SourceBytes; got != int64(len(is.data)) {
		t.Fatalf("%d bytes over HTTP, want %d", got, len(is.data))
	}
	reqs := is.reqs.Load()
	checkRead(t, im, is.data, 5000)
	if is.reqs.Load() != reqs {
		t.Fatal("a warm read sent HTTP requests")
	}
	// Direct reads of the source: ranges, the end of the file.
	p := make([]byte, 1000)
	if n, err := hs.ReadAt(p, int64(len(is.data))-400); n != 400 || err == nil || !bytes.Equal(p[:n], is.data[len(is.data)-400:]) {
		t.Fatalf("read across the end: %d, %v", n, err)
	}
}

func TestHTTPSourceErrors(t *testing.T) {
	t.Run("transient errors are retried", func(t *testing.T) {
		is, srv := newImageServer(t, "retry", 4*cs)
		hs := httpSource(t, srv, is.id)
		is.fail.Store(2)
		p := make([]byte, 100)
		if _, err := hs.ReadAt(p, 50); err != nil || !bytes.Equal(p, is.data[50:150]) {
			t.Fatalf("after two 503s: %v", err)
		}
		is.fail.Store(10)
		if _, err := hs.ReadAt(p, 50); err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("after persistent 503s: %v", err)
		}
		if is.reqs.Load() != 3+4 {
			t.Fatalf("%d requests, want 3 then 4 attempts", is.reqs.Load())
		}
	})
	t.Run("ETag of another image", func(t *testing.T) {
		is, srv := newImageServer(t, "etag", 4*cs)
		is.etag = `W/"sha256:` + testID("other") + `"`
		hs := httpSource(t, srv, is.id)
		if _, err := hs.ReadAt(make([]byte, 10), 0); err == nil || !strings.Contains(err.Error(), "ETag") {
			t.Fatalf("wrong ETag: %v", err)
		}
		if is.reqs.Load() != 1 {
			t.Fatal("a wrong ETag was retried")
		}
		is.etag = `"5f3-1a2b"` // a mirror's own ETag: ignored
		if _, err := hs.ReadAt(make([]byte, 10), 0); err != nil {
			t.Fatalf("foreign ETag: %v", err)
		}
	})
	t.Run("server without ranges", func(t *testing.T) {
		is, srv := newImageServer(t, "norange", 4*cs)
		is.noRange = true
		hs := httpSource(t, srv, is.id)
		if _, err := hs.ReadAt(make([]byte, 10), 5); err == nil || !strings.Contains(err.Error(), "ranges") {
			t.Fatalf("200 to a range request: %v", err)
		}
	})
	t.Run("tampering mirror", func(t *testing.T) {
		is, srv := newImageServer(t, "mangle", 4*cs)
		hs := httpSource(t, srv, is.id)
		cl, err := hs.ChunkList(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		is.mangle = true
		c := openTest(t, t.TempDir(), Options{})
		im, err := c.Image(is.id, hs, cl)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := im.ReadAt(make([]byte, 10), 0); !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("mangled bytes: %v", err)
		}
		if c.Stats().Chunks != 0 {
			t.Fatal("mangled chunk cached")
		}
	})
	t.Run("bad chunk list", func(t *testing.T) {
		is, srv := newImageServer(t, "badlist", 4*cs)
		is.chunks = append(is.chunks, 'x')
		if _, err := httpSource(t, srv, is.id).ChunkList(context.Background()); err == nil || is.reqs.Load() != 1 {
			t.Fatalf("bad chunk list: %v after %d requests", err, is.reqs.Load())
		}
	})
	t.Run("bad base", func(t *testing.T) {
		for _, b := range []string{"ftp://x/", "/local/path", "http://"} {
			if _, err := NewHTTPSource(b, testID("x"), nil); err == nil {
				t.Errorf("NewHTTPSource(%q) accepted", b)
			}
		}
	})
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-9/100", 0, 9, 100, true},
		{"bytes 90-99/100", 90, 99, 100, true},
		{"bytes 5-5/*", 5, 5, -1, true},
		{"bytes 90-100/100", 0, 0, 0, false},
		{"bytes 9-0/100", 0, 0, 0, false},
		{"bytes -1-5/100", 0, 0, 0, false},
		{"items 0-9/100", 0, 0, 0, false},
		{"bytes 0-9", 0, 0, 0, false},
		{"bytes */100", 0, 0, 0, false},
		{"bytes +0-9/100", 0, 0, 0, false},
		{"bytes 00-9/100", 0, 0, 0, false},
	}
	for _, tt := range tests {
		f, l, tot, err := parseContentRange(tt.in)
		if (err == nil) != tt.ok || (tt.ok && (f != tt.first || l != tt.last || tot != tt.total)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v", tt.in, f, l, tot, err)
		}
	}
}

// FuzzParseContentRange: the header comes from any server or mirror. A
// parse either fails or gives first <= last < total (or total unknown)
// and is the canonical spelling of its input (no leading zeros).
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/100", "bytes 5-5/*", "bytes 90-100/100", "bytes 0-9", "bytes 00-9/100", "bytes 1-0/*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, total, err := parseContentRange(s)
		if err != nil {
			return
		}
		if first < 0 || last < first || (total >= 0 && last >= total) || total < -1 {
			t.Fatalf("%q: %d-%d/%d", s, first, last, total)
		}
		tot := "*"
		if total >= 0 {
			tot = fmt.Sprint(total)
		}
		if canon := fmt.Sprintf("bytes %d-%d/%s", first, last, tot); canon != s {
			t.Fatalf("%q accepted, canonical %q", s, canon)
		}
	})
}

func TestWarmCancel(t *testing.T) {
	c := openTest(t, t.TempDir(), Options{WarmParallel: 2})
	data := randBytes(11, 64*cs)
	gate := make(chan struct{})
	src := &memSource{data: data, gate: gate}
	im, err := c.Image(testID("cancel"), src, chunksOf(t, data, cs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- im.Warm(ctx, nil, nil) }()
	cancel()
	close(gate)
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Warm after cancel: %v", err)
	}
	if n := src.reads.Load(); n > 2 {
		t.Fatalf("%d source reads after cancel with 2 workers", n)
	}
}
