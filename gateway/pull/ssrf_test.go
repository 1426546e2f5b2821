// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// hostsHook maps test host names to addresses, as a hostile DNS would.
func hostsHook(m map[string]string) func(string) string {
	return func(h string) string { return m[h] }
}

// authRecorder is a server recording the Authorization header of every
// request it gets.
type authRecorder struct {
	mu   sync.Mutex
	seen []string // Authorization headers, "" for none
	srv  *httptest.Server
	port string
}

func newAuthRecorder(t *testing.T, h http.Handler) *authRecorder {
	a := &authRecorder{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Header.Get("Authorization"))
		a.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(a.srv.Close)
	_, a.port, _ = net.SplitHostPort(strings.TrimPrefix(a.srv.URL, "http://"))
	return a
}

func (a *authRecorder) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// TestTokenRealmOnInternalHost is the attack of issue 17 item 1: a
// registry names a token realm on a host that resolves to the gateway's
// loopback (or is "localhost"), so the user's registry password would go
// to an internal service as HTTP Basic.
func TestTokenRealmOnInternalHost(t *testing.T) {
	const token = "tok-internal-0123"
	// The "internal service": it hands out tokens for the right
	// password, so a leak makes the pull succeed.
	evil := newAuthRecorder(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPass {
			http.Error(w, `{"details":"bad credentials"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"token":"` + token + `"}`))
	}))
	var realm struct {
		sync.Mutex
		url string
	}
	reg := registry.New(registry.Logger(nilLogger()))
	host := testRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			realm.Lock()
			u := realm.url
			realm.Unlock()
			if u != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
				if r.Header.Get("Authorization") != "Bearer "+token {
					w.Header().Set("WWW-Authenticate", `Bearer realm="`+u+`",service="test"`)
					http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}`, http.StatusUnauthorized)
					return
				}
			}
			reg.ServeHTTP(w, r)
		})
	})
	push(t, host+"/private/img:1", smallImage(t, "realm"))
	evilHost := "evil.test:" + evil.port
	localHost := "localhost:" + evil.port
	metaHost := "metadata.test:" + evil.port
	creds := map[string]string{host: testUser + ":" + testPass}
	// errEither: ErrCredentialsRefused or ErrInternalHost (both defences
	// stop a pull with credentials; the first to see the request wins).
	errEither := errors.New("credentials or internal host refused")
	cases := []struct {
		name     string
		realm    string
		anon     bool // pull without credentials: only the dialer stops it
		mod      func(*Options)
		wantErr  error // nil: the pull succeeds
		wantSeen int   // requests the realm host gets
		wantAuth bool  // and whether they carry credentials
	}{
		{"realm name resolving to loopback", "http://" + evilHost + "/token", false, nil, errEither, 0, false},
		{"realm on localhost", "http://" + localHost + "/token", false, nil, errEither, 0, false},
		{"realm resolving to the metadata service", "http://" + metaHost + "/token", false, nil, errEither, 0, false},
		{"anonymous: realm name resolving to loopback", "http://" + evilHost + "/token", true, nil, ErrInternalHost, 0, false},
		{"anonymous: realm on localhost", "http://" + localHost + "/token", true, nil, ErrInternalHost, 0, false},
		{"anonymous: realm resolving to the metadata service", "http://" + metaHost + "/token", true, nil, ErrInternalHost, 0, false},
		{"internal realm allowed, credentials not", "http://" + evilHost + "/token", false,
			func(o *Options) { o.AllowInternalHosts = []string{"evil.test"} }, ErrCredentialsRefused, 0, false},
		{"internal realm allowed by address, credentials not", "http://" + evilHost + "/token", false,
			func(o *Options) { o.AllowInternalHosts = []string{"127.0.0.0/8"} }, ErrCredentialsRefused, 0, false},
		{"realm allowed and trusted with credentials", "http://" + evilHost + "/token", false, func(o *Options) {
			o.AllowInternalHosts = []string{evilHost}
			r := o.Registries[host]
			r.AuthHosts = []string{evilHost}
			o.Registries[host] = r
		}, nil, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			realm.Lock()
			realm.url = tc.realm
			realm.Unlock()
			before := len(evil.requests())
			p := newPuller(t, func(o *Options) {
				o.resolveHook = hostsHook(map[string]string{"evil.test": "127.0.0.1", "metadata.test": "169.254.169.254"})
				o.Registries[evilHost] = Registry{Insecure: true} // plain HTTP is allowed, nothing more
				o.Registries[localHost] = Registry{Insecure: true}
				o.Registries[metaHost] = Registry{Insecure: true}
				if tc.mod != nil {
					tc.mod(o)
				}
			}, host)
			c := creds
			if tc.anon {
				c = nil
			}
			_, err := build(t, p, host+"/private/img:1", c)
			t.Logf("build: %v", err)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("build: %v", err)
			case tc.wantErr == errEither && (errors.Is(err, ErrCredentialsRefused) || errors.Is(err, ErrInternalHost)):
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("build error = %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), strings.Split(strings.TrimPrefix(tc.realm, "http://"), ":")[0]) {
				t.Errorf("error %q does not name the realm's host", err)
			}
			seen := evil.requests()[before:]
			if len(seen) < tc.wantSeen || (tc.wantSeen == 0 && len(seen) > 0) {
				t.Errorf("the realm host got %d requests, want %d", len(seen), tc.wantSeen)
			}
			for _, a := range seen {
				if (a != "") != tc.wantAuth {
					t.Errorf("the realm host got Authorization %q", a)
				}
			}
		})
	}
}

// TestBlobRedirectToInternalHost: a registry redirects blob downloads to
// a host name resolving to an internal address (loopback, the cloud
// metadata service); the gateway must not connect.
func TestBlobRedirectToInternalHost(t *testing.T) {
	reg := registry.New(registry.Logger(nilLogger()))
	inner := newAuthRecorder(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := r.Clone(r.Context())
		in.URL.Path = strings.TrimPrefix(r.URL.Path, "/cdn")
		reg.ServeHTTP(w, in)
	}))
	var target struct {
		sync.Mutex
		base string
	}
	host := testRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isBlobGet(r) {
				target.Lock()
				base := target.base
				target.Unlock()
				http.Redirect(w, r, base+"/cdn"+r.URL.Path, http.StatusTemporaryRedirect)
				return
			}
			reg.ServeHTTP(w, r)
		})
	})
	push(t, host+"/redir/img:1", smallImage(t, "redir"))
	cases := []struct {
		name    string
		base    string
		allow   []string
		wantErr error
	}{
		{"name resolving to loopback", "http://cdn.test:" + inner.port, nil, ErrInternalHost},
		{"name resolving to the metadata service", "http://meta.test:" + inner.port, nil, ErrInternalHost},
		{"loopback literal on another port", "http://127.0.0.1:" + inner.port, nil, ErrInternalHost},
		{"allowed by the site", "http://cdn.test:" + inner.port, []string{"cdn.test"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target.Lock()
			target.base = tc.base
			target.Unlock()
			before := len(inner.requests())
			p := newPuller(t, func(o *Options) {
				o.resolveHook = hostsHook(map[string]string{"cdn.test": "127.0.0.1", "meta.test": "169.254.169.254"})
				o.AllowInternalHosts = tc.allow
				for _, h := range []string{"cdn.test:", "meta.test:", "127.0.0.1:"} {
					o.Registries[h+inner.port] = Registry{Insecure: true}
				}
			}, host)
			_, err := build(t, p, host+"/redir/img:1", nil)
			t.Logf("build: %v", err)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("build: %v", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("build error = %v, want %v", err, tc.wantErr)
			}
			if n := len(inner.requests()) - before; tc.wantErr != nil && n != 0 {
				t.Errorf("the internal host got %d requests", n)
			}
		})
	}
}

func TestAllowInternalHostsValidation(t *testing.T) {
	for _, tc := range []struct {
		entry string
		ok    bool
	}{
		{"registry.example", true}, {"registry.example:5000", true}, {"10.0.0.0/8", true}, {"fd00::/8", true},
		{"127.0.0.1", true}, {"[::1]", true}, {"a.-b", false}, {"reg:0", false}, {"reg:99999", false}, {"", false},
		{"http://x", false},
	} {
		_, err := New(Options{CacheDir: t.TempDir(), AllowInternalHosts: []string{tc.entry}})
		if (err == nil) != tc.ok {
			t.Errorf("AllowInternalHosts %q: err = %v, want ok=%v", tc.entry, err, tc.ok)
		}
	}
}

// TestRedirectLimit is issue 17 item 2: a registry answering a blob (or
// manifest) with an endless self-redirect made the gateway follow it for
// minutes. A chain of up to 10 redirects works; a longer one fails the
// pull after a bounded number of requests.
func TestRedirectLimit(t *testing.T) {
	const safety = 2000 // the server gives up here, so the test ends even without the cap
	cases := []struct {
		name    string
		match   func(*http.Request) bool
		hops    int // redirects before the real answer
		wantErr bool
	}{
		{"ten blob redirects", isBlobGet, 10, false},
		{"endless blob self-redirect", isBlobGet, 1 << 30, true},
		{"endless manifest self-redirect", isManifestGet, 1 << 30, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			requests := 0
			var armed bool
			host := testRegistry(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					on := armed && tc.match(r)
					if on {
						requests++
					}
					n := requests
					mu.Unlock()
					if !on {
						next.ServeHTTP(w, r)
						return
					}
					hop := len(r.URL.Query()["hop"])
					if n > safety {
						http.Error(w, "enough", http.StatusInternalServerError)
						return
					}
					if hop < tc.hops {
						u := *r.URL
						q := u.Query()
						q.Add("hop", "x")
						u.RawQuery = q.Encode()
						http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
						return
					}
					next.ServeHTTP(w, r)
				})
			})
			push(t, host+"/loop/img:1", smallImage(t, "loop"))
			mu.Lock()
			armed = true
			mu.Unlock()
			p := newPuller(t, nil, host)
			_, err := build(t, p, host+"/loop/img:1", nil)
			t.Logf("build: %v", err)
			mu.Lock()
			n := requests
			mu.Unlock()
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("build: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "stopped after 10 redirects") {
				t.Fatalf("build error = %v, want one saying it stopped after 10 redirects", err)
			}
			// One chain of 11 requests per fetch attempt; a redirect loop
			// is not retried.
			if n > 2*(maxRedirects+1) {
				t.Errorf("the registry got %d requests, want at most %d", n, 2*(maxRedirects+1))
			}
		})
	}
}

func TestPullScope(t *testing.T) {
	p := newPuller(t, func(o *Options) {
		o.Registries["reg.example"] = Registry{AuthHosts: []string{"auth.example", "tok.example:8443"}}
	}, "plain.example")
	cases := []struct {
		reg, method, url string
		auth             bool
		ok               bool
	}{
		{"reg.example", "GET", "https://reg.example/v2/", true, true},
		{"reg.example", "GET", "https://REG.example:443/v2/", true, true},
		{"reg.example", "GET", "https://reg.example:444/v2/", true, false},
		{"reg.example", "GET", "https://auth.example/token", true, true},
		{"reg.example", "GET", "https://tok.example:8443/token", true, true},
		{"reg.example", "GET", "https://tok.example/token", true, false},
		{"reg.example", "GET", "https://cdn.example/blob", false, true},
		{"reg.example", "GET", "https://cdn.example/blob", true, false},
		{"reg.example", "POST", "https://cdn.example/token", false, false},
		{"index.docker.io", "GET", "https://auth.docker.io/token", true, true},
		{"index.docker.io", "GET", "https://registry-1.docker.io/v2/", true, true},
		{"other.example", "GET", "https://auth.docker.io/token", true, false},
		{"plain.example", "GET", "http://plain.example/v2/", true, true},
		{"plain.example", "GET", "https://plain.example/v2/", true, true},
	}
	for _, tc := range cases {
		req, err := http.NewRequest(tc.method, tc.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.auth {
			req.Header.Set("Authorization", "Basic eDp5")
		}
		err = p.scope(tc.reg).checkRequest(req)
		if (err == nil) != tc.ok {
			t.Errorf("registry %s: %s %s (auth %v): err = %v, want ok=%v", tc.reg, tc.method, tc.url, tc.auth, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrCredentialsRefused) {
			t.Errorf("error %v is not ErrCredentialsRefused", err)
		}
	}
	if s := p.scope("plain.example"); !s.registry["plain.example:80"] || !s.registry["plain.example:443"] {
		t.Errorf("insecure registry's own addresses = %v, want ports 80 and 443", s.registry)
	}
}
