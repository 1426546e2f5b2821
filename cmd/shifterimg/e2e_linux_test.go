// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"log"
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

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/internal/demoimage"
	"github.com/shifter-go/shifter/internal/testutil"
)

// e2e is a real shifter-gateway on a unix socket, pulling from
// go-containerregistry's registry on 127.0.0.1, driven by the real
// shifterimg binary.
type e2e struct {
	shifterimg string
	url        string // the gateway
	mungeSock  string // TCP: the munged socket
	imageDir   string
	registry   string // HOST:PORT
	dir        string
}

const (
	e2eUser = "alice"
	e2ePass = "e2e-Secret-9"
)

func startE2E(t *testing.T, tcp bool) *e2e {
	t.Helper()
	testutil.RequireTool(t, "mksquashfs")
	if _, err := os.Stat(demoimage.DefaultBusybox); err != nil {
		testutil.Unavailable(t, "test needs "+demoimage.DefaultBusybox+" (Debian busybox-static)")
	}
	gw := testutil.Binary(t, "shifter-gateway")
	e := &e2e{shifterimg: testutil.Binary(t, "shifterimg")}

	// The registry: repositories under private/ need basic auth.
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/private/") {
			if u, p, ok := r.BasicAuth(); !ok || u != e2eUser || p != e2ePass {
				w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"login needed"}]}`, http.StatusUnauthorized)
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.registry = strings.TrimPrefix(srv.URL, "http://")
	img, _, err := demoimage.Image(demoimage.DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	// The private image differs from the public one (by a label): an
	// image published publicly stays public whatever tag names it.
	privImg, err := mutate.Config(img, v1.Config{Cmd: []string{"/bin/sh"}, Labels: map[string]string{"e2e": "private"}})
	if err != nil {
		t.Fatal(err)
	}
	for repo, img := range map[string]v1.Image{"demo/busybox:latest": img, "private/busybox:latest": privImg} {
		ref, err := name.ParseReference(e.registry+"/"+repo, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: e2eUser, Password: e2ePass})); err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
	}

	// The gateway, in a directory every user can traverse (a test runs
	// shifterimg as nobody).
	dir, err := os.MkdirTemp("", "shifterimg-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	e.dir = dir
	e.imageDir = filepath.Join(dir, "images")
	var args []string
	var ready func() bool
	if tcp {
		// TCP: munge authentication with a private munged.
		e.mungeSock = startMunged(t, dir)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		e.url = "http://" + addr
		cfg := map[string]any{
			"listen":     []string{addr},
			"data_dir":   filepath.Join(dir, "data"),
			"registries": map[string]any{e.registry: map[string]any{"insecure": true}},
			"systems": map[string]any{"e2e": map[string]any{
				"image_dir": e.imageDir, "transfer": "local", "admins": []string{"root"}, "munge_socket": e.mungeSock,
			}},
		}
		b, _ := json.Marshal(cfg)
		conf := filepath.Join(dir, "gateway.json")
		if err := os.WriteFile(conf, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = []string{"--config", conf}
		ready = func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		}
	} else {
		sock := filepath.Join(dir, "gw.sock")
		e.url = "unix:" + sock
		args = []string{"--listen", e.url, "--image-dir", e.imageDir,
			"--data-dir", filepath.Join(dir, "data"), "--system", "e2e", "--insecure-registry", e.registry}
		ready = func() bool { _, err := os.Stat(sock); return err == nil }
	}
	var gwLog bytes.Buffer
	cmd := exec.Command(gw, args...)
	cmd.Stdout, cmd.Stderr = &gwLog, &gwLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", gwLog.String())
		}
	})
	for i := 0; !ready(); i++ {
		if i == 200 {
			t.Fatalf("gateway not listening on %s; log:\n%s", e.url, gwLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return e
}

// run runs shifterimg against the gateway, as uid/gid when asUID >= 0.
func (e *e2e) run(t *testing.T, home, stdin string, asUID int, args ...string) result {
	t.Helper()
	global := []string{"--gateway", e.url, "--system", "e2e"}
	if e.mungeSock != "" {
		global = append(global, "--munge-socket", e.mungeSock)
	}
	cmd := exec.Command(e.shifterimg, append(global, args...)...)
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if asUID >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(asUID), Gid: uint32(asUID)}}
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running shifterimg: %v", err)
	}
	return result{code, out.String(), errb.String()}
}

func TestEndToEnd(t *testing.T) {
	for _, transport := range []string{"unix", "tcp+munge"} {
		t.Run(transport, func(t *testing.T) {
			testEndToEnd(t, startE2E(t, transport != "unix"))
		})
	}
}

func testEndToEnd(t *testing.T, e *e2e) {
	home := t.TempDir()
	pub := e.registry + "/demo/busybox:latest"
	priv := e.registry + "/private/busybox:latest"

	// pull: READY, exit 0, the final state on the last line.
	r := e.run(t, home, "", -1, "pull", pub)
	if r.code != 0 || !strings.HasSuffix(lastLine(r.stdout), "status: READY, image ready") && !strings.Contains(lastLine(r.stdout), "status: READY") {
		t.Fatalf("pull %s = %d\nstdout: %s\nstderr: %s", pub, r.code, r.stdout, r.stderr)
	}

	// lookup: the id alone on the last line, naming the published file.
	r = e.run(t, home, "", -1, "lookup", "docker:"+pub)
	id := lastLine(r.stdout)
	if r.code != 0 || len(id) != 64 {
		t.Fatalf("lookup = %d, %q; stderr %s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(e.imageDir, id+".squashfs")); err != nil {
		t.Errorf("lookup id %s has no squashfs in the image dir: %v", id, err)
	}

	// images --json lists it with its tag.
	r = e.run(t, home, "", -1, "images", "--json")
	var list []api.Image
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
		t.Fatalf("images --json = %d, %q: %v", r.code, r.stdout, err)
	}
	if len(list) != 1 || list[0].ID != id || len(list[0].Tag) != 1 || list[0].Tag[0] != pub {
		t.Errorf("images --json = %+v, want one image %s tagged %s", list, id, pub)
	}
	r = e.run(t, home, "", -1, "images")
	if r.code != 0 || !strings.HasSuffix(strings.TrimSpace(r.stdout), " "+pub) || !strings.Contains(r.stdout, id[:10]) {
		t.Errorf("images = %d, %q", r.code, r.stdout)
	}

	tests := []struct {
		name       string
		asUID      int
		stdin      string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"unknown tag fails with the reason", -1, "", []string{"pull", e.registry + "/demo/busybox:nope"}, 1, "status: FAILURE", "FAILURE:"},
		{"private repository without login fails", -1, "", []string{"pull", priv}, 1, "status: FAILURE", "FAILURE:"},
		{"login", -1, e2eUser + "\n" + e2ePass + "\n", []string{"login", e.registry}, 0, "Stored credentials", ""},
		{"pull with the stored login, private to uid 0 and 4242", -1, "", []string{"pull", "-u", "4242", priv}, 0, "status: READY", ""},
		{"the owner looks it up", -1, "", []string{"lookup", priv}, 0, "", ""},
		{"nobody cannot see the private image", 65534, "", []string{"lookup", priv}, 1, "", "not found"},
		{"nobody sees the public one", 65534, "", []string{"lookup", pub}, 0, id, ""},
		{"nobody's images omit the private one", 65534, "", []string{"images"}, 0, "/demo/busybox:latest\n", ""},
		{"nobody cannot ride on the owner's login", 65534, "", []string{"pull", priv}, 1, "status: FAILURE", "FAILURE:"},
		{"nobody may not expire", 65534, "", []string{"expire", pub}, 1, "", "HTTP 403"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := home
			if tc.asUID >= 0 {
				testutil.RequireRoot(t)
				h = filepath.Join(e.dir, "home-nobody")
				os.MkdirAll(h, 0o755)
				os.Chown(h, tc.asUID, tc.asUID)
			}
			r := e.run(t, h, tc.stdin, tc.asUID, tc.args...)
			if r.code != tc.wantCode || !strings.Contains(r.stdout, tc.wantStdout) || !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("shifterimg %v = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
					tc.args, r.code, r.stdout, r.stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
			if tc.asUID >= 0 && strings.Contains(r.stdout, "/private/") && r.code == 0 {
				t.Errorf("nobody saw the private image: %s", r.stdout)
			}
			if strings.Contains(r.stdout+r.stderr, e2ePass) {
				t.Errorf("output carries the registry password")
			}
		})
	}
}

// startMunged runs a private munged with a socket in dir (which every
// user can traverse, so that other uids can make credentials).
func startMunged(t *testing.T, dir string) string {
	t.Helper()
	munged := testutil.RequireTool(t, "munged")
	testutil.RequireTool(t, "munge")
	mdir := filepath.Join(dir, "munge")
	if err := os.Mkdir(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 1024)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mdir, "key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(mdir, "munge.sock")
	cmd := exec.Command(munged, "-F", "--force", "--socket="+sock, "--key-file="+filepath.Join(mdir, "key"),
		"--pid-file="+filepath.Join(mdir, "pid"), "--log-file="+filepath.Join(mdir, "log"), "--seed-file="+filepath.Join(mdir, "seed"))
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
	log, _ := os.ReadFile(filepath.Join(mdir, "log"))
	t.Fatalf("munged did not create %s; log:\n%s", sock, log)
	return ""
}
