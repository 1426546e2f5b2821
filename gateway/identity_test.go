// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/internal/testutil"
)

// worldDir makes a temporary directory that other uids can traverse.
func worldDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "gwtest-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// startMunged starts Debian's munged with a fresh key on a private
// socket and returns the socket path.
func startMunged(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	for _, tool := range []string{"munged", "mungekey", "munge", "unmunge"} {
		testutil.RequireTool(t, tool)
	}
	d := worldDir(t)
	key := filepath.Join(d, "key")
	if out, err := exec.Command("mungekey", "-c", "-k", key).CombinedOutput(); err != nil {
		t.Fatalf("mungekey: %v\n%s", err, out)
	}
	sock := filepath.Join(d, "sock")
	cmd := exec.Command("munged", "-F", "--force", "--key-file", key, "--socket", sock,
		"--pid-file", filepath.Join(d, "pid"), "--log-file", filepath.Join(d, "log"), "--seed-file", filepath.Join(d, "seed"))
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		if i > 200 {
			t.Fatalf("munged did not start:\n%s", out.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// mungeCred encodes a credential as uid/gid with payload.
func mungeCred(t *testing.T, sock string, uid, gid uint32, payload string) string {
	t.Helper()
	cmd := exec.Command("munge", "--socket", sock)
	cmd.Stdin = strings.NewReader(payload)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("munge as %d: %v", uid, err)
	}
	return strings.TrimSpace(string(out))
}

// TestMungeAuthentication runs a real munged and checks identities,
// payload credentials, replays and bad credentials over TCP.
func TestMungeAuthentication(t *testing.T) {
	sock := startMunged(t)
	p := newFakePuller()
	id := p.add("corp/secret:1", fakeImage{creds: "u4242:" + secret})
	p.add("pub:1", fakeImage{})
	c := testConfig(t)
	c.Systems["sys"].MungeSocket = sock
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{Config: c, Puller: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	call := func(method, path, cred string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if cred != "" {
			req.Header.Set(MungeHeader, cred)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil {
			json.Unmarshal(b, out)
		}
		return resp.StatusCode
	}
	payload := fmt.Sprintf(`{"authorized_locations":{"default":"u4242:%s"}}`, secret)
	var im api.Image
	if code := call("POST", "/api/pull/sys/docker/corp/secret:1/", mungeCred(t, sock, 4242, 4242, payload), &im); code != 200 {
		t.Fatalf("pull with munge: %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !terminal(im.Status) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		call("GET", "/api/pull/sys/docker/corp/secret:1/", mungeCred(t, sock, 4242, 4242, ""), &im)
	}
	if im.Status != api.StateReady || im.ID != id || len(im.UserACL) != 1 || im.UserACL[0] != 4242 {
		t.Fatalf("private pull with munge payload credentials: %+v", im)
	}
	if code := call("GET", "/api/lookup/sys/docker/corp/secret:1/", mungeCred(t, sock, 4242, 4242, ""), nil); code != 200 {
		t.Errorf("owner's lookup: %d", code)
	}
	if code := call("GET", "/api/lookup/sys/docker/corp/secret:1/", mungeCred(t, sock, 4343, 4343, ""), nil); code != 404 {
		t.Errorf("other uid's lookup: %d, want 404", code)
	}
	if code := call("GET", "/api/lookup/sys/docker/corp/secret:1/", "", nil); code != 404 {
		t.Errorf("anonymous lookup of a private image: %d, want 404", code)
	}
	cred := mungeCred(t, sock, 4242, 4242, "")
	if code := call("GET", "/api/list/sys/", cred, nil); code != 200 {
		t.Errorf("list: %d", code)
	}
	var e api.Error
	if code := call("GET", "/api/list/sys/", cred, &e); code != 401 || !strings.Contains(e.Message, "replayed") {
		t.Errorf("replayed credential: %d %+v", code, e)
	}
	for _, bad := range []string{"MUNGE:AAAAgarbage:", "not-munge", strings.Repeat("A", 70000)} {
		if code := call("GET", "/api/list/sys/", bad, nil); code != 401 {
			t.Errorf("bad credential %.20q: %d, want 401", bad, code)
		}
	}
	// Admin by uid: root is listed as "0" in the test config.
	if code := call("GET", "/api/autoexpire/sys/", mungeCred(t, sock, 0, 0, ""), nil); code != 200 {
		t.Errorf("autoexpire as root: %d", code)
	}
	if code := call("GET", "/api/autoexpire/sys/", mungeCred(t, sock, 4242, 4242, ""), nil); code != 403 {
		t.Errorf("autoexpire as 4242: %d", code)
	}
	// A credential made by another munge key (another system) is refused.
	other := startMunged(t)
	if code := call("GET", "/api/list/sys/", mungeCred(t, other, 4242, 4242, ""), nil); code != 401 {
		t.Errorf("credential of another munge realm: %d", code)
	}
}

func TestParseUnmunge(t *testing.T) {
	good := "STATUS:          Success (0)\nENCODE_HOST:     h (127.0.0.1)\nUID:             alice (1001)\nGID:             users (100)\nLENGTH:          2\n\n{}"
	id, err := parseUnmunge([]byte(good))
	if err != nil || id.UID != 1001 || id.GID != 100 || !id.Authenticated {
		t.Errorf("parse: %+v %v", id, err)
	}
	for _, bad := range []string{
		"STATUS: Success (0)\nGID: x (1)\n\n",                         // no uid
		"STATUS: Expired credential (15)\nUID: a (1)\nGID: b (2)\n\n", // not success
		"STATUS: Success (0)\nUID: a (99999999999)\nGID: b (2)\n\n",   // uid overflow
		"STATUS: Success (0)\nUID: a (1)\nGID: b (2)\n\nnot json",     // payload
		"",
	} {
		if id, err := parseUnmunge([]byte(bad)); err == nil {
			t.Errorf("parseUnmunge(%q) = %+v", bad, id)
		}
	}
}

// TestPeercredIdentity serves the API on a unix socket and connects as
// another uid (a helper process with dropped credentials): the gateway
// sees that uid.
func TestPeercredIdentity(t *testing.T) {
	testutil.RequireRoot(t)
	p := newFakePuller()
	id := p.add("corp/secret:1", fakeImage{creds: "x:" + secret})
	c := testConfig(t)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{Config: c, Puller: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	d := worldDir(t)
	sock := filepath.Join(d, "run", "gw.sock")
	l, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o666 {
		t.Errorf("socket mode: %v %v", st.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, []net.Listener{l}) }()
	t.Cleanup(func() { cancel(); <-done })
	if _, err := Listen("unix:" + sock); err == nil {
		t.Error("a second gateway could take over a live socket")
	}

	as := peercredClient(t, d, sock)
	// Over the unix socket the body may carry registry credentials.
	body := fmt.Sprintf(`{"authorized_locations":{"default":"x:%s"}}`, secret)
	if code, out := as(4242, "POST", "/api/pull/sys/docker/corp/secret:1/", body); code != 200 {
		t.Fatalf("pull over the unix socket as 4242: %d %s", code, out)
	}
	var im api.Image
	deadline := time.Now().Add(10 * time.Second)
	for !terminal(im.Status) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		_, out := as(4242, "GET", "/api/pull/sys/docker/corp/secret:1/", "")
		json.Unmarshal([]byte(out), &im)
	}
	if im.Status != api.StateReady || im.ID != id || len(im.UserACL) != 1 || im.UserACL[0] != 4242 {
		t.Fatalf("pull as 4242: %+v", im)
	}
	if code, _ := as(4242, "GET", "/api/lookup/sys/docker/corp/secret:1/", ""); code != 200 {
		t.Errorf("lookup by the owner: %d", code)
	}
	if code, _ := as(4343, "GET", "/api/lookup/sys/docker/corp/secret:1/", ""); code != 404 {
		t.Errorf("lookup by uid 4343: %d, want 404", code)
	}
	if code, _ := as(4242, "POST", "/api/autoexpire/sys/", ""); code != 403 {
		t.Errorf("autoexpire by uid 4242: %d, want 403", code)
	}
}

// peercredClient copies the test binary into d, where other uids can run
// it, and returns a function that sends a request to the unix socket
// sock as uid (gid uid) through TestPeercredHelper, and returns the
// status and the body (newlines removed).
func peercredClient(t *testing.T, d, sock string) func(uid uint32, method, path, body string) (int, string) {
	t.Helper()
	self, _ := os.Executable()
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(d, "helper")
	if err := os.WriteFile(helper, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return func(uid uint32, method, path, body string) (int, string) {
		t.Helper()
		cmd := exec.Command(helper, "-test.run=^TestPeercredHelper$")
		cmd.Env = append(os.Environ(), "GW_HELPER_SOCK="+sock, "GW_HELPER_METHOD="+method, "GW_HELPER_PATH="+path, "GW_HELPER_BODY="+body)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as %d: %v\n%s", uid, err, out)
		}
		var code int
		var rest string
		for l := range strings.SplitSeq(string(out), "\n") {
			if s, ok := strings.CutPrefix(l, "HELPER "); ok {
				fmt.Sscanf(s, "%d", &code)
				_, rest, _ = strings.Cut(s, " ")
			}
		}
		return code, rest
	}
}

// TestPeercredHelper is the helper process of TestPeercredIdentity.
func TestPeercredHelper(t *testing.T) {
	sock := os.Getenv("GW_HELPER_SOCK")
	if sock == "" {
		t.Skip("helper process only")
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	req, _ := http.NewRequest(os.Getenv("GW_HELPER_METHOD"), "http://gw"+os.Getenv("GW_HELPER_PATH"), strings.NewReader(os.Getenv("GW_HELPER_BODY")))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("HELPER %d %s\n", resp.StatusCode, strings.ReplaceAll(string(b), "\n", ""))
}
