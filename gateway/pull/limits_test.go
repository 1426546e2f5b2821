// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"context"
	"encoding/json"
	"errors"
	"math"
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
