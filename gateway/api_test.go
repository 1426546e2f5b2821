// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

func TestPullLookupList(t *testing.T) {
	p := newFakePuller()
	id := p.add("ubuntu:22.04", fakeImage{env: []string{"PATH=/bin", "LANG=C"}})
	tg := startGW(t, testConfig(t), p)

	first := tg.pull(alice, "ubuntu:22.04", nil)
	if first.Status != api.StatePending && first.Status != api.StatePulling && first.Status != api.StateReady {
		t.Errorf("first pull answer: status %q", first.Status)
	}
	if first.Pulltag != "ubuntu:22.04" {
		t.Errorf("pulltag %q", first.Pulltag)
	}
	got := tg.wait(alice, "ubuntu:22.04")
	if got.Status != api.StateReady || got.ID != id {
		t.Fatalf("pull ended %s %q id %s, want READY %s", got.Status, got.StatusMessage, got.ID, id)
	}
	// The image store holds exactly what the runtime will read.
	dir := tg.cfg.Systems["sys"].ImageDir
	m, err := imagestore.Load(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Public() || !m.HasTag("ubuntu:22.04") || !slices.Equal(m.Env, []string{"PATH=/bin", "LANG=C"}) || m.SHA256 == "" {
		t.Errorf("published metadata %+v", m)
	}
	sq, _ := imagestore.Paths(dir, id)
	if b, err := os.ReadFile(sq); err != nil || string(b) != "squashfs of "+id {
		t.Errorf("published squashfs: %q %v", b, err)
	}
	// Lookup (anonymous works for public images) and its Shifter fields.
	for _, tag := range []string{"ubuntu:22.04", "docker.io/library/ubuntu:22.04", "library/ubuntu:22.04"} {
		im, code := tg.lookup(anon, tag)
		if code != 200 || im.ID != id || im.Status != api.StateReady || !slices.Equal(im.Env, m.Env) || im.LastPull == 0 {
			t.Errorf("lookup %s: %d %+v", tag, code, im)
		}
	}
	if _, code := tg.lookup(alice, "ubuntu:20.04"); code != 404 {
		t.Errorf("lookup of an unknown tag: %d, want 404", code)
	}
	l := tg.list(bob)
	if len(l) != 1 || l[0].ID != id || !slices.Contains(l[0].Tag, "ubuntu:22.04") {
		t.Errorf("list: %+v", l)
	}
	// Other systems do not see it.
	var ol api.List
	if code := tg.do("GET", "/api/list/other/", bob, nil, &ol); code != 200 || len(ol.List) != 0 {
		t.Errorf("list of other system: %d %+v", code, ol)
	}
	// A second pull right away is answered from the record: no new job.
	again := tg.pull(bob, "ubuntu:22.04", nil)
	if again.Status != api.StateReady || p.count(p.resolves, "ubuntu:22.04") != 1 {
		t.Errorf("second pull: %s, resolves %d", again.Status, p.count(p.resolves, "ubuntu:22.04"))
	}
	// After pull_update_timeout a pull checks the registry again but does
	// not rebuild the same digest.
	tg.clock.add(tg.cfg.PullUpdateTimeout.D() + time.Second)
	if im := tg.pullWait(bob, "ubuntu:22.04", nil); im.Status != api.StateReady {
		t.Errorf("re-pull: %s %q", im.Status, im.StatusMessage)
	}
	if r, b := p.count(p.resolves, "ubuntu:22.04"), p.count(p.builds, id); r != 2 || b != 1 {
		t.Errorf("re-pull: %d resolves (want 2), %d builds (want 1)", r, b)
	}
}

func TestStatusCodes(t *testing.T) {
	p := newFakePuller()
	p.add("ubuntu:22.04", fakeImage{})
	tg := startGW(t, testConfig(t), p)
	tg.pullWait(alice, "ubuntu:22.04", nil)
	long := strings.Repeat("a", 129)
	cases := []struct {
		name, method, path, user string
		body                     any
		want                     int
	}{
		{"unknown system", "GET", "/api/lookup/nosuch/docker/ubuntu:22.04/", alice, nil, 404},
		{"unknown system list", "GET", "/api/list/nosuch/", alice, nil, 404},
		{"bad type", "GET", "/api/lookup/sys/rkt/ubuntu:22.04/", alice, nil, 400},
		{"dotdot", "GET", "/api/lookup/sys/docker/ubuntu/../../etc:latest/", alice, nil, 400},
		{"dotdot in name", "POST", "/api/pull/sys/docker/a..b/c:1/", alice, nil, 400},
		{"encoded slash", "POST", "/api/pull/sys/docker/ubuntu%2f..%2fx:1/", alice, nil, 400},
		{"encoded slash in a tag (Shifter's client)", "GET", "/api/lookup/sys/docker/ubuntu%2Fx/", alice, nil, 404},
		{"escaped tag (Shifter's client)", "GET", "/api/lookup/sys/docker/ubuntu%3A22.04/", alice, nil, 200},
		{"escaped type", "GET", "/api/lookup/sys/%64ocker/ubuntu%3A22.04/", alice, nil, 200},
		{"encoded dot", "GET", "/api/lookup/sys/docker/%2e%2e/x/", alice, nil, 400},
		{"encoded dot segment", "GET", "/api/lookup/sys/docker/a%2F.%2Fb/", alice, nil, 400},
		{"encoded empty segment", "GET", "/api/lookup/sys/docker/a%2F%2Fb/", alice, nil, 400},
		{"encoded slash in system", "GET", "/api/lookup/s%2Fys/docker/ubuntu/", alice, nil, 400},
		{"encoded slash in type", "GET", "/api/lookup/sys/dock%2Fer/ubuntu/", alice, nil, 400},
		{"encoded slash in list", "GET", "/api/list/sys%2F/", alice, nil, 400},
		{"double escape", "GET", "/api/lookup/sys/docker/ubuntu%252Fx/", alice, nil, 400},
		{"escaped newline", "GET", "/api/lookup/sys/docker/ubuntu%0A:1/", alice, nil, 400},
		{"escaped DEL", "GET", "/api/lookup/sys/docker/ubuntu%7F:1/", alice, nil, 400},
		{"escaped question mark", "GET", "/api/lookup/sys/docker/ubuntu%3F:1/", alice, nil, 400},
		{"escaped image file", "GET", "/images/sys/%61.squashfs", alice, nil, 404},
		{"uppercase repo", "POST", "/api/pull/sys/docker/Ubuntu:22.04/", alice, nil, 400},
		{"long tag", "POST", "/api/pull/sys/docker/ubuntu:" + long + "/", alice, nil, 400},
		{"bad digest", "POST", "/api/pull/sys/docker/ubuntu@sha256:1234/", alice, nil, 400},
		{"md5 digest", "POST", "/api/pull/sys/docker/ubuntu@md5:d41d8cd98f00b204e9800998ecf8427e/", alice, nil, 400},
		{"empty segment", "POST", "/api/pull/sys/docker//ubuntu/", alice, nil, 400},
		{"absolute", "POST", "/api/pull/sys/docker/-rf:1/", alice, nil, 400},
		{"control char", "POST", "/api/pull/sys/docker/ub%00untu/", alice, nil, 400},
		{"anonymous pull", "POST", "/api/pull/sys/docker/ubuntu:22.04/", anon, nil, 401},
		{"anonymous list", "GET", "/api/list/sys/", anon, nil, 401},
		{"anonymous lookup of public", "GET", "/api/lookup/sys/docker/ubuntu:22.04/", anon, nil, 200},
		{"anonymous queue", "GET", "/api/queue/sys/", anon, nil, 200},
		{"missing image", "GET", "/api/lookup/sys/docker/debian:12/", alice, nil, 404},
		{"bad uid list", "POST", "/api/pull/sys/docker/ubuntu:22.04/", alice, map[string]string{"allowed_uids": "12,x"}, 400},
		{"unknown body field", "POST", "/api/pull/sys/docker/ubuntu:22.04/", alice, map[string]string{"allowed_user": "12"}, 400},
		{"expire anonymous", "POST", "/api/expire/sys/docker/ubuntu:22.04/", anon, nil, 401},
		{"expire non-admin", "POST", "/api/expire/sys/docker/ubuntu:22.04/", alice, nil, 403},
		{"expire admin of another system", "POST", "/api/expire/other/docker/ubuntu:22.04/", admin, nil, 403},
		{"autoexpire non-admin", "GET", "/api/autoexpire/sys/", bob, nil, 403},
		{"metrics non-admin", "GET", "/api/metrics/sys/", bob, nil, 403},
		{"metrics admin", "GET", "/api/metrics/sys/?limit=5", admin, nil, 200},
		{"metrics bad limit", "GET", "/api/metrics/sys/?limit=-1", admin, nil, 400},
		{"expire missing", "POST", "/api/expire/sys/docker/debian:12/", admin, nil, 404},
		{"unknown endpoint", "GET", "/api/nosuch/sys/", alice, nil, 404},
		{"wrong method", "DELETE", "/api/lookup/sys/docker/ubuntu:22.04/", alice, nil, 405},
		{"prometheus", "GET", "/metrics", anon, nil, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := tg.do(c.method, c.path, c.user, c.body, nil); got != c.want {
				t.Errorf("%s %s: status %d, want %d", c.method, c.path, got, c.want)
			}
		})
	}
	// No attack above created a job or reached the puller.
	var q api.List
	tg.do("GET", "/api/queue/sys/", admin, nil, &q)
	if len(q.List) != 0 {
		t.Errorf("queue after attacks: %+v", q.List)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for ref := range p.resolves {
		if ref != "ubuntu:22.04" {
			t.Errorf("puller was asked to resolve %q", ref)
		}
	}
}

func TestParseTag(t *testing.T) {
	good := map[string]string{
		"ubuntu":                         "ubuntu:latest",
		"ubuntu:22.04":                   "ubuntu:22.04",
		"docker.io/library/ubuntu:22.04": "ubuntu:22.04",
		"127.0.0.1:5000/a/b-c_d.e:v1.2":  "127.0.0.1:5000/a/b-c_d.e:v1.2",
		"localhost/x":                    "localhost/x:latest",
		"foo..bar":                       "", // rejected below: ".." anywhere
		"ubuntu@sha256:" + strings.Repeat("a", 64): "ubuntu@sha256:" + strings.Repeat("a", 64),
	}
	for in, want := range good {
		got, err := ParseTag(in)
		if want == "" {
			if err == nil {
				t.Errorf("ParseTag(%q) accepted", in)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseTag(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "UPPER/case", "a/../b", "/abs", "a//b", "x:" + strings.Repeat("t", 129),
		"ubuntu@sha256:abc", "ubuntu@sha1:" + strings.Repeat("a", 40), "ub untu", "ü/x", "a%2fb", "a\\b", "a:b:c",
		strings.Repeat("a/", 300) + "b"} {
		if got, err := ParseTag(bad); err == nil {
			t.Errorf("ParseTag(%q) = %q, want an error", bad, got)
		}
	}
}

func TestConcurrentPullsShareOneJob(t *testing.T) {
	p := newFakePuller()
	id := p.add("busybox:1", fakeImage{})
	p.gate = make(chan struct{})
	tg := startGW(t, testConfig(t), p)
	users := []string{alice, bob, carol, admin}
	for u := range 46 {
		users = append(users, fmt.Sprintf("user%d:%d:%d", u, 2000+u, 2000+u))
	}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tg.pull(users[i%len(users)], "busybox:1", nil)
		}()
	}
	wg.Wait()
	// Progress is visible while the build is held.
	var im api.Image
	deadline := time.Now().Add(10 * time.Second)
	for im.Progress == nil && time.Now().Before(deadline) {
		tg.do("GET", "/api/pull/sys/docker/busybox:1/", alice, nil, &im)
		time.Sleep(10 * time.Millisecond)
	}
	if im.Status != api.StatePulling || im.Progress == nil || im.Progress.BytesTotal != 100 {
		t.Errorf("while pulling: %+v progress %+v", im, im.Progress)
	}
	var q api.List
	tg.do("GET", "/api/queue/sys/", anon, nil, &q)
	if len(q.List) != 1 {
		t.Errorf("queue has %d entries, want 1: %+v", len(q.List), q.List)
	}
	close(p.gate)
	for _, u := range users {
		if im := tg.wait(u, "busybox:1"); im.Status != api.StateReady || im.ID != id {
			t.Errorf("%s: %s %q", u, im.Status, im.StatusMessage)
		}
	}
	if r, b := p.count(p.resolves, "busybox:1"), p.count(p.builds, id); r != 1 || b != 1 {
		t.Errorf("200 concurrent pulls from 50 users: %d resolves, %d builds; want 1 and 1", r, b)
	}
}

func TestSameDigestOneConversion(t *testing.T) {
	p := newFakePuller()
	id := fakeID("shared")
	tags := []string{"a/img:1", "a/img:latest", "b/other:v1"}
	for _, tag := range tags {
		p.add(tag, fakeImage{id: id})
	}
	p.gate = make(chan struct{})
	p.started = make(chan string, 10)
	tg := startGW(t, testConfig(t), p)
	for _, tag := range tags {
		tg.pull(alice, tag, nil)
	}
	<-p.started
	// Let the other jobs reach the shared build before releasing it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		tg.g.mu.Lock()
		n := len(tg.g.waiters["sys\x00"+id])
		tg.g.mu.Unlock()
		if n == len(tags) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(p.gate)
	for _, tag := range tags {
		if im := tg.wait(alice, tag); im.Status != api.StateReady || im.ID != id {
			t.Errorf("%s: %s %q", tag, im.Status, im.StatusMessage)
		}
	}
	if b := p.count(p.builds, id); b != 1 {
		t.Errorf("%d builds of one digest, want 1", b)
	}
	m, err := imagestore.Load(tg.cfg.Systems["sys"].ImageDir, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if !m.HasTag(tag) {
			t.Errorf("metadata tags %v lack %s", m.Tags, tag)
		}
	}
	// Moving a tag to another digest removes it from the old image, whose
	// squashfs (jobs may be running it) is left as it was.
	oldSq, _ := imagestore.Paths(tg.cfg.Systems["sys"].ImageDir, id)
	before, _ := os.Stat(oldSq)
	newID := p.add("a/img:latest", fakeImage{})
	tg.clock.add(time.Hour)
	if im := tg.pullWait(alice, "a/img:latest", nil); im.ID != newID {
		t.Fatalf("re-pull after the tag moved: %+v", im)
	}
	m, _ = imagestore.Load(tg.cfg.Systems["sys"].ImageDir, id)
	if m.HasTag("a/img:latest") || !m.HasTag("a/img:1") {
		t.Errorf("old image tags after the move: %v", m.Tags)
	}
	if after, err := os.Stat(oldSq); err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("old squashfs replaced or modified by the tag move: %v", err)
	}
	if im, _ := tg.lookup(alice, "a/img:latest"); im.ID != newID {
		t.Errorf("lookup after the move: %s", im.ID)
	}
}

func TestBuildFailure(t *testing.T) {
	p := newFakePuller()
	p.add("broken:1", fakeImage{})
	p.buildErr = errors.New("layer sha256:abc: digest mismatch")
	c := testConfig(t)
	tg := startGW(t, c, p)
	im := tg.pullWait(alice, "broken:1", nil)
	if im.Status != api.StateFailure || !strings.Contains(im.StatusMessage, "digest mismatch") {
		t.Fatalf("failed build: %s %q", im.Status, im.StatusMessage)
	}
	if _, code := tg.lookup(alice, "broken:1"); code != 404 {
		t.Errorf("lookup of a failed pull: %d", code)
	}
	ents, _ := os.ReadDir(c.Systems["sys"].ImageDir)
	if len(ents) != 0 {
		t.Errorf("image dir after a failed build: %v", ents)
	}
	// Within failure_hold a new pull reports the failure (clients polling
	// with POST see it); after it, the pull is retried.
	if again := tg.pull(alice, "broken:1", nil); again.Status != api.StateFailure {
		t.Errorf("pull within failure_hold: %s", again.Status)
	}
	p.mu.Lock()
	p.buildErr = nil
	p.mu.Unlock()
	tg.clock.add(c.FailureHold.D() + time.Second)
	if im := tg.pullWait(alice, "broken:1", nil); im.Status != api.StateReady {
		t.Errorf("retry after failure_hold: %s %q", im.Status, im.StatusMessage)
	}
	if _, code := tg.lookup(alice, "missing:1"); code != 404 {
		t.Errorf("lookup missing: %d", code)
	}
	if im := tg.pullWait(alice, "missing:1", nil); im.Status != api.StateFailure || !strings.Contains(im.StatusMessage, "not found") {
		t.Errorf("pull of an unknown image: %s %q", im.Status, im.StatusMessage)
	}
}

func TestMetricsEndpoints(t *testing.T) {
	p := newFakePuller()
	p.add("ubuntu:22.04", fakeImage{})
	tg := startGW(t, testConfig(t), p)
	tg.pullWait(alice, "ubuntu:22.04", nil)
	for range 3 {
		tg.lookup(bob, "ubuntu:22.04")
	}
	tg.lookup(bob, "nothere:1")
	var log api.LookupLog
	if code := tg.do("GET", "/api/metrics/sys/?limit=2", admin, nil, &log); code != 200 {
		t.Fatal(code)
	}
	if log.Total != 3 || len(log.List) != 2 || log.List[0].User != "bob" || log.List[0].Tag != "ubuntu:22.04" {
		t.Errorf("lookup log: %+v", log)
	}
	// Shifter's shape: a bare array of the last N, oldest first.
	var rows []map[string]any
	if code := tg.do("GET", "/api/metrics/sys/?limit=2&format=shifter", admin, nil, &rows); code != 200 {
		t.Fatal(code)
	}
	if len(rows) != 2 || rows[0]["time"].(float64) > rows[1]["time"].(float64) {
		t.Errorf("Shifter-shaped lookup log: %+v", rows)
	}
	for _, r := range rows {
		for _, k := range []string{"time", "user", "uid", "system", "type", "tag", "id"} {
			if _, ok := r[k]; !ok {
				t.Errorf("Shifter-shaped lookup row lacks %q: %v", k, r)
			}
		}
	}
	if code := tg.do("GET", "/api/metrics/sys/?format=xml", admin, nil, nil); code != 400 {
		t.Errorf("metrics format=xml: %d, want 400", code)
	}
	resp, err := tg.srv.Client().Get(tg.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 1<<16)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, want := range []string{
		`shifter_gateway_pulls_total{state="READY",system="sys"} 1`,
		`shifter_gateway_lookups_total{result="found",system="sys"} 3`,
		`shifter_gateway_lookups_total{result="not_found",system="sys"} 1`,
		`shifter_gateway_conversions_total{system="sys"} 1`,
		fmt.Sprintf(`shifter_gateway_published_bytes_total{system="sys"} %d`, len("squashfs of ")+64),
		`shifter_gateway_pull_duration_seconds_count{state="READY",system="sys"} 1`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
