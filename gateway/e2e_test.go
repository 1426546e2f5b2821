// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
)

// testRegistry is go-containerregistry's registry on 127.0.0.1 whose blob
// downloads can be held.
type testRegistry struct {
	host      string
	held      atomic.Bool
	release   chan struct{}
	blobGets  atomic.Int64
	blockedCh chan struct{} // receives when a blob request is held
}

func newTestRegistry(t testing.TB) *testRegistry {
	t.Helper()
	tr := &testRegistry{release: make(chan struct{}), blockedCh: make(chan struct{}, 64)}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Repositories under private/ need basic auth "puller:<secret>".
		if strings.HasPrefix(r.URL.Path, "/v2/private/") {
			if u, pw, ok := r.BasicAuth(); !ok || u != "puller" || pw != secret {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			tr.blobGets.Add(1)
			if tr.held.Load() {
				select {
				case tr.blockedCh <- struct{}{}:
				default:
				}
				select {
				case <-tr.release:
				case <-r.Context().Done():
					return
				}
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	tr.host = strings.TrimPrefix(s.URL, "http://")
	return tr
}

// layer makes a gzip layer holding files (path -> content).
func layer(t testing.TB, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)})
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// push uploads an image with the given layers and env; returns its id.
func (tr *testRegistry) push(t testing.TB, repoTag string, env []string, layers ...v1.Layer) string {
	t.Helper()
	img, err := random.Image(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = env
	cf.Config.Entrypoint = []string{"/bin/sh", "-c"}
	cf.Config.WorkingDir = "/work"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(tr.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "puller", Password: secret})); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.Hex
}

// unsquashfsList lists the paths in a squashfs with Debian's unsquashfs.
func unsquashfsList(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("unsquashfs", "-lc", "-d", "", path).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -lc %s: %v\n%s", path, err, out)
	}
	var files []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		files = append(files, strings.TrimPrefix(l, "/"))
	}
	slices.Sort(files)
	return files
}

