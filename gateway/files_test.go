// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/nodecache"
	"github.com/shifter-go/shifter/squashreader"
)

// get sends a request for an image file as user with extra headers.
func (tg *testGW) get(method, path, user string, hdr map[string]string) (*http.Response, []byte) {
	tg.t.Helper()
	req, err := http.NewRequest(method, tg.srv.URL+path, nil)
	if err != nil {
		tg.t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tg.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tg.t.Fatal(err)
	}
	return resp, b
}

// TestImageFileRanges: GET and HEAD of an image file and its chunk list
// with http.ServeContent's Range, ETag and conditional handling.
func TestImageFileRanges(t *testing.T) {
	data := randomData(20000, 9)
	p := newFakePuller()
	id := p.add("pub:1", fakeImage{data: data})
	c := testConfig(t)
	c.ChunkSize = 4096
	tg := startGW(t, c, p)
	if im := tg.pullWait(bob, "pub:1", nil); im.Status != api.StateReady {
		t.Fatalf("pull: %s %q", im.Status, im.StatusMessage)
	}
	path := "/images/sys/" + id + ".squashfs"
	etag := `"` + id + `"`
	n := len(data)
	for _, tc := range []struct {
		name   string
		method string
		hdr    map[string]string
		code   int
		body   []byte // nil: not checked
		crange string
	}{
		{"whole file", "GET", nil, 200, data, ""},
		{"HEAD", "HEAD", nil, 200, []byte{}, ""},
		{"range in the middle", "GET", map[string]string{"Range": "bytes=5000-9095"}, 206, data[5000:9096], fmt.Sprintf("bytes 5000-9095/%d", n)},
		{"range at the end", "GET", map[string]string{"Range": "bytes=19990-"}, 206, data[19990:], fmt.Sprintf("bytes 19990-19999/%d", n)},
		{"range past the end, clipped", "GET", map[string]string{"Range": "bytes=19000-30000"}, 206, data[19000:], fmt.Sprintf("bytes 19000-19999/%d", n)},
		{"suffix range", "GET", map[string]string{"Range": "bytes=-100"}, 206, data[n-100:], fmt.Sprintf("bytes 19900-19999/%d", n)},
		{"range beyond the file", "GET", map[string]string{"Range": "bytes=30000-40000"}, 416, nil, fmt.Sprintf("bytes */%d", n)},
		{"invalid range", "GET", map[string]string{"Range": "bytes=abc"}, 416, nil, ""},
		{"If-None-Match the id", "GET", map[string]string{"If-None-Match": etag}, 304, []byte{}, ""},
		{"If-None-Match another", "GET", map[string]string{"If-None-Match": `"` + fakeID("x") + `"`}, 200, data, ""},
		{"If-Range the id", "GET", map[string]string{"Range": "bytes=0-9", "If-Range": etag}, 206, data[:10], fmt.Sprintf("bytes 0-9/%d", n)},
		{"If-Range another: whole file", "GET", map[string]string{"Range": "bytes=0-9", "If-Range": `"other"`}, 200, data, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := tg.get(tc.method, path, anon, tc.hdr)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.code, b)
			}
			if tc.body != nil && !bytes.Equal(b, tc.body) {
				t.Errorf("body: %d bytes, want %d", len(b), len(tc.body))
			}
			if got := resp.Header.Get("Content-Range"); got != tc.crange {
				t.Errorf("Content-Range %q, want %q", got, tc.crange)
			}
			if tc.code == 200 || tc.code == 206 || tc.code == 304 {
				if resp.Header.Get("ETag") != etag || resp.Header.Get("Cache-Control") != cachePublic {
					t.Errorf("ETag %q, Cache-Control %q", resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
				}
			}
			if tc.code == 200 && (resp.Header.Get("Accept-Ranges") != "bytes" || resp.ContentLength != int64(n)) {
				t.Errorf("Accept-Ranges %q, Content-Length %d", resp.Header.Get("Accept-Ranges"), resp.ContentLength)
			}
		})
	}
	// Multiple ranges: multipart/byteranges, as ServeContent answers.
	t.Run("multiple ranges", func(t *testing.T) {
		resp, b := tg.get("GET", path, anon, map[string]string{"Range": "bytes=0-9,15000-15099"})
		mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if resp.StatusCode != 206 || err != nil || mt != "multipart/byteranges" {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		mr := multipart.NewReader(bytes.NewReader(b), params["boundary"])
		want := [][]byte{data[0:10], data[15000:15100]}
		for i := 0; ; i++ {
			part, err := mr.NextPart()
			if err == io.EOF {
				if i != len(want) {
					t.Errorf("%d parts, want %d", i, len(want))
				}
				break
			}
			if err != nil || i >= len(want) {
				t.Fatalf("part %d: %v", i, err)
			}
			got, _ := io.ReadAll(part)
			if !bytes.Equal(got, want[i]) {
				t.Errorf("part %d (%s): wrong bytes", i, part.Header.Get("Content-Range"))
			}
		}
	})
	// The chunk list: its own sha256 as ETag, ranges too.
	t.Run("chunk list", func(t *testing.T) {
		resp, b := tg.get("GET", "/images/sys/"+id+".chunks", anon, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		cl, err := imagestore.ParseChunkList(b)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := imagestore.ComputeChunkList(bytes.NewReader(data), int64(n), 4096, 1)
		if cl.Digest() != want.Digest() || resp.Header.Get("ETag") != `"`+cl.Digest()+`"` ||
			resp.Header.Get("Cache-Control") != cachePublic || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("chunk list: digest %s (want %s), headers %v", cl.Digest(), want.Digest(), resp.Header)
		}
		resp, rb := tg.get("GET", "/images/sys/"+id+".chunks", anon, map[string]string{"Range": "bytes=0-13"})
		if resp.StatusCode != 206 || string(rb) != "shifter-chunks" {
			t.Errorf("chunk list range: %d %q", resp.StatusCode, rb)
		}
		resp, _ = tg.get("GET", "/images/sys/"+id+".chunks", anon, map[string]string{"If-None-Match": `"` + cl.Digest() + `"`})
		if resp.StatusCode != 304 {
			t.Errorf("chunk list If-None-Match: %d", resp.StatusCode)
		}
	})
	// Only GET and HEAD.
	if code := tg.do("POST", path, anon, nil, nil); code != 405 {
		t.Errorf("POST: %d, want 405", code)
	}
}

