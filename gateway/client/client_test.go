// SPDX-License-Identifier: BSD-3-Clause

package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/internal/testutil"
)

// seen is one request as the fake gateway received it.
type seen struct {
	Method, Path, Auth string
	Body               []byte
}

// fakeGateway answers every request with status and body, and records
// what it received.
type fakeGateway struct {
	mu     sync.Mutex
	reqs   []seen
	status int
	body   string
}

func (f *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{Method: r.Method, Path: r.URL.EscapedPath(), Auth: r.Header.Get("authentication"), Body: b})
	status, body := f.status, f.body
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func (f *fakeGateway) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func newTCPFake(t *testing.T, status int, body string) (*fakeGateway, string) {
	t.Helper()
	f := &fakeGateway{status: status, body: body}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func newUnixFake(t *testing.T, status int, body string) (*fakeGateway, string) {
	t.Helper()
	f := &fakeGateway{status: status, body: body}
	sock := filepath.Join(t.TempDir(), "gw.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return f, "unix:" + sock
}

// fakeMunge writes a munge stand-in that records its arguments and stdin
// and prints a credential; it returns the command and the record file.
func fakeMunge(t *testing.T) (cmd, record string) {
	t.Helper()
	dir := t.TempDir()
	record = filepath.Join(dir, "record")
	cmd = filepath.Join(dir, "munge")
	script := "#!/bin/sh\n{ echo \"ARGS:$*\"; cat; } >>" + record + "\necho MUNGE:fakecredential:\n"
	if err := os.WriteFile(cmd, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return cmd, record
}

const readyImage = `{"id":"` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `","system":"sys","itype":"docker","tag":["ubuntu:22.04"],"status":"READY","status_message":"","userACL":[],"groupACL":[],"ENV":["PATH=/bin"],"ENTRY":null,"CMD":["sh"],"WORKDIR":"/","LABELS":null,"last_pull":1700000000}`

func TestLookup(t *testing.T) {
	mungeCmd, _ := fakeMunge(t)
	tests := []struct {
		name     string
		status   int
		body     string
		tag      string
		wantPath string
		wantErr  error
		wantID   string
	}{
		{"ready", 200, readyImage, "ubuntu:22.04", "/api/lookup/sys/docker/ubuntu:22.04/", nil, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{"registry host keeps slashes", 200, readyImage, "127.0.0.1:5000/demo/busybox:latest", "/api/lookup/sys/docker/127.0.0.1:5000/demo/busybox:latest/", nil, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{"odd characters escaped", 200, readyImage, "a b?c#d", "/api/lookup/sys/docker/a%20b%3Fc%23d/", nil, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{"not found", 404, `{"status":404,"error":"not found","message":"no image docker:x:latest"}`, "x", "/api/lookup/sys/docker/x/", ErrNotFound, ""},
		{"forbidden", 403, `{"status":403,"error":"forbidden","message":"no"}`, "x", "/api/lookup/sys/docker/x/", ErrDenied, ""},
		{"unauthorized", 401, `{"status":401,"error":"unauthorized","message":"bad credential"}`, "x", "/api/lookup/sys/docker/x/", ErrDenied, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, u := newTCPFake(t, tc.status, tc.body)
			c, err := New([]string{u}, WithMungeCommand(mungeCmd))
			if err != nil {
				t.Fatal(err)
			}
			img, err := c.Lookup(context.Background(), "sys", "docker", tc.tag)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Lookup() error = %v, want %v", err, tc.wantErr)
				}
				var ge *Error
				if !errors.As(err, &ge) || ge.StatusCode != tc.status || ge.Body.Message == "" {
					t.Errorf("Lookup() error = %#v, want *Error with status %d and the gateway's message", err, tc.status)
				}
			} else if err != nil {
				t.Fatalf("Lookup() error = %v", err)
			} else if img.ID != tc.wantID {
				t.Errorf("Lookup().ID = %q, want %q", img.ID, tc.wantID)
			}
			reqs := f.requests()
			if len(reqs) != 1 || reqs[0].Method != "GET" || reqs[0].Path != tc.wantPath || reqs[0].Auth != "MUNGE:fakecredential:" {
				t.Errorf("gateway saw %+v, want one GET %s with the munge credential", reqs, tc.wantPath)
			}
		})
	}
}

func TestErrorBodyNotJSON(t *testing.T) {
	_, u := newTCPFake(t, 500, "<html>proxy error</html>")
	c, err := New([]string{u}, WithoutMunge())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Lookup(context.Background(), "sys", "docker", "x")
	var ge *Error
	if !errors.As(err, &ge) || ge.StatusCode != 500 || !strings.Contains(err.Error(), "proxy error") {
		t.Fatalf("Lookup() error = %v, want a 500 *Error quoting the body", err)
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnreachable) {
		t.Errorf("Lookup() error = %v wraps a sentinel it should not", err)
	}
}

// closedURL returns a TCP URL where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestFailover(t *testing.T) {
	missingSock := "unix:" + filepath.Join(t.TempDir(), "nothing.sock")
	tests := []struct {
		name       string
		urls       func(good string) []string
		goodStatus int
		wantErr    error
		wantHits   int
	}{
		{"first good", func(g string) []string { return []string{g, closedURL(t)} }, 200, nil, 1},
		{"closed port then good", func(g string) []string { return []string{closedURL(t), g} }, 200, nil, 1},
		{"missing socket then good", func(g string) []string { return []string{missingSock, closedURL(t), g} }, 200, nil, 1},
		{"HTTP error is an answer, no failover", func(g string) []string { return []string{g, g} }, 500, nil, 1},
		{"none reachable", func(string) []string { return []string{closedURL(t), missingSock} }, 200, ErrUnreachable, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, good := newUnixFake(t, tc.goodStatus, readyImage)
			c, err := New(tc.urls(good), WithoutMunge(), WithDialTimeout(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Lookup(context.Background(), "sys", "docker", "x")
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("Lookup() error = %v, want %v", err, tc.wantErr)
			case tc.wantErr == nil && tc.goodStatus == 200 && err != nil:
				t.Errorf("Lookup() error = %v, want nil", err)
			case tc.goodStatus != 200 && err == nil:
				t.Errorf("Lookup() error = nil, want the HTTP %d", tc.goodStatus)
			}
			if got := len(f.requests()); got != tc.wantHits {
				t.Errorf("good gateway got %d requests, want %d", got, tc.wantHits)
			}
		})
	}
}

func TestPullCredentials(t *testing.T) {
	creds := map[string]string{"127.0.0.1:5000": "alice:s3cret"}
	tests := []struct {
		name        string
		unix        bool
		req         api.PullRequest
		wantBody    map[string]any // nil: no body
		wantPayload string         // what munge read on stdin ("" for munge -n)
		wantAuth    bool
	}{
		{
			name:     "tcp no acl no creds",
			req:      api.PullRequest{},
			wantAuth: true,
		},
		{
			name:     "tcp acl",
			req:      api.PullRequest{AllowedUIDs: "1000,1001", AllowedGIDs: "100"},
			wantBody: map[string]any{"allowed_uids": "1000,1001", "allowed_gids": "100"},
			wantAuth: true,
		},
		{
			name:        "tcp creds only in munge payload",
			req:         api.PullRequest{AllowedUIDs: "1000", AuthorizedLocations: creds},
			wantBody:    map[string]any{"allowed_uids": "1000"},
			wantPayload: `{"authorized_locations":{"127.0.0.1:5000":"alice:s3cret"}}`,
			wantAuth:    true,
		},
		{
			name:     "unix creds in body, no munge",
			unix:     true,
			req:      api.PullRequest{AuthorizedLocations: creds},
			wantBody: map[string]any{"authorized_locations": map[string]any{"127.0.0.1:5000": "alice:s3cret"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mungeCmd, record := fakeMunge(t)
			var f *fakeGateway
			var u string
			if tc.unix {
				f, u = newUnixFake(t, 200, `{"status":"PENDING","tag":[],"userACL":[],"groupACL":[]}`)
			} else {
				f, u = newTCPFake(t, 200, `{"status":"PENDING","tag":[],"userACL":[],"groupACL":[]}`)
			}
			c, err := New([]string{u}, WithMungeCommand(mungeCmd), WithMungeSocket("/run/test/munge.sock"))
			if err != nil {
				t.Fatal(err)
			}
			img, err := c.Pull(context.Background(), "sys", "docker", "127.0.0.1:5000/demo/busybox:latest", tc.req)
			if err != nil {
				t.Fatalf("Pull() error = %v", err)
			}
			if img.Status != api.StatePending {
				t.Errorf("Pull().Status = %q, want PENDING", img.Status)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("gateway got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != "POST" || r.Path != "/api/pull/sys/docker/127.0.0.1:5000/demo/busybox:latest/" {
				t.Errorf("request = %s %s", r.Method, r.Path)
			}
			var body map[string]any
			if len(r.Body) > 0 {
				if err := json.Unmarshal(r.Body, &body); err != nil {
					t.Fatalf("body %q: %v", r.Body, err)
				}
			}
			if diff := cmp.Diff(tc.wantBody, body); diff != "" {
				t.Errorf("request body (-want +got):\n%s", diff)
			}
			if got := r.Auth != ""; got != tc.wantAuth {
				t.Errorf("authentication header present = %v, want %v", got, tc.wantAuth)
			}
			rec, _ := os.ReadFile(record)
			if !tc.wantAuth {
				if len(rec) != 0 {
					t.Errorf("munge ran for a unix socket: %q", rec)
				}
				return
			}
			wantArgs := "ARGS:--socket=/run/test/munge.sock -n\n"
			if tc.wantPayload != "" {
				wantArgs = "ARGS:--socket=/run/test/munge.sock\n" + tc.wantPayload
			}
			if string(rec) != wantArgs {
				t.Errorf("munge ran with %q, want %q", rec, wantArgs)
			}
			if strings.Contains(string(r.Body), "s3cret") {
				t.Errorf("password in the TCP request body: %s", r.Body)
			}
		})
	}
}

// TestNoRedirect: a gateway answering with a redirect does not get the
// munge credential (and the registry credentials in it) sent elsewhere.
func TestNoRedirect(t *testing.T) {
	mungeCmd, _ := fakeMunge(t)
	other, otherURL := newTCPFake(t, 200, readyImage)
	for _, status := range []int{301, 302, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, otherURL+r.URL.Path, status)
			}))
			t.Cleanup(srv.Close)
			c, err := New([]string{srv.URL}, WithMungeCommand(mungeCmd))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Pull(context.Background(), "sys", "docker", "x", api.PullRequest{AuthorizedLocations: map[string]string{"default": "u:pw"}})
			var ge *Error
			if !errors.As(err, &ge) || ge.StatusCode != status {
				t.Errorf("Pull() error = %v, want the HTTP %d as an error", err, status)
			}
			if n := len(other.requests()); n != 0 {
				t.Errorf("redirect target got %d requests, want none", n)
			}
		})
	}
}