// TestEndToEndRealPuller pulls from a real registry with gateway/pull and
// checks the squashfs with unsquashfs.
func TestEndToEndRealPuller(t *testing.T) {
	testutil.RequireTool(t, "mksquashfs")
	testutil.RequireTool(t, "unsquashfs")
	reg := newTestRegistry(t)
	id := reg.push(t, "test/app:v1", []string{"PATH=/bin", "A=1"},
		layer(t, map[string]string{"etc/os-release": "NAME=test\n", "bin/app": "#!/bin/sh\n"}),
		layer(t, map[string]string{"data/x": "xxx"}))
	c := testConfig(t)
	c.Registries = map[string]Registry{reg.host: {Insecure: true}}
	c.Retries = 0
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	pullLogs := &syncBuffer{}
	p, err := NewPuller(c, slog.New(slog.NewJSONHandler(pullLogs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	tg := startGW(t, c, p)
	// Concurrent pulls of one tag: one download of each blob.
	var wg sync.WaitGroup
	for _, u := range []string{alice, bob, carol} {
		wg.Add(1)
		go func() { defer wg.Done(); tg.pull(u, reg.host+"/test/app:v1", nil) }()
	}
	wg.Wait()
	im := tg.wait(alice, reg.host+"/test/app:v1")
	if im.Status != api.StateReady || im.ID != id {
		t.Fatalf("pull: %s %q id %s want %s", im.Status, im.StatusMessage, im.ID, id)
	}
	if n := reg.blobGets.Load(); n > 3 { // config + 2 layers
		t.Errorf("%d blob downloads for one image with 3 blobs", n)
	}
	if !slices.Equal(im.Env, []string{"PATH=/bin", "A=1"}) || im.Workdir != "/work" || !slices.Equal(im.Entry, []string{"/bin/sh", "-c"}) {
		t.Errorf("record: env %v workdir %q entry %v", im.Env, im.Workdir, im.Entry)
	}
	dir := c.Systems["sys"].ImageDir
	m, err := imagestore.Load(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	sq, _ := imagestore.Paths(dir, id)
	got := unsquashfsList(t, sq)
	want := []string{"bin/app", "data/x", "etc/os-release"} // -lc lists files only
	if !slices.Equal(got, want) {
		t.Errorf("squashfs holds %q, want %q", got, want)
	}
	st, _ := os.Stat(sq)
	if st.Size() != m.Size {
		t.Errorf("size %d, metadata %d", st.Size(), m.Size)
	}
	mtime := st.ModTime()
	// The same image by digest: no new conversion, both names on one image.
	byDigest := reg.host + "/test/app@sha256:" + id
	if im := tg.pullWait(alice, byDigest, nil); im.Status != api.StateReady || im.ID != id ||
		!slices.Contains(im.Tag, byDigest) || !slices.Contains(im.Tag, reg.host+"/test/app:v1") {
		t.Errorf("pull by digest: %s %q %v", im.Status, im.StatusMessage, im.Tag)
	}
	if st, _ := os.Stat(sq); !st.ModTime().Equal(mtime) {
		t.Error("pull by digest rewrote the squashfs")
	}
	if im := tg.pullWait(alice, reg.host+"/test/nosuch:v1", nil); im.Status != api.StateFailure {
		t.Errorf("pull of a missing repository: %s", im.Status)
	}

	// A private repository: refused without credentials, private to the
	// puller with them; the password is nowhere on disk or in the logs.
	privID := reg.push(t, "private/app:v1", []string{"PATH=/bin"}, layer(t, map[string]string{"secret/file": "s"}))
	privTag := reg.host + "/private/app:v1"
	if im := tg.pullWait(bob, privTag, nil); im.Status != api.StateFailure || !strings.Contains(im.StatusMessage, "denied") {
		t.Errorf("private pull without credentials: %s %q", im.Status, im.StatusMessage)
	}
	creds := &api.PullRequest{AuthorizedLocations: map[string]string{reg.host: "puller:" + secret}}
	if im := tg.pullWait(alice, privTag, creds); im.Status != api.StateReady || im.ID != privID || !slices.Equal(im.UserACL, []uint32{1001}) {
		t.Fatalf("private pull with credentials: %+v", im)
	}
	if _, code := tg.lookup(bob, privTag); code != 404 {
		t.Errorf("bob's lookup of alice's private image: %d", code)
	}
	if strings.Contains(tg.logs.String(), secret) || strings.Contains(pullLogs.String(), secret) {
		t.Error("the registry password is in the gateway's logs")
	}
	if pullLogs.String() == "" {
		t.Error("no debug logs from the puller to check")
	}
	tg.close()
	filepath.WalkDir(c.DataDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(secret)) {
				t.Errorf("the registry password is stored in %s", path)
			}
		}
		return nil
	})
}

// gatewayProc is shifter-gateway running as a subprocess.
type gatewayProc struct {
	cmd    *exec.Cmd
	sock   string
	client *http.Client
	out    *syncBuffer
}

func startGatewayProc(t *testing.T, bin, config, sock string) *gatewayProc {
	t.Helper()
	gp := &gatewayProc{sock: sock, out: &syncBuffer{}}
	gp.cmd = exec.Command(bin, "--config", config, "--log-level", "debug")
	gp.cmd.Stdout, gp.cmd.Stderr = gp.out, gp.out
	if err := gp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if gp.cmd.ProcessState == nil {
			gp.cmd.Process.Kill()
			gp.cmd.Wait()
		}
	})
	gp.client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := gp.client.Get("http://gw/")
		if err == nil {
			resp.Body.Close()
			return gp
		}
		if time.Now().After(deadline) || gp.cmd.ProcessState != nil {
			t.Fatalf("gateway did not start: %v\n%s", err, gp.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (gp *gatewayProc) kill9(t *testing.T) {
	t.Helper()
	gp.cmd.Process.Signal(syscall.SIGKILL)
	gp.cmd.Wait()
}

func (gp *gatewayProc) call(t *testing.T, method, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://gw"+path, nil)
	resp, err := gp.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v: %s", path, err, b)
		}
	}
	return resp.StatusCode
}

