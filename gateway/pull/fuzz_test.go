// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

func FuzzSplitRef(f *testing.F) {
	for _, s := range []string{"ubuntu", "ubuntu:22.04", "localhost:5000/a/b@sha256:" + strings.Repeat("a", 64),
		"reg.example/../x", "a%2fb", "UPPER/x", "tést", "[::1]:5000/x:1", "x:" + strings.Repeat("t", 200),
		"reg:0/x", "reg:99999/x", "reg:65536/x", "reg:00080/x", "a.-b/x", "a-.b:5000/x", "[::1]:0/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		host, repo, tag, digest, err := splitRef(ref)
		if err != nil {
			return
		}
		for _, c := range strings.Split(repo, "/") {
			if c == "" || c == "." || c == ".." || !reComponent.MatchString(c) {
				t.Fatalf("splitRef(%q) accepted repository component %q", ref, c)
			}
		}
		if strings.ContainsAny(host+repo+tag+digest, "%\\ \x00") {
			t.Fatalf("splitRef(%q) = %q %q %q %q", ref, host, repo, tag, digest)
		}
		if host != "" && (!reHost.MatchString(host) || !validPort(host)) {
			t.Fatalf("splitRef(%q) accepted registry host %q", ref, host)
		}
		for _, label := range strings.Split(strings.Split(host, ":")[0], ".") {
			if strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
				t.Fatalf("splitRef(%q) accepted host label %q", ref, label)
			}
		}
		if len(tag) > 128 {
			t.Fatalf("splitRef(%q) accepted a %d-byte tag", ref, len(tag))
		}
	})
}

func FuzzCheckManifest(f *testing.F) {
	f.Add(string(types.OCIManifestSchema1), []byte(`{"schemaVersion":2,"config":{},"layers":[]}`))
	f.Add(string(types.OCIImageIndex), []byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Add(string(types.DockerManifestSchema2), []byte(`{"schemaVersion":2,"config":{},"layers":[],"manifests":[]}`))
	f.Add("", []byte(`{"schemaVersion":1,"fsLayers":[]}`))
	f.Fuzz(func(t *testing.T, mt string, b []byte) {
		kind, err := checkManifest(types.MediaType(mt), b)
		if err != nil {
			return
		}
		var m rawManifest
		if jerr := json.Unmarshal(b, &m); jerr != nil {
			t.Fatalf("checkManifest accepted unparsable %q", b)
		}
		if m.SchemaVersion != 2 || (m.Manifests != nil && m.Layers != nil) {
			t.Fatalf("checkManifest accepted %q", b)
		}
		if (kind == kindIndex) != (m.Manifests != nil) {
			t.Fatalf("checkManifest(%q) = %v", b, kind)
		}
	})
}
