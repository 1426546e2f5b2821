// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDecodeAPIPath(t *testing.T) {
	cases := []struct {
		raw, want string
		ok        bool
	}{
		{"/api/pull/sys/docker/ubuntu%3A22.04/", "/api/pull/sys/docker/ubuntu:22.04/", true},
		{"/api/lookup/sys/docker/library%2Fubuntu%3A22.04/", "/api/lookup/sys/docker/library/ubuntu:22.04/", true},
		{"/api/lookup/sys/docker/ubuntu%40sha256%3Aab/", "/api/lookup/sys/docker/ubuntu@sha256:ab/", true},
		{"/api/lookup/sys/docker/ubuntu:22.04/", "/api/lookup/sys/docker/ubuntu:22.04/", true},
		{"/api/lookup/sys/%64ocker/x/", "/api/lookup/sys/docker/x/", true},
		{"/api/lookup/sys/docker/a%2F..%2Fb/", "", false},
		{"/api/lookup/sys/docker/%2E%2E/", "", false},
		{"/api/lookup/sys/docker/%2e/", "", false},
		{"/api/lookup/sys/docker/a%2F%2Fb/", "", false},
		{"/api/lookup/sys/docker/a%2F/", "/api/lookup/sys/docker/a//", false},
		{"/api/lookup/sys/docker/a%00b/", "", false},
		{"/api/lookup/sys/docker/a%1Fb/", "", false},
		{"/api/lookup/sys/docker/a%7Fb/", "", false},
		{"/api/lookup/sys/docker/a%zzb/", "", false},
		{"/api/lookup/sys/docker/a%2/", "", false},
		{"/api/lookup/s%2Fys/docker/x/", "", false},
		{"/api/lookup/sys/dock%2Fer/x/", "", false},
		{"/api/list/sys%2F/", "", false},
		{"/a%2Fpi/lookup/sys/docker/x/y/", "", false},
		{"/api/lookup/sys/docker//x/", "", false},
		{"/api/lookup/sys/docker/../x/", "", false},
		{"/api/lookup/sys/docker/a%252Fb/", "/api/lookup/sys/docker/a%2Fb/", true}, // decoded once; ParseTag refuses the '%'
	}
	for _, c := range cases {
		got, err := decodeAPIPath(c.raw)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("decodeAPIPath(%q) = %q, %v; want %q ok=%v", c.raw, got, err, c.want, c.ok)
		}
	}
}

