// SPDX-License-Identifier: BSD-3-Clause

package nodecache

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shifter-go/shifter/imagestore"
)

// Source is where an image's bytes come from on a miss. ReadAt follows
// io.ReaderAt; the cache reads whole chunks and verifies them, so a
// source need not be trusted. String names it in logs and errors.
type Source interface {
	io.ReaderAt
	String() string
}

// hashingSource is a source that feeds the bytes of a read to a hash as
// they arrive, so that hashing a chunk overlaps waiting for the rest of
// it (a file's readahead, a response body still arriving). h is reset
// first, and again if the source retries.
type hashingSource interface {
	readAtHashing(p []byte, off int64, h hash.Hash) (int, error)
}

// hashPiece is the unit in which a FileSource reads and hashes a chunk.
const hashPiece = 64 << 10

// FileSource is an image file on the shared filesystem.
type FileSource struct {
	r    io.ReaderAt
	name string
	size int64
}

// NewFileSource reads the image from r, size bytes, named name in logs
// (an *os.File opened by the runtime, for example).
func NewFileSource(r io.ReaderAt, size int64, name string) *FileSource {
	return &FileSource{r: r, name: name, size: size}
}

// OpenFileSource opens the image file at path (O_NOFOLLOW, must be a
// regular file). Close the returned file when done.
func OpenFileSource(path string) (*FileSource, *os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open image: %w", err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s is not a regular file", path)
		}
		return nil, nil, fmt.Errorf("open image: %w", err)
	}
	return NewFileSource(f, st.Size(), path), f, nil
}

// ReadAt reads from the file.
func (s *FileSource) ReadAt(p []byte, off int64) (int, error) { return s.r.ReadAt(p, off) }

// readAtHashing reads p at off in pieces of hashPiece bytes, hashing
// each as soon as it is read: the kernel's readahead brings in the next
// while the hash runs.
func (s *FileSource) readAtHashing(p []byte, off int64, h hash.Hash) (int, error) {
	h.Reset()
	got := 0
	for got < len(p) {
		m, err := s.r.ReadAt(p[got:min(got+hashPiece, len(p))], off+int64(got))
		h.Write(p[got : got+m])
		got += m
		if err != nil {
			if err == io.EOF && got == len(p) {
				break
			}
			return got, err
		}
	}
	return got, nil
}

// Size is the file's size.
func (s *FileSource) Size() int64 { return s.size }

func (s *FileSource) String() string { return s.name }

// HTTPSource reads an image file over HTTP with Range requests: each read
// is a GET for exactly its bytes, answered 206 with the matching
// Content-Range. Transient failures (network errors, timeouts, 408, 429,
// 5xx, a short body) are retried with exponential backoff. Any plain HTTP
// server, cache or mirror may serve it: the cache verifies every chunk.
// Its fields may be changed before first use.
type HTTPSource struct {
	// URL of the image file (NewHTTPSource: BASE/<id>.squashfs) and of its
	// chunk list (BASE/<id>.chunks).
	URL, ChunksURL string
	// ID is the image id. A response whose ETag is a sha256 (64 hex
	// digits, optionally quoted, weak or prefixed "sha256:") other than
	// ID is refused; other ETags (a mirror's own) are ignored.
	ID string
	// Client sends the requests (default http.DefaultClient); set it to
	// add identity, TLS roots or proxies.
	Client *http.Client
	// Header is added to every request (e.g. Authorization).
	Header http.Header
	// Timeout bounds each request (default 30 s).
	Timeout time.Duration
	// Attempts is how many times a request is tried (default 4).
	Attempts int
	// Backoff is the first wait between attempts, doubled each time
	// (default 200 ms).
	Backoff time.Duration

	total atomic.Int64 // the file size from Content-Range, once seen (+1)
}

// NewHTTPSource returns the source of image id under base, an http or
// https URL: the image file is BASE/<id>.squashfs, its chunk list
// BASE/<id>.chunks. client may be nil.
func NewHTTPSource(base, id string, client *http.Client) (*HTTPSource, error) {
	if _, err := hexID(id); err != nil {
		return nil, err
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("image source %q: want an http or https URL", base)
	}
	b := strings.TrimSuffix(u.String(), "/")
	return &HTTPSource{URL: b + "/" + id + ".squashfs", ChunksURL: b + "/" + id + ".chunks", ID: id, Client: client}, nil
}

// String is the image URL without user information or query.
func (s *HTTPSource) String() string { return redact(s.URL) }

// permanent marks an error not worth retrying.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func (s *HTTPSource) do(ctx context.Context, u string, try func(ctx context.Context, u string) error) error {
	attempts := s.Attempts
	if attempts <= 0 {
		attempts = 4
	}
	wait := s.Backoff
	if wait <= 0 {
		wait = 200 * time.Millisecond
	}
	var err error
	for a := 0; a < attempts; a++ {
		if a > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(err, ctx.Err())
			case <-t.C:
			}
			wait *= 2
		}
		err = try(ctx, u)
		var p permanent
		if err == nil || errors.As(err, &p) || ctx.Err() != nil {
			break
		}
	}
	return err
}

// request sends one GET; off >= 0 asks for the n bytes at off and checks
// the ETag.
func (s *HTTPSource) request(ctx context.Context, u string, off int64, n int) (*http.Response, context.CancelFunc, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		return nil, nil, permanent{err}
	}
	for k, v := range s.Header {
		req.Header[k] = v
	}
	if off >= 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+int64(n)-1))
	}
	cl := s.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	resp, err := cl.Do(req)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	if err := s.checkETag(resp); off >= 0 && err != nil {
		resp.Body.Close()
		cancel()
		return nil, nil, permanent{err}
	}
	return resp, cancel, nil
}

