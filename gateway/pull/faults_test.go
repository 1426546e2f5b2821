// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
)

func isBlobGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
}

func isManifestGet(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.URL.Path, "/manifests/")
}

// recorder buffers a handler's response so a middleware can alter it.
func record(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func smallImage(t testing.TB, tag string) v1.Image {
	return image(t, types.DockerManifestSchema2, v1.Config{Env: []string{"TAG=" + tag}}, nil,
		[]ent{dir("etc"), file("etc/os-release", "ID="+tag+"\n")},
		[]ent{file("bin/tool", strings.Repeat(tag, 1000))})
}

func layerDigests(t testing.TB, img v1.Image) []string {
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// build resolves and builds ref, returning the error of either step.
func build(t *testing.T, p *Puller, ref string, creds map[string]string) (*imagestore.Metadata, error) {
	t.Helper()
	testutil.RequireTool(t, "mksquashfs")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := p.Resolve(ctx, ref, creds)
	if err != nil {
		return nil, err
	}
	out, err := imagestore.CreateTemp(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	return p.Build(ctx, r, out, nil)
}

func TestRegistryFaults(t *testing.T) {
	img := smallImage(t, "fault")
	blobs := layerDigests(t, img)
	type mw func(t *testing.T, next http.Handler) http.Handler
	var (
		failFirst = func(n int32, match func(*http.Request) bool, code int, hdr map[string]string) mw {
			return func(t *testing.T, next http.Handler) http.Handler {
				var seen atomic.Int32
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if match(r) && seen.Add(1) <= n {
						for k, v := range hdr {
							w.Header().Set(k, v)
						}
						http.Error(w, "injected", code)
						return
					}
					next.ServeHTTP(w, r)
				})
			}
		}
	)
	cases := []struct {
		name    string
		mw      mw
		mod     func(*Options)
		wantErr error // nil: success; errAny: any error
	}{
		{"blob digest mismatch", func(t *testing.T, next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if isBlobGet(r) && strings.HasSuffix(r.URL.Path, blobs[1]) {
					rec := record(next, r)
					b := rec.Body.Bytes()
					b[len(b)/2] ^= 0xff
					w.WriteHeader(rec.Code)
					w.Write(b)
					return
				}
				next.ServeHTTP(w, r)
			})
		}, nil, ErrInvalidImage},
		{"blob longer than its size", func(t *testing.T, next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if isBlobGet(r) && strings.HasSuffix(r.URL.Path, blobs[0]) {
					rec := record(next, r)
					w.WriteHeader(rec.Code)
					w.Write(append(rec.Body.Bytes(), "trailing"...))
					return
				}
				next.ServeHTTP(w, r)
			})
		}, nil, ErrInvalidImage},
		{"blob cut short then retried", func(t *testing.T, next http.Handler) http.Handler {
			var n atomic.Int32
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if isBlobGet(r) && strings.HasSuffix(r.URL.Path, blobs[1]) && n.Add(1) == 1 {
					rec := record(next, r)
					b := rec.Body.Bytes()
					w.Header().Set("Content-Length", fmt.Sprint(len(b)))
					w.WriteHeader(rec.Code)
					w.Write(b[:len(b)/2])
					// Hijack-free connection reset: close the connection mid-body.
					panic(http.ErrAbortHandler)
				}
				next.ServeHTTP(w, r)
			})
		}, nil, nil},
		{"500s then success", failFirst(2, isManifestGet, 500, nil), nil, nil},
		{"blob 503s then success", failFirst(2, isBlobGet, 503, nil), nil, nil},
		{"permanent 500", failFirst(1<<30, isManifestGet, 500, nil), nil, errAny},
		{"404 manifest", failFirst(1<<30, isManifestGet, 404, nil), nil, ErrNotFound},
		{"429 then success", failFirst(1, isManifestGet, 429, map[string]string{"Retry-After": "1"}), nil, nil},
		{"slow manifest times out", func(t *testing.T, next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if isManifestGet(r) {
					select {
					case <-r.Context().Done():
					case <-time.After(5 * time.Second):
					}
					return
				}
				next.ServeHTTP(w, r)
			})
		}, func(o *Options) { o.RequestTimeout = 200 * time.Millisecond; o.Retries = 1 }, errAny},
		{"endless manifest body", func(t *testing.T, next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if isManifestGet(r) && r.Method == http.MethodGet {
					w.Header().Set("Content-Type", string(types.DockerManifestSchema2))
					w.Write([]byte(`{"schemaVersion":2,"x":"`))
					chunk := bytes.Repeat([]byte("A"), 64<<10)
					for i := 0; i < 1024; i++ { // 64 MiB, far over the cap
						if _, err := w.Write(chunk); err != nil {
							return
						}
					}
					return
				}
				next.ServeHTTP(w, r)
			})
		}, nil, ErrTooLarge},
		{"trickling blob is cut off", func(t *testing.T, next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if isBlobGet(r) && strings.HasSuffix(r.URL.Path, blobs[1]) {
					rec := record(next, r)
					w.WriteHeader(rec.Code)
					for _, c := range rec.Body.Bytes() {
						if _, err := w.Write([]byte{c}); err != nil {
							return
						}
						w.(http.Flusher).Flush()
						select {
						case <-r.Context().Done():
							return
						case <-time.After(50 * time.Millisecond):
						}
					}
					return
				}
				next.ServeHTTP(w, r)
			})
		}, func(o *Options) {
			o.MinSpeed, o.SpeedWindow, o.SpeedGrace = 64<<10, 300*time.Millisecond, 100*time.Millisecond
		}, ErrTooSlow},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var times []time.Time
			var mu sync.Mutex
			var armed atomic.Bool
			host := testRegistry(t, func(next http.Handler) http.Handler {
				h := tc.mw(t, next)
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if !armed.Load() {
						next.ServeHTTP(w, r)
						return
					}
					if isManifestGet(r) {
						mu.Lock()
						times = append(times, time.Now())
						mu.Unlock()
					}
					if r.Method == http.MethodGet || r.Method == http.MethodHead {
						h.ServeHTTP(w, r)
						return
					}
					next.ServeHTTP(w, r) // pushes are not faulted
				})
			})
			push(t, host+"/fault:1", img)
			armed.Store(true)
			p := newPuller(t, tc.mod, host)
			start := time.Now()
			_, err := build(t, p, host+"/fault:1", nil)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("build: %v", err)
			case tc.wantErr == errAny && err == nil, tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("build error = %v, want %v", err, tc.wantErr)
			}
			t.Logf("build: err=%v after %v", err, time.Since(start).Round(time.Millisecond))
			if err != nil {
				// Nothing unverified may stay in the cache.
				for _, d := range blobs {
					if _, serr := os.Stat(p.blobPath(strings.TrimPrefix(d, "sha256:"))); serr == nil && tc.name != "slow manifest times out" {
						b, _ := os.ReadFile(p.blobPath(strings.TrimPrefix(d, "sha256:")))
						if fmt.Sprintf("sha256:%x", sha256Sum(b)) != d {
							t.Errorf("cache holds an unverified blob %s", d)
						}
					}
				}
				tmps, _ := os.ReadDir(p.tmpDir())
				if len(tmps) != 0 {
					t.Errorf("temporary files left in the cache: %v", tmps)
				}
			}
			if tc.name == "429 then success" {
				mu.Lock()
				defer mu.Unlock()
				if len(times) < 2 || times[1].Sub(times[0]) < 900*time.Millisecond {
					t.Errorf("retry after 429 came %v after it, want >= Retry-After 1s", times[1].Sub(times[0]))
				}
			}
			if tc.name == "permanent 500" {
				mu.Lock()
				defer mu.Unlock()
				if want := p.opts.Retries + 1; len(times) != want {
					t.Errorf("manifest requests = %d, want %d (bounded retries)", len(times), want)
				}
			}
		})
	}
}