// TestImageFileACL: a private image's files are served to its ACL (and
// root) only; to anyone else they are the same 404 as a missing image.
func TestImageFileACL(t *testing.T) {
	p := newFakePuller()
	privID := p.add("priv:1", fakeImage{data: randomData(10000, 5)})
	pubID := p.add("pub:1", fakeImage{})
	c := testConfig(t)
	tg := startGW(t, c, p)
	if im := tg.pullWait(alice, "priv:1", &api.PullRequest{AllowedUIDs: "1004", AllowedGIDs: "5000"}); im.Status != api.StateReady {
		t.Fatalf("private pull: %s %q", im.Status, im.StatusMessage)
	}
	tg.pullWait(bob, "pub:1", nil)
	missing := fakeID("missing")
	const dave, root = "dave:1004:1004", "root:0:0"
	for _, tc := range []struct {
		user string
		id   string
		code int
	}{
		{alice, privID, 200},
		{dave, privID, 200},  // on the user ACL
		{carol, privID, 200}, // group 5000
		{root, privID, 200},
		{bob, privID, 404},
		{anon, privID, 404},
		{anon, pubID, 200},
		{bob, missing, 404},
	} {
		for _, ext := range []string{".squashfs", ".chunks"} {
			resp, b := tg.get("GET", "/images/sys/"+tc.id+ext, tc.user, nil)
			if resp.StatusCode != tc.code {
				t.Errorf("%s%s as %q: %d, want %d", tc.id[:12], ext, tc.user, resp.StatusCode, tc.code)
				continue
			}
			if tc.code == 404 {
				// The same answer as a missing image, but for the name.
				_, mb := tg.get("GET", "/images/sys/"+missing+ext, tc.user, nil)
				if string(bytes.ReplaceAll(b, []byte(tc.id), []byte(missing))) != string(mb) || resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("%s as %q: 404 differs from a missing image's: %s vs %s", ext, tc.user, b, mb)
				}
				continue
			}
			want := cachePublic
			if tc.id == privID {
				want = cachePrivate
			}
			if cc := resp.Header.Get("Cache-Control"); cc != want {
				t.Errorf("%s%s: Cache-Control %q, want %q", tc.id[:12], ext, cc, want)
			}
		}
	}
	// An image of one system is not a file of another.
	if resp, _ := tg.get("GET", "/images/other/"+pubID+".squashfs", anon, nil); resp.StatusCode != 404 {
		t.Errorf("image of sys under /images/other/: %d", resp.StatusCode)
	}
	if resp, _ := tg.get("GET", "/images/nosuch/"+pubID+".squashfs", anon, nil); resp.StatusCode != 404 {
		t.Errorf("unknown system: %d", resp.StatusCode)
	}
	// An expired image is gone at once.
	if code := tg.do("POST", "/api/expire/sys/docker/pub:1/", admin, nil, nil); code != 200 {
		t.Fatalf("expire: %d", code)
	}
	if resp, _ := tg.get("GET", "/images/sys/"+pubID+".squashfs", anon, nil); resp.StatusCode != 404 {
		t.Errorf("expired image: %d", resp.StatusCode)
	}
}

