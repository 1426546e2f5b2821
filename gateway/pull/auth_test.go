// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const (
	testUser = "alice"
	testPass = "s3cret-Pa55"
	badPass  = "wr0ng-Pa55"
)

// basicAuth makes a registry demand HTTP basic credentials.
func basicAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenAuth makes a registry demand a bearer token, which its /token
// endpoint hands out for basic credentials (the Docker token protocol).
func tokenAuth(next http.Handler) http.Handler {
	const token = "tok-0123456789"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPass {
				http.Error(w, `{"details":"bad credentials"}`, http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"token":"` + token + `"}`))
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+r.Host+`/token",service="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pushAuth pushes with the test credentials.
func pushAuth(t *testing.T, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img := smallImage(t, "auth")
	if err := remote.Write(r, img, remote.WithAuth(&basicAuthn{testUser, testPass})); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func TestAuth(t *testing.T) {
	for _, scheme := range []struct {
		name string
		wrap func(http.Handler) http.Handler
	}{{"basic", basicAuth}, {"token", tokenAuth}} {
		host := testRegistry(t, scheme.wrap)
		pushAuth(t, host+"/private/img:1")
		cases := []struct {
			name       string
			ref        string
			creds      map[string]string
			defaultReg bool
			wantErr    error
		}{
			{"no credentials", host + "/private/img:1", nil, false, ErrUnauthorized},
			{"wrong password", host + "/private/img:1", map[string]string{host: testUser + ":" + badPass}, false, ErrUnauthorized},
			{"credentials of another registry", host + "/private/img:1", map[string]string{"other.example:5000": testUser + ":" + testPass}, false, ErrUnauthorized},
			{"default key for another registry", host + "/private/img:1", map[string]string{"default": testUser + ":" + testPass}, false, ErrUnauthorized},
			{"credentials by host", host + "/private/img:1", map[string]string{host: testUser + ":" + testPass}, false, nil},
			{"default key for the default registry", "private/img:1", map[string]string{"default": testUser + ":" + testPass}, true, nil},
		}
		for _, tc := range cases {
			t.Run(scheme.name+"/"+tc.name, func(t *testing.T) {
				var logs bytes.Buffer
				p := newPuller(t, func(o *Options) {
					o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
					if tc.defaultReg {
						o.DefaultRegistry = host
					}
				}, host)
				_, err := build(t, p, tc.ref, tc.creds)
				if tc.wantErr == nil && err != nil {
					t.Fatalf("build: %v", err)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("build error = %v, want %v", err, tc.wantErr)
				}
				for _, secret := range []string{testPass, badPass,
					base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPass)),
					base64.StdEncoding.EncodeToString([]byte(testUser + ":" + badPass)), "tok-0123456789"} {
					if err != nil && strings.Contains(err.Error(), secret) {
						t.Errorf("error %q contains a secret", err)
					}
					if strings.Contains(logs.String(), secret) {
						t.Errorf("debug logs contain a secret:\n%s", logs.String())
					}
				}
			})
		}
	}
}

// TestRedirectDropsCredentials serves blobs through a redirect to another
// host (a "CDN") and checks that the registry's credentials never reach
// it, and that a redirect to plain HTTP on a host not configured insecure
// is refused.
func TestRedirectDropsCredentials(t *testing.T) {
	reg := registry.New(registry.Logger(nilLogger()))
	var mu sync.Mutex
	var cdnAuth []string
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cdnAuth = append(cdnAuth, r.Header.Get("Authorization")+r.Header.Get("Cookie")+r.Header.Get("Proxy-Authorization"))
		mu.Unlock()
		// Serve the blob from the registry behind the CDN.
		in := r.Clone(r.Context())
		in.URL.Path = strings.TrimPrefix(r.URL.Path, "/cdn")
		reg.ServeHTTP(w, in)
	}))
	t.Cleanup(cdn.Close)
	cdnHost := strings.TrimPrefix(cdn.URL, "http://")
	host := testRegistry(t, func(next http.Handler) http.Handler {
		return basicAuth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isBlobGet(r) && strings.Contains(r.URL.Path, "/private/") {
				http.Redirect(w, r, cdn.URL+"/cdn"+r.URL.Path, http.StatusTemporaryRedirect)
				return
			}
			reg.ServeHTTP(w, r)
		}))
	})
	pushAuth(t, host+"/private/img:1")
	creds := map[string]string{host: testUser + ":" + testPass}

	t.Run("cdn allowed", func(t *testing.T) {
		p := newPuller(t, func(o *Options) { o.AllowInternalHosts = []string{cdnHost} }, host, cdnHost)
		if _, err := build(t, p, host+"/private/img:1", creds); err != nil {
			t.Fatalf("build: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(cdnAuth) == 0 {
			t.Fatal("no blob came through the CDN")
		}
		for _, a := range cdnAuth {
			if a != "" {
				t.Errorf("CDN received credentials %q", a)
			}
		}
	})
	t.Run("internal cdn not allowed", func(t *testing.T) {
		mu.Lock()
		cdnAuth = nil
		mu.Unlock()
		p := newPuller(t, nil, host, cdnHost)
		_, err := build(t, p, host+"/private/img:1", creds)
		if !errors.Is(err, ErrInternalHost) {
			t.Fatalf("build error = %v, want %v", err, ErrInternalHost)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(cdnAuth) != 0 {
			t.Errorf("the internal CDN received %d requests", len(cdnAuth))
		}
	})
	t.Run("plain http cdn refused", func(t *testing.T) {
		p := newPuller(t, func(o *Options) { o.AllowInternalHosts = []string{cdnHost} }, host)
		_, err := build(t, p, host+"/private/img:1", creds)
		if err == nil || !strings.Contains(err.Error(), "plain HTTP not allowed") {
			t.Fatalf("build error = %v, want a plain HTTP refusal", err)
		}
	})
}

func TestTLSAndPlainHTTP(t *testing.T) {
	s := httptest.NewTLSServer(registry.New(registry.Logger(nilLogger())))
	t.Cleanup(s.Close)
	host := strings.TrimPrefix(s.URL, "https://")
	r, err := name.ParseReference(host + "/tls/img:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, smallImage(t, "tls"), remote.WithTransport(s.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := testRegistry(t, nil)
	push(t, plain+"/plain/img:1", smallImage(t, "plain"))
	cases := []struct {
		name    string
		ref     string
		regs    map[string]Registry
		wantErr string
	}{
		{"https with the registry's CA", host + "/tls/img:1", map[string]Registry{host: {CAFile: ca}}, ""},
		{"https without the CA", host + "/tls/img:1", nil, "certificate"},
		{"plain http not configured", plain + "/plain/img:1", nil, "plain HTTP not allowed"},
		{"plain http configured", plain + "/plain/img:1", map[string]Registry{plain: {Insecure: true}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPuller(t, func(o *Options) { o.Registries = tc.regs })
			_, err := p.Resolve(context.Background(), tc.ref, nil)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Resolve error = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}
