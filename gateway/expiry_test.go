// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestExpire(t *testing.T) {
	p := newFakePuller()
	id := p.add("ubuntu:22.04", fakeImage{})
	busyID := p.add("busy:1", fakeImage{})
	c := testConfig(t)
	tg := startGW(t, c, p)
	dir := c.Systems["sys"].ImageDir
	tg.pullWait(alice, "ubuntu:22.04", nil)

	var res api.ExpireResult
	if code := tg.do("POST", "/api/expire/sys/docker/ubuntu:22.04/", admin, nil, &res); code != 200 || !slices.Equal(res.Status, []string{id}) {
		t.Fatalf("expire: %d %+v", code, res)
	}
	sq, mp := imagestore.Paths(dir, id)
	if fileExists(sq) || fileExists(mp) {
		t.Error("expire left the image files")
	}
	if _, code := tg.lookup(alice, "ubuntu:22.04"); code != 404 {
		t.Errorf("lookup after expire: %d", code)
	}
	var st api.Image
	tg.do("GET", "/api/pull/sys/docker/ubuntu:22.04/", alice, nil, &st)
	if st.Status != api.StateExpired {
		t.Errorf("pull record after expire: %s", st.Status)
	}
	// An expired image may be pulled again (Shifter's GET form of expire
	// works too).
	if im := tg.pullWait(alice, "ubuntu:22.04", nil); im.Status != api.StateReady || !fileExists(sq) {
		t.Fatalf("re-pull after expire: %+v", im)
	}
	if code := tg.do("GET", "/api/expire/sys/docker/ubuntu:22.04/", "root:0:0", nil, &res); code != 200 {
		t.Errorf("expire by uid 0 listed as admin \"0\": %d", code)
	}

	// An image that a pull job is working on is not expired (409).
	tg.pullWait(alice, "busy:1", nil)
	tg.g.mu.Lock()
	tg.g.inFlight["sys\x00"+busyID]++
	tg.g.mu.Unlock()
	if code := tg.do("POST", "/api/expire/sys/docker/busy:1/", admin, nil, nil); code != 409 {
		t.Errorf("expire of an image in use: %d, want 409", code)
	}
	tg.g.mu.Lock()
	tg.g.inFlight["sys\x00"+busyID]--
	tg.g.mu.Unlock()
}

func TestAutoexpire(t *testing.T) {
	p := newFakePuller()
	oldID := p.add("old:1", fakeImage{})
	usedID := p.add("used:1", fakeImage{})
	c := testConfig(t)
	c.Expiration = Duration(time.Hour)
	tg := startGW(t, c, p)
	dir := c.Systems["sys"].ImageDir
	tg.pullWait(alice, "old:1", nil)
	tg.pullWait(alice, "used:1", nil)
	// An unreferenced file pair left in the image directory (e.g. a
	// gateway that crashed between publishing and recording), old enough.
	orphan := fakeID("orphan")
	f, _ := imagestore.CreateTemp(dir)
	f.WriteString("x")
	f.Close()
	if err := imagestore.Publish(dir, f.Name(), &imagestore.Metadata{ID: orphan}); err != nil {
		t.Fatal(err)
	}
	// A fresh unreferenced file (a publish in progress) stays.
	fresh := fakeID("fresh")
	f, _ = imagestore.CreateTemp(dir)
	f.Close()
	freshSq, _ := imagestore.Paths(dir, fresh)
	os.Rename(f.Name(), freshSq)
	old := time.Now().Add(-3 * time.Hour)
	for _, p := range []string{filepath.Join(dir, orphan+".squashfs"), filepath.Join(dir, orphan+".json")} {
		os.Chtimes(p, old, old)
	}

	tg.clock.add(50 * time.Minute)
	tg.lookup(bob, "used:1") // in use: lookup refreshes its expiration
	var res api.ExpireResult
	if code := tg.do("POST", "/api/autoexpire/sys/", admin, nil, &res); code != 200 || len(res.Status) != 0 {
		t.Fatalf("autoexpire before expiration: %d %+v", code, res)
	}
	if !slices.Equal(res.Removed, []string{orphan}) || fileExists(filepath.Join(dir, orphan+".squashfs")) {
		t.Errorf("orphans removed: %v", res.Removed)
	}
	if !fileExists(freshSq) {
		t.Error("autoexpire removed a file younger than job_timeout")
	}
	tg.clock.add(20 * time.Minute) // old:1 is now 70 min without lookup; used:1 20 min
	if code := tg.do("GET", "/api/autoexpire/sys/", admin, nil, &res); code != 200 || !slices.Equal(res.Status, []string{oldID}) {
		t.Fatalf("autoexpire: %d %+v", code, res)
	}
	if sq, _ := imagestore.Paths(dir, oldID); fileExists(sq) {
		t.Error("expired image's squashfs is still there")
	}
	if _, code := tg.lookup(alice, "used:1"); code != 200 {
		t.Error("autoexpire removed an image looked up within the expiration window")
	}
	if _, err := imagestore.Load(dir, usedID); err != nil {
		t.Error(err)
	}
	if _, code := tg.lookup(alice, "old:1"); code != 404 {
		t.Error("expired image still found")
	}
}