func statusErr(resp *http.Response) error {
	err := fmt.Errorf("HTTP %s", resp.Status)
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusTooEarly:
		return err
	}
	if resp.StatusCode >= 500 {
		return err
	}
	return permanent{err}
}

// checkETag refuses a response whose ETag names another image.
func (s *HTTPSource) checkETag(resp *http.Response) error {
	e := resp.Header.Get("ETag")
	e = strings.TrimPrefix(e, "W/")
	e = strings.Trim(e, `"`)
	e = strings.TrimPrefix(e, "sha256:")
	if len(e) != 64 || strings.Trim(strings.ToLower(e), "0123456789abcdef") != "" {
		return nil
	}
	if !strings.EqualFold(e, s.ID) {
		return fmt.Errorf("ETag %s names another image than %s", resp.Header.Get("ETag"), s.ID)
	}
	return nil
}

// ReadAt reads len(p) bytes at off with a Range request (see ReadAtContext).
func (s *HTTPSource) ReadAt(p []byte, off int64) (int, error) {
	return s.ReadAtContext(context.Background(), p, off)
}

// ReadAtContext is ReadAt with a context.
func (s *HTTPSource) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	return s.readAt(ctx, p, off, nil)
}

// readAtHashing is ReadAt feeding the body to h as it arrives.
func (s *HTTPSource) readAtHashing(p []byte, off int64, h hash.Hash) (int, error) {
	return s.readAt(context.Background(), p, off, h)
}

// readAt is ReadAtContext, feeding the body to h (reset at each
// attempt) when it is not nil.
func (s *HTTPSource) readAt(ctx context.Context, p []byte, off int64, h hash.Hash) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", s, off)
	}
	if t := s.total.Load(); t > 0 && off >= t-1 {
		return 0, io.EOF
	}
	var n int
	err := s.do(ctx, s.URL, func(ctx context.Context, u string) error {
		resp, cancel, err := s.request(ctx, u, off, len(p))
		if err != nil {
			return err
		}
		defer cancel()
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			return permanent{io.EOF}
		}
		if resp.StatusCode != http.StatusPartialContent {
			if resp.StatusCode == http.StatusOK {
				return permanent{fmt.Errorf("HTTP 200 to a Range request: the server does not serve ranges")}
			}
			return statusErr(resp)
		}
		first, last, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return permanent{err}
		}
		if first != off || last < first || last-first+1 > int64(len(p)) || (last-first+1 < int64(len(p)) && last+1 != total) {
			return permanent{fmt.Errorf("Content-Range %q does not answer bytes=%d-%d", resp.Header.Get("Content-Range"), off, off+int64(len(p))-1)}
		}
		if total >= 0 {
			if prev := s.total.Swap(total + 1); prev != 0 && prev != total+1 {
				return permanent{fmt.Errorf("file size changed from %d to %d", prev-1, total)}
			}
		}
		want := int(last - first + 1)
		var body io.Reader = resp.Body
		if h != nil {
			h.Reset()
			body = io.TeeReader(resp.Body, h)
		}
		got, err := io.ReadFull(body, p[:want])
		n = got
		if err != nil {
			return fmt.Errorf("short body, %d of %d bytes: %w", got, want, err)
		}
		return nil
	})
	if err != nil {
		var pe permanent
		if errors.As(err, &pe) && errors.Is(err, io.EOF) {
			return n, io.EOF
		}
		return n, fmt.Errorf("%s: bytes %d-%d: %w", s, off, off+int64(len(p))-1, err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// parseContentRange parses "bytes FIRST-LAST/TOTAL" (TOTAL may be "*",
// returned as -1).
func parseContentRange(h string) (first, last, total int64, err error) {
	bad := fmt.Errorf("bad Content-Range %q", h)
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, 0, bad
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, bad
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, bad
	}
	num := func(s string) (int64, bool) {
		if s == "" || strings.Trim(s, "0123456789") != "" || (len(s) > 1 && s[0] == '0') {
			return 0, false
		}
		v, err := strconv.ParseInt(s, 10, 64)
		return v, err == nil
	}
	var ok1, ok2, ok3 bool
	first, ok1 = num(a)
	last, ok2 = num(b)
	if tot == "*" {
		total, ok3 = -1, true
	} else {
		total, ok3 = num(tot)
	}
	if !ok1 || !ok2 || !ok3 || last < first || (total >= 0 && last >= total) {
		return 0, 0, 0, bad
	}
	return first, last, total, nil
}

// ChunkList fetches and parses the image's chunk list from ChunksURL.
// Verification is only as good as the list: fetch it from the gateway
// itself (or compare its Digest with one from a trusted channel), never
// from a mirror that could alter the image too.
func (s *HTTPSource) ChunkList(ctx context.Context) (*imagestore.ChunkList, error) {
	var cl *imagestore.ChunkList
	err := s.do(ctx, s.ChunksURL, func(ctx context.Context, u string) error {
		resp, cancel, err := s.request(ctx, u, -1, 0)
		if err != nil {
			return err
		}
		defer cancel()
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return statusErr(resp)
		}
		c, err := imagestore.ReadChunkList(resp.Body)
		if err != nil {
			if errors.Is(err, imagestore.ErrChunkList) {
				return permanent{err}
			}
			return err
		}
		cl = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chunk list %s: %w", redact(s.ChunksURL), err)
	}
	return cl, nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "invalid URL"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}
