// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

// fakeImage is an image the fake registry serves.
type fakeImage struct {
	id    string
	creds string // "user:pass" needed, "" for public
	env   []string
	data  []byte // the image file's bytes (default "squashfs of <id>")
}

// fakeResolved is the fake puller's resolution: the image and the
// credentials it was resolved with (a real puller downloads with them).
type fakeResolved struct {
	img   fakeImage
	creds map[string]string
}

// badBuildCred resolves but makes the build fail (a token that expires
// between the manifest and the blobs).
const badBuildCred = "mallory:expiring"

// fakePuller stands in for gateway/pull: it counts resolves and builds
// and can hold builds until released.
type fakePuller struct {
	mu       sync.Mutex
	images   map[string]fakeImage // normalized tag -> image
	resolves map[string]int       // tag -> count
	builds   map[string]int       // id -> count
	gate     chan struct{}        // if non-nil, builds wait for it to close
	started  chan string          // if non-nil, receives the id of each build started
	buildErr error
	seenCred []map[string]string
	// stall, if set, holds the builds of images from a registry host
	// until its channel closes (a registry trickling bytes).
	stall map[string]chan struct{}
	// afterWrite, if set, runs when a build has written its file.
	afterWrite func()
}

func newFakePuller() *fakePuller {
	return &fakePuller{images: map[string]fakeImage{}, resolves: map[string]int{}, builds: map[string]int{}}
}

func fakeID(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func (f *fakePuller) add(tag string, img fakeImage) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img.id == "" {
		img.id = fakeID(tag)
	}
	f.images[imagestore.NormalizeTag(tag)] = img
	return img.id
}

func (f *fakePuller) count(m map[string]int, k string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m[k]
}

func (f *fakePuller) Resolve(ctx context.Context, ref string, creds map[string]string) (*Resolved, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resolves[ref]++
	if creds != nil {
		f.seenCred = append(f.seenCred, creds)
	}
	img, ok := f.images[ref]
	if !ok {
		return nil, fmt.Errorf("resolve %s: %w", ref, ErrNotFound)
	}
	if img.creds != "" {
		ok := false
		for _, c := range creds {
			ok = ok || c == img.creds || c == badBuildCred
		}
		if !ok {
			return nil, fmt.Errorf("resolve %s: %w", ref, ErrUnauthorized)
		}
	}
	return &Resolved{ID: img.id, Ref: ref, Impl: fakeResolved{img, creds}}, nil
}

func (f *fakePuller) Build(ctx context.Context, r *Resolved, out *os.File, progress ProgressFunc) (*imagestore.Metadata, error) {
	f.mu.Lock()
	f.builds[r.ID]++
	gate, started, berr := f.gate, f.started, f.buildErr
	if ch := f.stall[tagRegistry(r.Ref, "")]; ch != nil {
		gate = ch
	}
	f.mu.Unlock()
	if started != nil {
		started <- r.ID
	}
	progress("PULLING", "downloading", 10, 100)
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if berr != nil {
		return nil, berr
	}
	for _, c := range r.Impl.(fakeResolved).creds {
		if c == badBuildCred {
			return nil, errors.New("blob download: token expired")
		}
	}
	progress("CONVERSION", "mksquashfs", 100, 100)
	data := r.Impl.(fakeResolved).img.data
	if data == nil {
		data = []byte("squashfs of " + r.ID)
	}
	if _, err := out.Write(data); err != nil {
		return nil, err
	}
	f.mu.Lock()
	after := f.afterWrite
	f.mu.Unlock()
	if after != nil {
		after()
	}
	img := r.Impl.(fakeResolved).img
	return &imagestore.Metadata{ID: r.ID, Env: img.env, Entrypoint: []string{"/bin/sh"}, WorkDir: "/"}, nil
}

// fakeClock is the real clock plus an offset that tests advance.
type fakeClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// testAuth reads the caller from "X-Test-User: NAME:UID:GID[:G1,G2...]".
func testAuth(r *http.Request, system string) (*Identity, error) {
	h := r.Header.Get("X-Test-User")
	if h == "" {
		return &Identity{Source: "none"}, nil
	}
	f := strings.Split(h, ":")
	uid, _ := strconv.ParseUint(f[1], 10, 32)
	gid, _ := strconv.ParseUint(f[2], 10, 32)
	id := &Identity{Authenticated: true, User: f[0], UID: uint32(uid), GID: uint32(gid), Groups: []uint32{uint32(gid)}, Source: "test"}
	if len(f) > 3 {
		for g := range strings.SplitSeq(f[3], ",") {
			n, _ := strconv.ParseUint(g, 10, 32)
			id.Groups = append(id.Groups, uint32(n))
		}
	}
	return id, nil
}