// TestRestartResumesJobs: a gateway stopped mid-pull queues the job again
// at the next start and finishes it; a private job whose credentials
// were lost fails with a clear message.
func TestRestartResumesJobs(t *testing.T) {
	p := newFakePuller()
	id := p.add("slow:1", fakeImage{})
	p.add("corp/secret:1", fakeImage{creds: "alice:" + secret})
	p.gate = make(chan struct{})
	p.started = make(chan string, 4)
	c := testConfig(t)
	tg := startGW(t, c, p)
	tg.pull(alice, "slow:1", nil)
	tg.pull(alice, "corp/secret:1", &api.PullRequest{AuthorizedLocations: map[string]string{"default": "alice:" + secret}})
	<-p.started
	<-p.started
	// A temporary file is being written; stop the gateway as a crash would
	// leave it (Close leaves jobs queued).
	stray, _ := imagestore.CreateTemp(c.Systems["sys"].ImageDir)
	stray.Close()
	tg.close()

	p2 := newFakePuller()
	p2.add("slow:1", fakeImage{})
	p2.add("corp/secret:1", fakeImage{creds: "alice:" + secret})
	tg.restart(p2)
	if fileExists(stray.Name()) {
		t.Error("temporary file not cleaned at start-up")
	}
	if im := tg.wait(alice, "slow:1"); im.Status != api.StateReady || im.ID != id {
		t.Errorf("resumed job: %s %q", im.Status, im.StatusMessage)
	}
	im := tg.wait(alice, "corp/secret:1")
	if im.Status != api.StateFailure || !strings.Contains(im.StatusMessage, "pull again") {
		t.Errorf("private job after restart: %s %q", im.Status, im.StatusMessage)
	}
	// Pulling again with credentials works.
	tg.clock.add(c.FailureHold.D() + time.Second)
	if im := tg.pullWait(alice, "corp/secret:1", &api.PullRequest{AuthorizedLocations: map[string]string{"default": "alice:" + secret}}); im.Status != api.StateReady {
		t.Errorf("private pull again: %s %q", im.Status, im.StatusMessage)
	}
}

// TestReconcileMissingFiles: a READY record whose files vanished is
// withdrawn at start-up, never served.
func TestReconcileMissingFiles(t *testing.T) {
	p := newFakePuller()
	id := p.add("gone:1", fakeImage{})
	keepID := p.add("kept:1", fakeImage{})
	c := testConfig(t)
	tg := startGW(t, c, p)
	tg.pullWait(alice, "gone:1", nil)
	tg.pullWait(alice, "kept:1", nil)
	tg.close()
	sq, _ := imagestore.Paths(c.Systems["sys"].ImageDir, id)
	if err := os.Truncate(sq, 3); err != nil { // partial file
		t.Fatal(err)
	}
	tg.restart(p)
	if _, code := tg.lookup(alice, "gone:1"); code != 404 {
		t.Errorf("lookup of an image with a partial file: %d", code)
	}
	var st api.Image
	tg.do("GET", "/api/pull/sys/docker/gone:1/", alice, nil, &st)
	if st.Status != api.StateFailure || !strings.Contains(st.StatusMessage, "missing") {
		t.Errorf("pull record: %s %q", st.Status, st.StatusMessage)
	}
	if im, code := tg.lookup(alice, "kept:1"); code != 200 || im.ID != keepID {
		t.Errorf("intact image after reconcile: %d", code)
	}
	tg.clock.add(time.Hour)
	if im := tg.pullWait(alice, "gone:1", nil); im.Status != api.StateReady {
		t.Errorf("re-pull: %s %q", im.Status, im.StatusMessage)
	}
	if b := p.count(p.builds, id); b != 2 {
		t.Errorf("the partial image was not rebuilt: %d builds", b)
	}
}

// TestExpiredBetweenBuildAndCommit: an image expired after a job found it
// published but before the job recorded it is built again, never recorded
// READY without its files.
func TestExpiredBetweenBuildAndCommit(t *testing.T) {
	p := newFakePuller()
	id := p.add("x:1", fakeImage{})
	p.add("y:1", fakeImage{id: id})
	c := testConfig(t)
	tg := startGW(t, c, p)
	tg.pullWait(alice, "x:1", nil)
	dir := c.Systems["sys"].ImageDir
	var once bool
	tg.g.hookBeforeCommit = func(j *jobRecord) {
		if j.Tag != "y:1" || once {
			return
		}
		once = true
		// What an expire that checked "in use" just before this job
		// started would do: withdraw the record, remove the files.
		tg.g.db.update(func(t tx) error {
			rec, err := t.getImage("sys", id)
			if err != nil {
				return err
			}
			rec.Status = api.StateExpired
			return t.putImage(rec)
		})
		imagestore.Remove(dir, id)
	}
	im := tg.pullWait(alice, "y:1", nil)
	if im.Status != api.StateReady || im.ID != id {
		t.Fatalf("pull after a concurrent expire: %s %q", im.Status, im.StatusMessage)
	}
	if _, err := imagestore.Load(dir, id); err != nil {
		t.Errorf("READY without files: %v", err)
	}
	if b := p.count(p.builds, id); b != 2 {
		t.Errorf("%d builds, want 2 (the expired image rebuilt)", b)
	}
}