var errAny = errors.New("any error")

func sha256Sum(b []byte) []byte {
	h := sha256.New()
	h.Write(b)
	return h.Sum(nil)
}

func TestSizeLimits(t *testing.T) {
	host := testRegistry(t, nil)
	// 16 MiB of zeros gzip to ~16 KiB: a small gzip bomb.
	var bomb bytes.Buffer
	zeros := make([]byte, 16<<20)
	push(t, host+"/bomb:1", image(t, types.DockerManifestSchema2, v1.Config{}, nil, []ent{file("zeros", string(zeros))}))
	gz := gzip.NewWriter(&bomb)
	gz.Write(zeros)
	gz.Close()
	push(t, host+"/small:1", smallImage(t, "small"))
	cases := []struct {
		name  string
		ref   string
		limit int64
	}{
		{"compressed layers over the limit", host + "/small:1", 1000},
		{"gzip bomb over the limit", host + "/bomb:1", 1 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPuller(t, func(o *Options) { o.MaxImageSize = tc.limit }, host)
			if _, err := build(t, p, tc.ref, nil); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("build(%s) with limit %d: error = %v, want ErrTooLarge", tc.ref, tc.limit, err)
			}
			if tmps, _ := os.ReadDir(p.tmpDir()); len(tmps) != 0 {
				t.Errorf("temporary files left: %v", tmps)
			}
		})
	}
	t.Run("within the limit", func(t *testing.T) {
		p := newPuller(t, func(o *Options) { o.MaxImageSize = 64 << 20 }, host)
		if _, err := build(t, p, host+"/bomb:1", nil); err != nil {
			t.Fatalf("build: %v", err)
		}
	})
}

