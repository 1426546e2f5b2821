// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"strings"
	"testing"
)

// FuzzParseTag: every image reference the API accepts is canonical (parsing
// it again gives itself) and free of the characters and components that
// strict parsing exists to keep out.
func FuzzParseTag(f *testing.F) {
	for _, s := range []string{"ubuntu", "ubuntu:22.04", "docker.io/library/ubuntu", "127.0.0.1:5000/a/b:v1",
		"a/../b", "a%2fb", "UPPER/x", "x@sha256:" + strings.Repeat("a", 64), "foo..bar", "a//b", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTag(s)
		if err != nil {
			return
		}
		if again, err := ParseTag(got); err != nil || again != got {
			t.Fatalf("ParseTag(%q) = %q, but ParseTag(%q) = %q, %v", s, got, got, again, err)
		}
		if strings.Contains(got, "..") || strings.ContainsAny(got, "%\\ \x00") || strings.Contains(got, "//") {
			t.Fatalf("ParseTag(%q) accepted %q", s, got)
		}
	})
}

// FuzzParseConfig: arbitrary config bytes never panic the parser or the
// validator (flags are applied between the two, so a parsed config may
// still be invalid), and a config that validates names at least one system
// and one listen address.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"listen":["unix:/run/x.sock"],"workers":2}`))
	f.Add([]byte(`{"unknown":1}`))
	f.Add([]byte(`{"systems":{"a":{"image_dir":"/x","transfer":"ssh"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			return
		}
		if len(c.Systems) == 0 || len(c.Listen) == 0 {
			t.Fatalf("validated config has %d systems and %d listen addresses", len(c.Systems), len(c.Listen))
		}
	})
}

// FuzzParseUnmunge: unmunge's output (from a credential the client chose)
// never panics the parser.
func FuzzParseUnmunge(f *testing.F) {
	f.Add([]byte("STATUS:          Success (0)\nUID:             alice (1000)\nGID:             users (100)\n\n{}"))
	f.Add([]byte("UID: x (notanumber)\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseUnmunge(b)
		if err == nil && id == nil {
			t.Fatal("parseUnmunge returned neither identity nor error")
		}
	})
}