func tempNames(t *testing.T, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestKill9MidPull runs shifter-gateway as a subprocess, kills it with
// SIGKILL while it downloads, restarts it, and checks that the job
// resumes, that nothing READY points at a missing file and that no
// temporary file is left.
func TestKill9MidPull(t *testing.T) {
	testutil.RequireTool(t, "mksquashfs")
	testutil.RequireTool(t, "unsquashfs")
	bin := testutil.Binary(t, "shifter-gateway")
	reg := newTestRegistry(t)
	big := strings.Repeat("0123456789abcdef", 1<<14) // 256 KiB
	id := reg.push(t, "test/slow:v1", []string{"PATH=/bin"},
		layer(t, map[string]string{"a/big": big}), layer(t, map[string]string{"b/small": "s"}))
	dir := t.TempDir()
	imageDir := filepath.Join(dir, "images")
	sock := filepath.Join(dir, "gw.sock")
	cfg := fmt.Sprintf(`{
  "listen": [%q],
  "data_dir": %q,
  "workers": 2,
  "registries": {%q: {"insecure": true}},
  "retries": 1,
  "systems": {"sys": {"image_dir": %q, "admins": ["root"]}}
}`, "unix:"+sock, filepath.Join(dir, "data"), reg.host, imageDir)
	cfgPath := filepath.Join(dir, "gateway.json")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := reg.host + "/test/slow:v1"

	reg.held.Store(true)
	gp := startGatewayProc(t, bin, cfgPath, sock)
	var im api.Image
	if code := gp.call(t, "POST", "/api/pull/sys/docker/"+tag+"/", &im); code != 200 {
		t.Fatalf("pull: %d\n%s", code, gp.out.String())
	}
	select {
	case <-reg.blockedCh:
	case <-time.After(20 * time.Second):
		t.Fatalf("the gateway never downloaded a blob\n%s", gp.out.String())
	}
	gp.call(t, "GET", "/api/pull/sys/docker/"+tag+"/", &im)
	if im.Status != api.StatePulling {
		t.Errorf("while downloading: %s %q", im.Status, im.StatusMessage)
	}
	// A stray temporary file as a publish in progress would leave.
	stray, _ := imagestore.CreateTemp(imageDir)
	stray.Close()
	gp.kill9(t)
	if sq, mp := imagestore.Paths(imageDir, id); fileExists(sq) || fileExists(mp) {
		t.Fatal("files published before the pull finished")
	}

	reg.held.Store(false)
	close(reg.release)
	gp = startGatewayProc(t, bin, cfgPath, sock)
	deadline := time.Now().Add(60 * time.Second)
	for {
		gp.call(t, "GET", "/api/pull/sys/docker/"+tag+"/", &im)
		if terminal(im.Status) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if im.Status != api.StateReady || im.ID != id {
		t.Fatalf("after restart: %s %q\n%s", im.Status, im.StatusMessage, gp.out.String())
	}
	if names := tempNames(t, imageDir); len(names) != 0 {
		t.Errorf("temporary files left: %v", names)
	}
	// Every READY image has its complete files.
	var l api.List
	if code := gp.call(t, "GET", "/api/list/sys/", &l); code != 200 || len(l.List) != 1 {
		t.Fatalf("list: %d %+v", code, l)
	}
	for _, r := range l.List {
		m, err := imagestore.Load(imageDir, r.ID)
		if err != nil {
			t.Errorf("READY image %s: %v", r.ID, err)
			continue
		}
		sq, _ := imagestore.Paths(imageDir, r.ID)
		if got := unsquashfsList(t, sq); !slices.Contains(got, "a/big") || m.Size == 0 {
			t.Errorf("squashfs of %s: %v", r.ID, got)
		}
	}
	// kill -9 again after READY and restart: still consistent.
	gp.kill9(t)
	gp = startGatewayProc(t, bin, cfgPath, sock)
	var found api.Image
	if code := gp.call(t, "GET", "/api/lookup/sys/docker/"+tag+"/", &found); code != 200 || found.ID != id {
		t.Errorf("lookup after second kill: %d %+v", code, found)
	}
	gp.cmd.Process.Signal(syscall.SIGTERM)
	if err := gp.cmd.Wait(); err != nil {
		t.Errorf("gateway exit after SIGTERM: %v\n%s", err, gp.out.String())
	}
}

// checkReadyInvariant opens the database of a stopped gateway and checks
// that every READY image has its complete files.
func checkReadyInvariant(t *testing.T, dataDir, imageDir string) int {
	t.Helper()
	s, err := OpenStore(filepath.Join(dataDir, "db"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var recs []*imageRecord
	if err := s.view(func(tx tx) (err error) { recs, err = tx.images("sys"); return err }); err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, r := range recs {
		if r.Status != api.StateReady {
			continue
		}
		ready++
		m, err := imagestore.Load(imageDir, r.ID)
		if err != nil {
			t.Errorf("READY record %s without its metadata: %v", r.ID, err)
			continue
		}
		sq, _ := imagestore.Paths(imageDir, r.ID)
		if st, err := os.Stat(sq); err != nil || st.Size() != m.Size || m.Size != r.Size {
			t.Errorf("READY record %s: squashfs %v, metadata size %d, record size %d", r.ID, err, m.Size, r.Size)
		}
	}
	return ready
}

// TestKill9RandomPoints kills shifter-gateway at random moments of
// several pulls (download, conversion, publish) and checks after each
// kill that no READY record points at a missing or partial file, then
// that every pull completes after the last restart.
func TestKill9RandomPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess kill loop")
	}
	testutil.RequireTool(t, "mksquashfs")
	bin := testutil.Binary(t, "shifter-gateway")
	reg := newTestRegistry(t)
	const trials = 6
	var tags, ids []string
	for i := range trials {
		files := map[string]string{}
		for f := range 40 {
			files[fmt.Sprintf("d%d/f%d", f%5, f)] = strings.Repeat(fmt.Sprintf("%d-%d.", i, f), 4000+i*500)
		}
		ids = append(ids, reg.push(t, fmt.Sprintf("test/k%d:v1", i), nil, layer(t, files), layer(t, map[string]string{"x": "y"})))
		tags = append(tags, fmt.Sprintf("%s/test/k%d:v1", reg.host, i))
	}
	dir := t.TempDir()
	imageDir, dataDir := filepath.Join(dir, "images"), filepath.Join(dir, "data")
	sock := filepath.Join(dir, "gw.sock")
	cfg := fmt.Sprintf(`{"listen": [%q], "data_dir": %q, "workers": 2, "max_attempts": 20,
  "registries": {%q: {"insecure": true}}, "systems": {"sys": {"image_dir": %q}}}`,
		"unix:"+sock, dataDir, reg.host, imageDir)
	cfgPath := filepath.Join(dir, "gateway.json")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	delays := []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond, 60 * time.Millisecond, 120 * time.Millisecond, 250 * time.Millisecond}
	for i := range trials {
		gp := startGatewayProc(t, bin, cfgPath, sock)
		if code := gp.call(t, "POST", "/api/pull/sys/docker/"+tags[i]+"/", nil); code != 200 {
			t.Fatalf("pull %s: %d", tags[i], code)
		}
		time.Sleep(delays[i%len(delays)])
		gp.kill9(t)
		checkReadyInvariant(t, dataDir, imageDir)
	}
	gp := startGatewayProc(t, bin, cfgPath, sock)
	for i, tag := range tags {
		var im api.Image
		deadline := time.Now().Add(60 * time.Second)
		for !terminal(im.Status) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			gp.call(t, "GET", "/api/pull/sys/docker/"+tag+"/", &im)
		}
		if im.Status != api.StateReady || im.ID != ids[i] {
			t.Errorf("%s after the kills: %s %q", tag, im.Status, im.StatusMessage)
		}
	}
	gp.cmd.Process.Signal(syscall.SIGTERM)
	gp.cmd.Wait()
	if n := checkReadyInvariant(t, dataDir, imageDir); n != trials {
		t.Errorf("%d READY images, want %d", n, trials)
	}
	if names := tempNames(t, imageDir); len(names) != 0 {
		t.Errorf("temporary files left: %v", names)
	}
}
