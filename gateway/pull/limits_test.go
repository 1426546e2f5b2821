// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// rawTaggable is a manifest pushed as given.
type rawTaggable struct {
	b  []byte
	mt types.MediaType
}

func (r rawTaggable) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawTaggable) MediaType() (types.MediaType, error) { return r.mt, nil }

// TestLayerSizeOverflow is issue 17 item 7: a manifest whose layer sizes
// sum past 2^63 wrapped to a negative total and passed the size check.
func TestLayerSizeOverflow(t *testing.T) {
	host := testRegistry(t, nil)
	img := smallImage(t, "overflow")
	push(t, host+"/overflow:base", img)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		sizes []int64
	}{
		{"second layer 2^63-1", []int64{m.Layers[0].Size, math.MaxInt64}},
		{"two layers of 2^62", []int64{1 << 62, 1 << 62}},
		{"first layer 2^63-1", []int64{math.MaxInt64, m.Layers[1].Size}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mm := *m
			mm.Layers = append([]v1.Descriptor(nil), m.Layers...)
			for i, s := range tc.sizes {
				mm.Layers[i].Size = s
			}
			b, err := json.Marshal(mm)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := name.ParseReference(host+"/overflow:huge", name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Put(ref, rawTaggable{b, mm.MediaType}); err != nil {
				t.Fatalf("push manifest: %v", err)
			}
			p := newPuller(t, nil, host)
			r, err := p.Resolve(context.Background(), host+"/overflow:huge", nil)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Resolve error = %v (resolved size %v), want ErrTooLarge", err, resolvedSize(r))
			}
		})
	}
}

func resolvedSize(r *Resolved) any {
	if r == nil {
		return nil
	}
	return r.Size
}

// TestSplitRefHosts is issue 17 item 7: ports 0 and 99999 and the host
// "a.-b" must be refused in references.
func TestSplitRefHosts(t *testing.T) {
	cases := []struct {
		ref      string
		wantHost string // "" with ok: no registry named
		ok       bool
	}{
		{"reg.example/x", "reg.example", true},
		{"reg.example:1/x", "reg.example:1", true},
		{"reg.example:5000/x:1", "reg.example:5000", true},
		{"reg.example:65535/x", "reg.example:65535", true},
		{"localhost:5000/x", "localhost:5000", true},
		{"[::1]:5000/x", "[::1]:5000", true},
		{"[::1]/x", "[::1]", true},
		{"a-b.example/x", "a-b.example", true},
		{"reg.example:0/x", "", false},
		{"reg.example:99999/x", "", false},
		{"reg.example:65536/x", "", false},
		{"reg.example:00080/x", "", false},
		{"localhost:0/x", "", false},
		{"[::1]:0/x", "", false},
		{"a.-b/x", "", false},
		{"a.-b:5000/x", "", false},
		{"a-.b/x", "", false},
		{"-a.b/x", "", false},
		{"a..b/x", "", false},
		{"reg.example:/x", "", false},
	}
	for _, tc := range cases {
		host, _, _, _, err := splitRef(tc.ref)
		if tc.ok && (err != nil || host != tc.wantHost) {
			t.Errorf("splitRef(%q) = host %q, err %v; want host %q", tc.ref, host, err, tc.wantHost)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidRef) {
			t.Errorf("splitRef(%q) = host %q, err %v; want ErrInvalidRef", tc.ref, host, err)
		}
	}
	if _, err := New(Options{CacheDir: t.TempDir(), DefaultRegistry: "reg.example:99999"}); err == nil {
		t.Error("New accepted default registry reg.example:99999")
	}
}

// TestRetriesZero is issue 17 item 7: "retries": 0 in the gateway's
// config gave 4 retries, because the puller took a zero Retries as "use
// the default". Zero means one attempt.
func TestRetriesZero(t *testing.T) {
	for _, tc := range []struct {
		name    string
		retries int
		match   func(*http.Request) bool
		code    int
	}{
		{"manifest 500, no retry", 0, isManifestGet, http.StatusInternalServerError},
		{"blob 503, no retry", 0, isBlobGet, http.StatusServiceUnavailable},
		{"manifest 500, two retries", 2, isManifestGet, http.StatusInternalServerError},
		{"blob 503, two retries", 2, isBlobGet, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var armed atomic.Bool
			var hits atomic.Int32
			host := testRegistry(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if armed.Load() && tc.match(r) && r.Method == http.MethodGet {
						hits.Add(1)
						http.Error(w, "injected", tc.code)
						return
					}
					next.ServeHTTP(w, r)
				})
			})
			push(t, host+"/retry:1", smallImage(t, "retry"))
			armed.Store(true)
			p := newPuller(t, func(o *Options) { o.Retries = tc.retries }, host)
			if _, err := build(t, p, host+"/retry:1", nil); err == nil {
				t.Fatal("build succeeded against a failing registry")
			}
			if got, want := hits.Load(), int32(tc.retries+1); got != want {
				t.Errorf("failing requests = %d, want %d (retries %d)", got, want, tc.retries)
			}
		})
	}
	if _, err := New(Options{CacheDir: t.TempDir(), Retries: -1}); err == nil {
		t.Error("New accepted Retries -1")
	}
}