// shifterimgRequest sends a request as NERSC's C shifterimg (libcurl)
// sends it: the type and tag escaped with curl_easy_escape, the header
// "authentication:<munge credential>" without a space, and for pulls a
// POST with "Content-type: application/json" and the body its
// _prepare_pull_payload builds ("" without -u/-g). It returns the
// status, the headers and the body as the C client would see them.
func shifterimgRequest(t *testing.T, addr, method, path, cred, body string) (int, http.Header, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\n", method, path, addr)
	fmt.Fprintf(&b, "authentication:%s\r\n", cred)
	if method == "POST" {
		fmt.Fprintf(&b, "Content-type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// handleResponseHeader: the body counts only as JSON with this exact
	// Content-Type, and as complete only when Content-Length bytes came.
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q: shifterimg wants exactly application/json", method, path, ct)
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(data)) || len(resp.TransferEncoding) > 0 {
		t.Errorf("%s %s: Content-Length %q for %d bytes (transfer encoding %v): shifterimg would never see the body complete",
			method, path, cl, len(data), resp.TransferEncoding)
	}
	return resp.StatusCode, resp.Header, data
}

// curlEscape escapes as curl_easy_escape: everything but ALPHA, DIGIT
// and -._~ as %XX (uppercase).
func curlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// cField reads a key of a JSON object as shifterimg's parseImageJson
// does: case-insensitively.
func cField(obj map[string]any, key string) any {
	for k, v := range obj {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// TestShifterCClient pulls, looks up and lists images with requests
// built as NERSC's C shifterimg builds them, authenticated by a real
// munged over TCP.
func TestShifterCClient(t *testing.T) {
	sock := startMunged(t)
	p := newFakePuller()
	// Long environments make the list answer larger than net/http's
	// 2 KiB before it switches to chunked encoding.
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LONG=" + strings.Repeat("x", 1500)}
	ubuntu := p.add("ubuntu:22.04", fakeImage{env: env})
	app := p.add("nersc/app:1.0", fakeImage{env: env})
	c := testConfig(t)
	c.Systems["sys"].MungeSocket = sock
	c.LookupLog = true
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{Config: c, Puller: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	srv := newTCPServer(t, g.Handler())
	cred := func(uid uint32) string { return mungeCred(t, sock, uid, uid, "") }

	// shifterimg pull: POST, then re-POST every 0.5 s while in progress.
	pull := func(tag, payload string) map[string]any {
		t.Helper()
		path := "/api/pull/sys/" + curlEscape("docker") + "/" + curlEscape(tag) + "/"
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, _, body := shifterimgRequest(t, srv, "POST", path, cred(4242), payload)
			if code != 200 {
				t.Fatalf("pull %s: %d %s", path, code, body)
			}
			var rec map[string]any
			if err := json.Unmarshal(body, &rec); err != nil {
				t.Fatal(err)
			}
			st, _ := cField(rec, "status").(string)
			switch st {
			case "MISSING", "INIT", "PENDING", "PULLING", "EXAMINATION", "CONVERSION", "TRANSFER":
			default:
				return rec
			}
			if time.Now().After(deadline) {
				t.Fatalf("pull %s still %s", tag, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if rec := pull("ubuntu:22.04", ""); cField(rec, "status") != "READY" || cField(rec, "id") != ubuntu {
		t.Fatalf("pull ubuntu:22.04: %v", rec)
	}
	// -u 4343: {"allowed_uids":"4343"}; the tag holds a "/" (%2F).
	if rec := pull("nersc/app:1.0", `{"allowed_uids":"4343"}`); cField(rec, "status") != "READY" || cField(rec, "id") != app {
		t.Fatalf("pull nersc/app:1.0: %v", rec)
	}

	// shifterimg lookup prints the "id" of the answer.
	for _, c := range []struct {
		tag, id string
		uid     uint32
	}{{"ubuntu:22.04", ubuntu, 4242}, {"library/ubuntu:22.04", ubuntu, 4242}, {"nersc/app:1.0", app, 4343}} {
		path := "/api/lookup/sys/docker/" + curlEscape(c.tag) + "/"
		code, _, body := shifterimgRequest(t, srv, "GET", path, cred(c.uid), "")
		var rec map[string]any
		json.Unmarshal(body, &rec)
		if code != 200 || cField(rec, "id") != c.id {
			t.Errorf("lookup %s as %d: %d %s", path, c.uid, code, body)
		}
	}
	if code, _, _ := shifterimgRequest(t, srv, "GET", "/api/lookup/sys/docker/"+curlEscape("nersc/app:1.0")+"/", cred(4444), ""); code == 200 {
		t.Errorf("lookup of a private image by a uid not on its ACL: 200")
	}

	// shifterimg images: {"list": [...]}, one line per tag.
	code, _, body := shifterimgRequest(t, srv, "GET", "/api/list/sys/", cred(4242), "")
	if code != 200 || len(body) <= 2048 {
		t.Fatalf("list: %d, %d bytes (want > 2048 to test Content-Length)", code, len(body))
	}
	var list map[string][]map[string]any
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, rec := range list["list"] {
		for _, tg := range cField(rec, "tag").([]any) {
			tags[tg.(string)] = cField(rec, "id").(string)
		}
		if cField(rec, "status") != "READY" || cField(rec, "system") != "sys" || cField(rec, "itype") != "docker" || cField(rec, "last_pull").(float64) == 0 {
			t.Errorf("list record lacks what shifterimg images prints: %v", rec)
		}
	}
	if tags["ubuntu:22.04"] != ubuntu || tags["nersc/app:1.0"] != app {
		t.Errorf("list as 4242: tags %v", tags)
	}

	// The queue carries Shifter's {"status", "image"}.
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.mu.Unlock()
	p.add("debian:12", fakeImage{})
	shifterimgRequest(t, srv, "POST", "/api/pull/sys/docker/"+curlEscape("debian:12")+"/", cred(4242), "")
	code, _, body = shifterimgRequest(t, srv, "GET", "/api/queue/sys/", cred(4242), "")
	var q struct {
		List []map[string]any `json:"list"`
	}
	json.Unmarshal(body, &q)
	if code != 200 || len(q.List) != 1 || q.List[0]["image"] != "debian:12" || q.List[0]["status"] == nil {
		t.Errorf("queue: %d %s", code, body)
	}
	p.mu.Lock()
	close(p.gate)
	p.mu.Unlock()

	// Expire (admin: root is "0"): {"status": ...} true-ish on success.
	code, _, body = shifterimgRequest(t, srv, "GET", "/api/expire/sys/docker/"+curlEscape("ubuntu:22.04")+"/", cred(0), "")
	var ex map[string]any
	json.Unmarshal(body, &ex)
	if st, _ := ex["status"].([]any); code != 200 || len(st) != 1 || st[0] != ubuntu {
		t.Errorf("expire: %d %s", code, body)
	}
	// Lookups were logged: Shifter's metrics shape.
	code, _, body = shifterimgRequest(t, srv, "GET", "/api/metrics/sys/?limit=20&format=shifter", cred(0), "")
	var rows []map[string]any
	json.Unmarshal(body, &rows)
	if code != 200 || len(rows) != 3 || rows[0]["tag"] != "ubuntu:22.04" || rows[2]["tag"] != "nersc/app:1.0" {
		t.Errorf("metrics: %d %s", code, body)
	}
}

// newTCPServer serves h on a loopback TCP port and returns its address.
func newTCPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	u := url.URL{Host: ln.Addr().String()}
	return u.Host
}