// Users of the tests.
const (
	alice = "alice:1001:1001"
	bob   = "bob:1002:1002"
	carol = "carol:1003:1003:5000"
	admin = "admin:1500:1500"
	anon  = ""
)

type testGW struct {
	t      testing.TB
	g      *Gateway
	srv    *httptest.Server
	cfg    *Config
	puller Puller
	clock  *fakeClock
	logs   *syncBuffer
	opts   Options
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testConfig(t testing.TB) *Config {
	dir := t.TempDir()
	c := DefaultConfig()
	c.Listen = []string{"127.0.0.1:0"}
	c.DataDir = filepath.Join(dir, "data")
	c.Workers = 4
	c.Expiration = Duration(time.Hour)
	c.Systems = map[string]*System{
		"sys":   {ImageDir: filepath.Join(dir, "images"), Transfer: TransferLocal, Admins: []string{"admin", "0"}},
		"other": {ImageDir: filepath.Join(dir, "images-other"), Transfer: TransferLocal},
	}
	return c
}

// startGW starts a gateway over httptest with the test authenticator.
func startGW(t testing.TB, c *Config, p Puller) *testGW {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tg := &testGW{t: t, cfg: c, puller: p, clock: &fakeClock{}, logs: &syncBuffer{}}
	tg.opts = Options{Config: c, Puller: p, Auth: testAuth, Now: tg.clock.now,
		Logger: slog.New(slog.NewJSONHandler(tg.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	tg.open()
	t.Cleanup(tg.close)
	return tg
}

func (tg *testGW) open() {
	tg.t.Helper()
	g, err := New(tg.opts)
	if err != nil {
		tg.t.Fatal(err)
	}
	tg.g = g
	tg.srv = httptest.NewServer(g.Handler())
}

func (tg *testGW) close() {
	if tg.g == nil {
		return
	}
	tg.srv.Close()
	tg.g.Close()
	tg.g = nil
}

// restart closes and reopens the gateway on the same data.
func (tg *testGW) restart(p Puller) {
	tg.t.Helper()
	tg.close()
	tg.opts.Puller = p
	tg.open()
}

// do sends a request and decodes the JSON answer into out (if not nil).
func (tg *testGW) do(method, path, user string, body any, out any) int {
	tg.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, tg.srv.URL+path, rd)
	if err != nil {
		tg.t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tg.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode < 500 && resp.StatusCode != 405 {
		var e api.Error
		if err := json.Unmarshal(b, &e); err != nil || e.Status != resp.StatusCode || e.Message == "" {
			tg.t.Errorf("%s %s: status %d with a body that is not an api.Error: %s", method, path, resp.StatusCode, b)
		}
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			tg.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

func (tg *testGW) pull(user, tag string, req *api.PullRequest) api.Image {
	tg.t.Helper()
	var im api.Image
	var body any
	if req != nil {
		body = req
	}
	if code := tg.do("POST", "/api/pull/sys/docker/"+tag+"/", user, body, &im); code != 200 {
		tg.t.Fatalf("pull %s as %q: status %d", tag, user, code)
	}
	return im
}

// wait polls the caller's pull of tag until it reaches a final state.
func (tg *testGW) wait(user, tag string) api.Image {
	tg.t.Helper()
	return tg.waitAt(user, "/api/pull/sys/docker/"+tag+"/", "pull of "+tag)
}

// waitAt polls the API path (a pull's or an import's) as user until the
// image it answers reaches a final state; what names it in a failure.
func (tg *testGW) waitAt(user, path, what string) api.Image {
	tg.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var im api.Image
		code := tg.do("GET", path, user, nil, &im)
		if code == 200 && terminal(im.Status) {
			return im
		}
		if time.Now().After(deadline) {
			tg.t.Fatalf("%s as %q: still %d %s %q after 20s", what, user, code, im.Status, im.StatusMessage)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tg *testGW) pullWait(user, tag string, req *api.PullRequest) api.Image {
	tg.t.Helper()
	tg.pull(user, tag, req)
	return tg.wait(user, tag)
}

func (tg *testGW) lookup(user, tag string) (api.Image, int) {
	tg.t.Helper()
	var im api.Image
	code := tg.do("GET", "/api/lookup/sys/docker/"+tag+"/", user, nil, &im)
	return im, code
}

func (tg *testGW) list(user string) []api.Image {
	tg.t.Helper()
	var l api.List
	if code := tg.do("GET", "/api/list/sys/", user, nil, &l); code != 200 {
		tg.t.Fatalf("list as %q: %d", user, code)
	}
	return l.List
}