// rawGet sends path unchanged (no client-side cleaning) and returns the
// status and body.
func rawGet(t *testing.T, addr, path string) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestImageFilePathAttacks: only <64 hex>.squashfs and .chunks of READY
// images are files; dot segments, encoded bytes, other names and a
// symbolic link or FIFO planted in the image directory are refused.
func TestImageFilePathAttacks(t *testing.T) {
	p := newFakePuller()
	id := p.add("pub:1", fakeImage{})
	id2 := p.add("pub:2", fakeImage{})
	c := testConfig(t)
	tg := startGW(t, c, p)
	tg.pullWait(bob, "pub:1", nil)
	tg.pullWait(bob, "pub:2", nil)
	dir := c.Systems["sys"].ImageDir
	const secretText = "root:$6$secret-hash:19000:0:99999:7:::"
	secretFile := filepath.Join(t.TempDir(), "shadow")
	// As long as the image file, so that its size gives nothing away.
	secret := []byte(secretText + strings.Repeat(":", len("squashfs of "+id2)-len(secretText)))
	os.WriteFile(secretFile, secret, 0o600)
	// <id2>.squashfs a symbolic link to a secret file; <id2>.chunks a
	// symbolic link to /etc/shadow; <id>.chunks a FIFO (must not hang).
	sq2, _ := imagestore.Paths(dir, id2)
	os.Remove(sq2)
	if err := os.Symlink(secretFile, sq2); err != nil {
		t.Fatal(err)
	}
	os.Remove(imagestore.ChunksPath(dir, id2))
	os.Symlink("/etc/shadow", imagestore.ChunksPath(dir, id2))
	os.Remove(imagestore.ChunksPath(dir, id))
	if err := syscall.Mkfifo(imagestore.ChunksPath(dir, id), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := tg.srv.Listener.Addr().String()
	for _, path := range []string{
		"/images/sys/../../../../etc/shadow",
		"/images/sys/%2e%2e/%2e%2e/%2e%2e/etc/shadow",
		"/images/sys/..%2f..%2f..%2fetc%2fshadow",
		"/images/sys/%2e%2e%2f" + id + ".squashfs",
		"/images/sys/./" + id + ".squashfs",
		"/images/sys//" + id + ".squashfs",
		"/images/sys/" + id + ".squashfs/",
		"/images/sys/" + id + ".squashfs/..",
		"/images/sys/" + id + ".json",
		"/images/sys/" + id + ".trace",
		"/images/sys/" + id,
		"/images/sys/" + strings.ToUpper(id) + ".squashfs",
		"/images/sys/" + id[:63] + ".squashfs",
		"/images/sys/" + id + "0.squashfs",
		"/images/sys/.tmp-0123456789abcdef.squashfs",
		"/images/sys/" + id + ".squashfs%00",
		"/images/sys/",
		"/images/",
		"/images/sys/" + id2 + ".squashfs", // symlink to a secret
		"/images/sys/" + id2 + ".chunks",   // symlink to /etc/shadow
		"/images/sys/" + id + ".chunks",    // FIFO
	} {
		code, b := rawGet(t, addr, path)
		if code != 404 {
			t.Errorf("GET %s: %d, want 404 (%.200s)", path, code, b)
		}
		if bytes.Contains(b, []byte("secret-hash")) || bytes.Contains(b, []byte("root:")) {
			t.Errorf("GET %s: secret content served", path)
		}
	}
	if !strings.Contains(tg.logs.String(), "image file not served") {
		t.Error("a planted symbolic link or FIFO is not logged")
	}
	// The genuine file is still served.
	if code, b := rawGet(t, addr, "/images/sys/"+id+".squashfs"); code != 200 || string(b) != "squashfs of "+id {
		t.Errorf("genuine image: %d %q", code, b)
	}
}

// TestImageFilePeercred: over the unix socket the caller is its
// SO_PEERCRED uid: a private image's file goes to its ACL only.
func TestImageFilePeercred(t *testing.T) {
	testutil.RequireRoot(t)
	p := newFakePuller()
	id := p.add("priv:1", fakeImage{})
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
	sock := filepath.Join(d, "gw.sock")
	l, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, []net.Listener{l}) }()
	t.Cleanup(func() { cancel(); <-done })
	as := peercredClient(t, d, sock)
	if code, out := as(4242, "POST", "/api/pull/sys/docker/priv:1/", `{"allowed_uids":"4244"}`); code != 200 {
		t.Fatalf("private pull as 4242: %d %s", code, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var im api.Image
		_, out := as(4242, "GET", "/api/pull/sys/docker/priv:1/", "")
		if err := json.Unmarshal([]byte(out), &im); err == nil && terminal(im.Status) {
			if im.Status != api.StateReady {
				t.Fatalf("pull: %+v", im)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pull did not finish")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, tc := range []struct {
		uid  uint32
		code int
	}{{4242, 200}, {4244, 200}, {4343, 404}} {
		code, out := as(tc.uid, "GET", "/images/sys/"+id+".squashfs", "")
		if code != tc.code || (code == 200 && out != "squashfs of "+id) {
			t.Errorf("image file as uid %d: %d %.100q, want %d", tc.uid, code, out, tc.code)
		}
		if code, _ := as(tc.uid, "GET", "/images/sys/"+id+".chunks", ""); code != tc.code {
			t.Errorf("chunk list as uid %d: %d, want %d", tc.uid, code, tc.code)
		}
	}
}

// TestImageFileNodeCache is the node's path end to end: nodecache's
// HTTP source against the gateway reads a real squashfs image through a
// node cache, verified against the chunk list the gateway serves,
// byte-identical to the published file, and squashreader reads the same
// tree from it as from the file; a private image is refused to another
// user and served to its ACL.
func TestImageFileNodeCache(t *testing.T) {
	src := t.TempDir()
	tree := sqtest.MakeFeatureTree(t, src, sqtest.TreeOptions{Small: true})
	img := sqtest.Build(t, tree.Dir, "-comp", "gzip", "-b", "4K")
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	p := newFakePuller()
	id := p.add("real:1", fakeImage{data: data})
	privID := p.add("realpriv:1", fakeImage{data: append(bytes.Clone(data), make([]byte, 4096)...)})
	c := testConfig(t)
	c.ChunkSize = 4096 // many chunks even for a small image
	tg := startGW(t, c, p)
	if im := tg.pullWait(bob, "real:1", nil); im.Status != api.StateReady {
		t.Fatalf("pull: %s %q", im.Status, im.StatusMessage)
	}
	if im := tg.pullWait(alice, "realpriv:1", &api.PullRequest{AllowedUIDs: "1001"}); im.Status != api.StateReady {
		t.Fatalf("private pull: %s %q", im.Status, im.StatusMessage)
	}

	cache, err := nodecache.Open(filepath.Join(t.TempDir(), "cache"), nodecache.Options{Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	ctx := context.Background()
	hs, err := nodecache.NewHTTPSource(tg.srv.URL+"/images/sys", id, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := hs.ChunkList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Count() < 2 || cl.Size != int64(len(data)) {
		t.Fatalf("chunk list: %d chunks of %d bytes for %d bytes", cl.Count(), cl.ChunkSize, cl.Size)
	}
	im, err := cache.Image(id, hs, cl)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, im.Size())
	if n, err := im.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
		t.Fatalf("read through the cache: %d of %d bytes: %v", n, len(got), err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes read through the node cache differ from the image file")
	}
	st := im.Stats()
	if st.VerifyFailures != 0 || st.SourceBytes != int64(len(data)) {
		t.Errorf("cold read: %+v", st)
	}
	// squashreader over the cache sees the tree of the file.
	viaHTTP, err := squashreader.Open(im, im.Size(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer viaHTTP.Close()
	fromFile, err := squashreader.OpenFile(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fromFile.Close()
	if a, b := walkTree(t, fromFile), walkTree(t, viaHTTP); a != b {
		t.Errorf("tree through HTTP differs from the file's:\n%s\nvs\n%s", b, a)
	}
	// A warm read reads nothing more from the gateway.
	before := im.Stats().SourceBytes
	im.ReadAt(got, 0)
	if after := im.Stats().SourceBytes; after != before {
		t.Errorf("warm read fetched %d bytes", after-before)
	}

	// The private image: refused to bob and to an anonymous node,
	// served to alice.
	for _, tc := range []struct {
		user string
		ok   bool
	}{{bob, false}, {anon, false}, {alice, true}} {
		ps, _ := nodecache.NewHTTPSource(tg.srv.URL+"/images/sys", privID, nil)
		ps.Attempts = 1
		if tc.user != "" {
			ps.Header = http.Header{"X-Test-User": {tc.user}}
		}
		pcl, err := ps.ChunkList(ctx)
		buf := make([]byte, 100)
		_, rerr := ps.ReadAt(buf, 0)
		if tc.ok && (err != nil || rerr != nil || pcl.Size != int64(len(data)+4096)) {
			t.Errorf("private image as %q: %v / %v", tc.user, err, rerr)
		}
		if !tc.ok && (err == nil || rerr == nil || !strings.Contains(err.Error(), "404")) {
			t.Errorf("private image served to %q (chunk list err %v, read err %v)", tc.user, err, rerr)
		}
	}
}

// walkTree lists every entry of a squashfs with its mode, size and,
// for regular files and symbolic links, content.
func walkTree(t *testing.T, r *squashreader.Reader) string {
	t.Helper()
	var sb strings.Builder
	err := fs.WalkDir(r.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&sb, "%s %v %d", p, info.Mode(), info.Size())
		if info.Mode().IsRegular() {
			b, err := fs.ReadFile(r.FS(), p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, " %x", sha256.Sum256(b))
		}
		sb.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}
