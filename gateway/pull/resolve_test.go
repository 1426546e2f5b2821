// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"context"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestResolve(t *testing.T) {
	host := testRegistry(t, nil)
	ents := []ent{dir("etc"), file("etc/os-release", "ID=test\n")}
	docker := image(t, types.DockerManifestSchema2, v1.Config{Env: []string{"A=1"}}, nil, ents)
	oci := image(t, types.OCIManifestSchema1, v1.Config{}, nil, ents)
	push(t, host+"/test/docker:1", docker)
	push(t, host+"/test/oci:1", oci)

	amd := image(t, types.OCIManifestSchema1, v1.Config{Cmd: []string{"amd"}}, &v1.Platform{OS: "linux", Architecture: "amd64"}, ents)
	arm := image(t, types.OCIManifestSchema1, v1.Config{Cmd: []string{"arm"}}, &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, ents)
	ociIdx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	pushIndex(t, host+"/test/ociindex:1", ociIdx)
	// A Docker manifest list whose entries carry no platform: chosen by config.
	damd := image(t, types.DockerManifestSchema2, v1.Config{Cmd: []string{"amd"}}, &v1.Platform{OS: "linux", Architecture: "amd64"}, ents)
	darm := image(t, types.DockerManifestSchema2, v1.Config{Cmd: []string{"arm"}}, &v1.Platform{OS: "linux", Architecture: "arm64"}, ents)
	dList := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.DockerManifestList),
		mutate.IndexAddendum{Add: darm}, mutate.IndexAddendum{Add: damd})
	pushIndex(t, host+"/test/dlist:1", dList)

	digestOf := func(img v1.Image) string {
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.Hex
	}
	cases := []struct {
		name     string
		ref      string
		platform string
		wantID   string
		wantErr  error
	}{
		{"docker schema 2", host + "/test/docker:1", "", digestOf(docker), nil},
		{"oci manifest", host + "/test/oci:1", "", digestOf(oci), nil},
		{"oci by digest", host + "/test/oci@sha256:" + digestOf(oci), "", digestOf(oci), nil},
		{"oci index amd64", host + "/test/ociindex:1", "", digestOf(amd), nil},
		{"oci index arm64", host + "/test/ociindex:1", "linux/arm64", digestOf(arm), nil},
		{"oci index arm64/v8", host + "/test/ociindex:1", "linux/arm64/v8", digestOf(arm), nil},
		{"oci index no match", host + "/test/ociindex:1", "linux/s390x", "", ErrNotFound},
		{"docker list by config amd64", host + "/test/dlist:1", "", digestOf(damd), nil},
		{"docker list by config arm64", host + "/test/dlist:1", "linux/arm64", digestOf(darm), nil},
		{"unknown tag", host + "/test/docker:nope", "", "", ErrNotFound},
		{"unknown repo", host + "/test/nothere:1", "", "", ErrNotFound},
		{"dotdot repo", host + "/test/../x:1", "", "", ErrInvalidRef},
		{"percent repo", host + "/test%2fx:1", "", "", ErrInvalidRef},
		{"uppercase repo", host + "/Test/x:1", "", "", ErrInvalidRef},
		{"unicode repo", host + "/tést:1", "", "", ErrInvalidRef},
		{"long tag", host + "/test/x:" + string(make([]byte, 0)) + longString(129), "", "", ErrInvalidRef},
		{"bad digest", host + "/test/x@sha256:abc", "", "", ErrInvalidRef},
		{"md5 digest", host + "/test/x@md5:d41d8cd98f00b204e9800998ecf8427e", "", "", ErrInvalidRef},
		{"empty", "", "", "", ErrInvalidRef},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPuller(t, func(o *Options) { o.Platform = tc.platform }, host)
			r, err := p.Resolve(context.Background(), tc.ref, nil)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Resolve(%q) error = %v, want %v", tc.ref, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tc.ref, err)
			}
			if r.ID != tc.wantID {
				t.Errorf("Resolve(%q).ID = %s, want %s", tc.ref, r.ID, tc.wantID)
			}
			if r.Digest != "sha256:"+tc.wantID {
				t.Errorf("Resolve(%q).Digest = %s", tc.ref, r.Digest)
			}
		})
	}
}

func longString(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a'
	}
	return string(b)
}

func TestCheckManifest(t *testing.T) {
	cases := []struct {
		name    string
		mt      types.MediaType
		body    string
		want    manifestKind
		wantErr bool
	}{
		{"oci manifest", types.OCIManifestSchema1, `{"schemaVersion":2,"config":{},"layers":[]}`, kindImage, false},
		{"docker manifest", types.DockerManifestSchema2, `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{},"layers":[]}`, kindImage, false},
		{"oci index", types.OCIImageIndex, `{"schemaVersion":2,"manifests":[]}`, kindIndex, false},
		{"docker list", types.DockerManifestList, `{"schemaVersion":2,"manifests":[]}`, kindIndex, false},
		{"both layers and manifests", types.OCIManifestSchema1, `{"schemaVersion":2,"config":{},"layers":[],"manifests":[]}`, 0, true},
		{"index with layers", types.OCIImageIndex, `{"schemaVersion":2,"layers":[],"manifests":[]}`, 0, true},
		{"media type mismatch", types.OCIManifestSchema1, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`, 0, true},
		{"schema 1", types.DockerManifestSchema1Signed, `{"schemaVersion":1,"fsLayers":[]}`, 0, true},
		{"unknown media type", "text/plain", `{"schemaVersion":2,"config":{},"layers":[]}`, 0, true},
		{"manifest without config", types.OCIManifestSchema1, `{"schemaVersion":2,"layers":[]}`, 0, true},
		{"not json", types.OCIManifestSchema1, `<html>`, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkManifest(tc.mt, []byte(tc.body))
			if (err != nil) != tc.wantErr {
				t.Fatalf("checkManifest() error = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("checkManifest() = %v, want %v", got, tc.want)
			}
			if err != nil && !errors.Is(err, ErrInvalidImage) {
				t.Errorf("checkManifest() error %v does not wrap ErrInvalidImage", err)
			}
		})
	}
}