// TestMungeFailureFailsOver: when munge fails (no munged), a TCP gateway
// is skipped for the next one, and the error says why when none is left.
func TestMungeFailureFailsOver(t *testing.T) {
	dir := t.TempDir()
	badMunge := filepath.Join(dir, "munge")
	if err := os.WriteFile(badMunge, []byte("#!/bin/sh\necho 'munge: Error: Failed to access socket' >&2\nexit 6\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tcp, tcpURL := newTCPFake(t, 200, readyImage)
	unix, unixURL := newUnixFake(t, 200, readyImage)
	c, err := New([]string{tcpURL, unixURL}, WithMungeCommand(badMunge))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(context.Background(), "sys", "docker", "x"); err != nil {
		t.Errorf("Lookup() error = %v, want the unix gateway's answer", err)
	}
	if len(tcp.requests()) != 0 || len(unix.requests()) != 1 {
		t.Errorf("requests: tcp %d, unix %d; want 0 and 1", len(tcp.requests()), len(unix.requests()))
	}
	c, err = New([]string{tcpURL}, WithMungeCommand(badMunge))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Lookup(context.Background(), "sys", "docker", "x")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "Failed to access socket") {
		t.Errorf("Lookup() error = %v, want ErrUnreachable with munge's message", err)
	}
}

func TestPullCredentialsWithoutMungeOverTCP(t *testing.T) {
	f, u := newTCPFake(t, 200, `{}`)
	c, err := New([]string{u}, WithoutMunge())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Pull(context.Background(), "sys", "docker", "x", api.PullRequest{AuthorizedLocations: map[string]string{"default": "u:secretpw"}})
	if err == nil || strings.Contains(err.Error(), "secretpw") {
		t.Fatalf("Pull() error = %v, want a refusal that does not quote the password", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("gateway got %d requests, want none", n)
	}
}

func TestListQueueExpire(t *testing.T) {
	list := `{"list":[` + readyImage + `]}`
	tests := []struct {
		name    string
		body    string
		call    func(*Client) (any, error)
		want    any
		wantReq string
	}{
		{"list", list, func(c *Client) (any, error) {
			l, err := c.List(context.Background(), "sys")
			if err != nil || len(l) != 1 {
				return nil, err
			}
			return l[0].Tag, nil
		}, []string{"ubuntu:22.04"}, "GET /api/list/sys/"},
		{"queue", list, func(c *Client) (any, error) {
			l, err := c.Queue(context.Background(), "sys")
			if err != nil || len(l) != 1 {
				return nil, err
			}
			return l[0].Status, nil
		}, "READY", "GET /api/queue/sys/"},
		{"expire", `{"status":true}`, func(c *Client) (any, error) {
			r, err := c.Expire(context.Background(), "sys", "docker", "ubuntu:22.04")
			return string(r), err
		}, `{"status":true}`, "POST /api/expire/sys/docker/ubuntu:22.04/"},
		{"autoexpire", `{"status":["abc"]}`, func(c *Client) (any, error) {
			r, err := c.AutoExpire(context.Background(), "sys")
			return string(r), err
		}, `{"status":["abc"]}`, "POST /api/autoexpire/sys/"},
		{"autoexpire empty body", ``, func(c *Client) (any, error) {
			r, err := c.AutoExpire(context.Background(), "sys")
			return string(r), err
		}, ``, "POST /api/autoexpire/sys/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, u := newUnixFake(t, 200, tc.body)
			c, err := New([]string{u})
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.call(c)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			reqs := f.requests()
			if len(reqs) != 1 || reqs[0].Method+" "+reqs[0].Path != tc.wantReq {
				t.Errorf("gateway saw %+v, want %s", reqs, tc.wantReq)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "http://h:1/api", "unix:", "unix:rel.sock", "http://u:p@h:1"} {
		t.Run(u, func(t *testing.T) {
			if _, err := New([]string{u}); err == nil {
				t.Errorf("New(%q) error = nil, want an error", u)
			}
		})
	}
	if _, err := New(nil); err == nil {
		t.Error("New(nil) error = nil, want an error")
	}
}

func TestParseImage(t *testing.T) {
	tests := []struct {
		in, itype, tag string
		wantErr        bool
	}{
		{"ubuntu:22.04", "docker", "ubuntu:22.04", false},
		{"docker:ubuntu:22.04", "docker", "ubuntu:22.04", false},
		{"ubuntu", "docker", "ubuntu", false},
		{"custom:mine", "custom", "mine", false},
		{"id:0123", "id", "0123", false},
		{"127.0.0.1:5000/demo/busybox:latest", "docker", "127.0.0.1:5000/demo/busybox:latest", false},
		{"docker:127.0.0.1:5000/demo/busybox", "docker", "127.0.0.1:5000/demo/busybox", false},
		{"", "", "", true},
		{"docker:", "", "", true},
		{"a/../b", "", "", true},
		{"a b", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			it, tag, err := ParseImage(tc.in)
			if (err != nil) != tc.wantErr || it != tc.itype || tag != tc.tag {
				t.Errorf("ParseImage(%q) = %q, %q, %v, want %q, %q, error %v", tc.in, it, tag, err, tc.itype, tc.tag, tc.wantErr)
			}
		})
	}
}

func TestRegistryHost(t *testing.T) {
	for in, want := range map[string]string{
		"ubuntu:22.04":           "default",
		"library/ubuntu":         "default",
		"docker.io/library/x":    "default",
		"ghcr.io/org/x:1":        "ghcr.io",
		"127.0.0.1:5000/demo/x":  "127.0.0.1:5000",
		"localhost/x":            "localhost",
		"registry.example.org/x": "registry.example.org",
	} {
		if got := RegistryHost(in); got != want {
			t.Errorf("RegistryHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// startMunged runs a private munged on a socket in a temp dir.
func startMunged(t *testing.T) string {
	t.Helper()
	munged := testutil.RequireTool(t, "munged")
	testutil.RequireTool(t, "munge")
	testutil.RequireTool(t, "unmunge")
	dir, err := os.MkdirTemp("", "munge-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 1024)
	f, err := os.Open("/dev/urandom")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadFull(f, key)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "munge.sock")
	cmd := exec.Command(munged, "-F", "--force", "--socket="+sock, "--key-file="+filepath.Join(dir, "key"),
		"--pid-file="+filepath.Join(dir, "pid"), "--log-file="+filepath.Join(dir, "log"), "--seed-file="+filepath.Join(dir, "seed"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	t.Fatalf("munged did not create %s; log:\n%s", sock, log)
	return ""
}

// TestRealMunge checks, with Debian's munged and unmunge, that the
// authentication header decodes to the caller and carries the registry
// credentials as Shifter's payload, and that no credential leaks into the
// body.
func TestRealMunge(t *testing.T) {
	sock := startMunged(t)
	f, u := newTCPFake(t, 200, `{"status":"PENDING"}`)
	c, err := New([]string{u}, WithMungeSocket(sock))
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]string{"default": "bob:hunter2"}
	if _, err := c.Pull(context.Background(), "sys", "docker", "x", api.PullRequest{AuthorizedLocations: creds}); err != nil {
		t.Fatalf("Pull() error = %v", err)
	}
	if _, err := c.Lookup(context.Background(), "sys", "docker", "x"); err != nil {
		t.Fatalf("Lookup() error = %v", err)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("gateway got %d requests, want 2", len(reqs))
	}
	for i, wantPayload := range []string{`{"authorized_locations":{"default":"bob:hunter2"}}`, ""} {
		r := reqs[i]
		if strings.Contains(string(r.Body)+r.Auth, "hunter2") {
			t.Errorf("request %d carries the password in clear", i)
		}
		// One decode only: munged refuses a replayed credential.
		metaFile := filepath.Join(t.TempDir(), "meta")
		un := exec.Command("unmunge", "--socket="+sock, "--metadata="+metaFile)
		un.Stdin = strings.NewReader(r.Auth)
		out, err := un.Output()
		if err != nil {
			t.Fatalf("unmunge of request %d header: %v", i, err)
		}
		if string(out) != wantPayload {
			t.Errorf("request %d munge payload = %q, want %q", i, out, wantPayload)
		}
		meta, err := os.ReadFile(metaFile)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(meta), "("+strconv.Itoa(os.Getuid())+")") {
			t.Errorf("request %d credential metadata does not name uid %d:\n%s", i, os.Getuid(), meta)
		}
	}
}
