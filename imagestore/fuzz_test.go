// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes as <id>.json: Load either returns
// metadata that validates and names the file's id, or an error wrapping
// ErrInvalid. The runtime (setuid) reads these files.
func FuzzLoad(f *testing.F) {
	id := strings.Repeat("ab", 32)
	f.Add([]byte(`{"id":"` + id + `","format":"squashfs","env":["A=b"],"userACL":[1000]}`))
	f.Add([]byte(`{"id":"` + id + `","format":"squashfs","env":["=x"]}`))
	f.Add([]byte(`{"id":"` + strings.Repeat("cd", 32) + `","format":"squashfs"}`))
	f.Add([]byte(`{"id":"` + id + `","format":"ext4"}`))
	f.Add([]byte(`{"id":"` + id + `","format":"squashfs","size":-1,"sha256":"zz"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, id+".json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := Load(dir, id)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if m.ID != id {
			t.Fatalf("Load returned id %q for file %s.json", m.ID, id)
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Load returned metadata that does not validate: %v", err)
		}
	})
}

// FuzzNormalizeTag checks that normalization is idempotent.
func FuzzNormalizeTag(f *testing.F) {
	for _, s := range []string{"ubuntu", "docker.io/library/ubuntu:22.04", "library/x", "a/b@sha256:00", "host:5000/x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeTag(s)
		if NormalizeTag(n) != n {
			t.Fatalf("NormalizeTag(%q) = %q, but NormalizeTag(%q) = %q", s, n, n, NormalizeTag(n))
		}
	})
}