func TestForeignLayerAndDiffID(t *testing.T) {
	host := testRegistry(t, nil)
	base := smallImage(t, "foreign")
	foreign, err := mutate.Append(base, mutate.Addendum{
		Layer: layer(t, types.DockerLayer, []ent{file("x", "x")}),
		URLs:  []string{"http://127.0.0.1:1/blob"},
	})
	if err != nil {
		t.Fatal(err)
	}
	push(t, host+"/foreign:1", foreign)
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[1] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	badDiff, err := mutate.ConfigFile(base, cf)
	if err != nil {
		t.Fatal(err)
	}
	push(t, host+"/baddiff:1", badDiff)
	for _, ref := range []string{host + "/foreign:1", host + "/baddiff:1"} {
		p := newPuller(t, nil, host)
		if _, err := build(t, p, ref, nil); !errors.Is(err, ErrInvalidImage) {
			t.Errorf("build(%s) error = %v, want ErrInvalidImage", ref, err)
		}
	}
}

func TestCacheSharedAndVerified(t *testing.T) {
	img := smallImage(t, "shared")
	var mu sync.Mutex
	gets := map[string]int{}
	host := testRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isBlobGet(r) {
				mu.Lock()
				gets[r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]]++
				mu.Unlock()
				time.Sleep(100 * time.Millisecond) // let the builds overlap
			}
			next.ServeHTTP(w, r)
		})
	})
	push(t, host+"/shared:1", img)
	mu.Lock()
	clear(gets)
	mu.Unlock()
	p := newPuller(t, nil, host)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = build(t, p, host+"/shared:1", nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
	}
	for _, d := range layerDigests(t, img) {
		if gets[d] != 1 {
			t.Errorf("GET blob %s: %d times, want 1", d, gets[d])
		}
	}
	// A cached blob corrupted on disk is detected when read, evicted, and
	// downloaded again.
	d := layerDigests(t, img)[1]
	path := p.blobPath(strings.TrimPrefix(d, "sha256:"))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-10] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := build(t, p, host+"/shared:1", nil); err != nil {
		t.Fatalf("build with a corrupted cache: %v", err)
	}
	if gets[d] != 2 {
		t.Errorf("GET blob %s: %d times after eviction, want 2", d, gets[d])
	}
	if m, _ := filepath.Glob(filepath.Join(p.tmpDir(), "*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

var _ = io.Discard

func TestNewCleansPartialDownloads(t *testing.T) {
	dir := t.TempDir()
	p := newPuller(t, func(o *Options) { o.CacheDir = dir })
	stale := filepath.Join(p.tmpDir(), strings.Repeat("a", 64)+".123.partial")
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	newPuller(t, func(o *Options) { o.CacheDir = dir })
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale partial download survived New: %v", err)
	}
}

func TestBuildCancelAndMksquashfsFailure(t *testing.T) {
	img := smallImage(t, "cancel")
	layer0 := layerDigests(t, img)[0]
	var slow atomic.Bool
	host := testRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if slow.Load() && isBlobGet(r) && strings.HasSuffix(r.URL.Path, layer0) {
				select {
				case <-r.Context().Done():
				case <-time.After(30 * time.Second):
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	push(t, host+"/cancel:1", img)

	t.Run("cancelled while downloading", func(t *testing.T) {
		slow.Store(true)
		defer slow.Store(false)
		p := newPuller(t, nil, host)
		r, err := p.Resolve(context.Background(), host+"/cancel:1", nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		out, err := imagestore.CreateTemp(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		start := time.Now()
		if _, err := p.Build(ctx, r, out, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Build error = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Build took %v to notice cancellation", d)
		}
		if tmps, _ := os.ReadDir(p.tmpDir()); len(tmps) != 0 {
			t.Errorf("temporary files left: %v", tmps)
		}
	})
	t.Run("mksquashfs rejects its options", func(t *testing.T) {
		p := newPuller(t, func(o *Options) { o.MksquashfsArgs = []string{"-comp", "no-such-compressor"} }, host)
		_, err := build(t, p, host+"/cancel:1", nil)
		if err == nil || !strings.Contains(err.Error(), "mksquashfs") || !strings.Contains(err.Error(), "no-such-compressor") {
			t.Fatalf("build error = %v, want mksquashfs's complaint", err)
		}
	})
}

func TestPruneCache(t *testing.T) {
	host := testRegistry(t, nil)
	img := smallImage(t, "prune")
	push(t, host+"/prune:1", img)
	p := newPuller(t, nil, host)
	if _, err := build(t, p, host+"/prune:1", nil); err != nil {
		t.Fatal(err)
	}
	if n, err := p.PruneCache(time.Hour); err != nil || n != 0 {
		t.Fatalf("PruneCache(1h) = %d, %v; want 0 (blobs just used)", n, err)
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, d := range layerDigests(t, img) {
		os.Chtimes(p.blobPath(strings.TrimPrefix(d, "sha256:")), old, old)
	}
	if n, err := p.PruneCache(time.Hour); err != nil || n != 2 {
		t.Fatalf("PruneCache(1h) = %d, %v; want 2", n, err)
	}
	if _, err := build(t, p, host+"/prune:1", nil); err != nil {
		t.Fatalf("build after pruning: %v", err)
	}
}
