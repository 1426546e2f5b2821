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
