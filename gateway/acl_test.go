// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

const secret = "s3cr3t-Pa55word"

// TestPrivateImages: an image that needs registry credentials is private
// to its puller; others can neither see it, nor learn it exists, nor
// change its ACL; ACLs given at pull time open it to users and groups.
func TestPrivateImages(t *testing.T) {
	p := newFakePuller()
	id := p.add("corp/secret:1", fakeImage{creds: "alice:" + secret})
	pubID := p.add("corp/public:1", fakeImage{})
	c := testConfig(t)
	tg := startGW(t, c, p)
	aliceCreds := &api.PullRequest{AuthorizedLocations: map[string]string{"default": "alice:" + secret}}

	// Bob without credentials: the registry says no; nothing of alice's
	// pull shows.
	if im := tg.pullWait(bob, "corp/secret:1", nil); im.Status != api.StateFailure || im.ID != "" {
		t.Fatalf("bob's pull without credentials: %s %q id %q", im.Status, im.StatusMessage, im.ID)
	}
	im := tg.pullWait(alice, "corp/secret:1", aliceCreds)
	if im.Status != api.StateReady || im.ID != id || !slices.Equal(im.UserACL, []uint32{1001}) {
		t.Fatalf("alice's private pull: %+v", im)
	}
	m, err := imagestore.Load(c.Systems["sys"].ImageDir, id)
	if err != nil || m.Public() || !m.Allowed(1001, nil) || m.Allowed(1002, []uint32{1002}) {
		t.Fatalf("published ACL of a private image: %+v %v", m, err)
	}
	visible := func(user, tag string) bool {
		t.Helper()
		_, code := tg.lookup(user, tag)
		inList := false
		if user != anon {
			for _, im := range tg.list(user) {
				inList = inList || slices.Contains(im.Tag, tag)
			}
		}
		if (code == 200) != inList && user != anon {
			t.Errorf("%s: lookup %d but in list %v", user, code, inList)
		}
		if code != 200 && code != 404 {
			t.Errorf("%s: lookup %s: %d", user, tag, code)
		}
		return code == 200
	}
	for user, want := range map[string]bool{alice: true, bob: false, carol: false, anon: false, "root:0:0": true} {
		if got := visible(user, "corp/secret:1"); got != want {
			t.Errorf("%q sees alice's private image: %v, want %v", user, got, want)
		}
	}
	// Bob's own pull status and the queue do not reveal alice's pull.
	var st api.Image
	if code := tg.do("GET", "/api/pull/sys/docker/corp/secret:1/", bob, nil, &st); code == 200 && st.ID != "" {
		t.Errorf("bob's pull status reveals an id: %+v", st)
	}
	var q api.List
	tg.do("GET", "/api/queue/sys/", bob, nil, &q)
	for _, j := range q.List {
		if j.ID == id {
			t.Errorf("queue shows alice's image to bob: %+v", j)
		}
	}
	// Bob pulling again with an ACL naming himself cannot grant himself
	// access: the registry still refuses him.
	tg.clock.add(c.FailureHold.D() + time.Second)
	if im := tg.pullWait(bob, "corp/secret:1", &api.PullRequest{AllowedUIDs: "1002"}); im.Status != api.StateFailure {
		t.Errorf("bob's re-ACL attempt: %s", im.Status)
	}
	if visible(bob, "corp/secret:1") {
		t.Error("bob sees the image after his re-ACL attempt")
	}
	// Alice opens it to carol's group 5000 and to bob's uid.
	tg.clock.add(c.PullUpdateTimeout.D() + time.Second)
	if im := tg.pullWait(alice, "corp/secret:1", &api.PullRequest{AllowedGIDs: "5000", AuthorizedLocations: aliceCreds.AuthorizedLocations}); im.Status != api.StateReady {
		t.Fatalf("alice's re-ACL: %+v", im)
	}
	if !visible(carol, "corp/secret:1") || visible(bob, "corp/secret:1") {
		t.Error("group ACL: carol (group 5000) should see it, bob not")
	}
	if b := p.count(p.builds, id); b != 1 {
		t.Errorf("ACL change rebuilt the image: %d builds", b)
	}
	m, _ = imagestore.Load(c.Systems["sys"].ImageDir, id)
	if !m.Allowed(1003, []uint32{5000}) || m.Allowed(1002, []uint32{1002}) {
		t.Errorf("published ACL after re-ACL: users %v groups %v", m.UserACL, m.GroupACL)
	}

	// A public image pulled with an ACL is private to the ACL...
	if im := tg.pullWait(alice, "corp/public:1", &api.PullRequest{AllowedUIDs: "1003"}); im.Status != api.StateReady || im.ID != pubID {
		t.Fatalf("pull with ACL: %+v", im)
	}
	if visible(bob, "corp/public:1") || !visible(carol, "corp/public:1") || !visible(alice, "corp/public:1") {
		t.Error("ACL of a pull with allowed_uids")
	}
	// ...and a public pull by someone not on the ACL adds only them: the
	// image does not become public.
	if im := tg.pullWait(bob, "corp/public:1", nil); im.Status != api.StateReady {
		t.Fatalf("bob's public pull: %+v", im)
	}
	if !visible(bob, "corp/public:1") || visible(anon, "corp/public:1") || visible("dave:1004:1004", "corp/public:1") {
		t.Error("public pull by a user off the ACL should add that user only")
	}
	// A public pull by someone on the ACL makes it public (the owner
	// re-pulls without ACL, as in Shifter).
	tg.clock.add(c.PullUpdateTimeout.D() + time.Second)
	if im := tg.pullWait(alice, "corp/public:1", nil); im.Status != api.StateReady {
		t.Fatalf("alice's public re-pull: %+v", im)
	}
	if !visible(anon, "corp/public:1") {
		t.Error("the owner's public re-pull should make the image public")
	}

	// Credentials are nowhere on disk or in logs.
	if strings.Contains(tg.logs.String(), secret) {
		t.Error("the registry password is in the logs")
	}
	tg.close()
	filepath.WalkDir(c.DataDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, _ := os.ReadFile(path); strings.Contains(string(b), secret) {
				t.Errorf("the registry password is stored in %s", path)
			}
		}
		return nil
	})
	filepath.WalkDir(c.Systems["sys"].ImageDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, _ := os.ReadFile(path); strings.Contains(string(b), secret) {
				t.Errorf("the registry password is in %s", path)
			}
		}
		return nil
	})
}

// TestFailingRequesterDoesNotPoison: a requester with bad credentials
// fails alone; the shared record and other users' pulls are unaffected.
func TestFailingRequesterDoesNotPoison(t *testing.T) {
	p := newFakePuller()
	id := p.add("corp/secret:2", fakeImage{creds: "alice:" + secret})
	tg := startGW(t, testConfig(t), p)
	good := &api.PullRequest{AuthorizedLocations: map[string]string{"default": "alice:" + secret}}
	bad := &api.PullRequest{AuthorizedLocations: map[string]string{"default": "bob:wrong"}}
	if im := tg.pullWait(alice, "corp/secret:2", good); im.Status != api.StateReady {
		t.Fatalf("alice: %+v", im)
	}
	im := tg.pullWait(bob, "corp/secret:2", bad)
	if im.Status != api.StateFailure || !strings.Contains(im.StatusMessage, "denied") {
		t.Errorf("bob with wrong credentials: %s %q", im.Status, im.StatusMessage)
	}
	if strings.Contains(im.StatusMessage, "wrong") {
		t.Errorf("failure message holds the credential: %q", im.StatusMessage)
	}
	if got, code := tg.lookup(alice, "corp/secret:2"); code != 200 || got.ID != id {
		t.Errorf("alice's lookup after bob's failure: %d %+v", code, got)
	}
	if _, err := imagestore.Load(tg.cfg.Systems["sys"].ImageDir, id); err != nil {
		t.Errorf("published image after bob's failure: %v", err)
	}
}

// TestCredentialsOnlyInMungeOverTCP: a TCP request (no peer identity)
// with credentials in the body is refused.
func TestCredentialsNotInBodyOverTCP(t *testing.T) {
	p := newFakePuller()
	p.add("a:1", fakeImage{})
	c := testConfig(t)
	tg := startGW(t, c, p)
	tg.close()
	tg.opts.Auth = func(r *http.Request, s string) (*Identity, error) {
		id, err := testAuth(r, s)
		if id.Authenticated {
			id.Source = "munge"
		}
		return id, err
	}
	tg.open()
	body := &api.PullRequest{AuthorizedLocations: map[string]string{"default": "a:b"}}
	if code := tg.do("POST", "/api/pull/sys/docker/a:1/", alice, body, nil); code != 400 {
		t.Errorf("credentials in the body over TCP: %d, want 400", code)
	}
}

// TestSharedBuildFailureNotPoisoning: a build shared by several jobs that
// fails because of its leader's credentials does not fail the others.
func TestSharedBuildFailureNotPoisoning(t *testing.T) {
	p := newFakePuller()
	id := p.add("corp/secret:3", fakeImage{creds: "alice:" + secret})
	p.gate = make(chan struct{})
	p.started = make(chan string, 4)
	tg := startGW(t, testConfig(t), p)
	tg.pull(bob, "corp/secret:3", &api.PullRequest{AuthorizedLocations: map[string]string{"default": badBuildCred}})
	<-p.started // bob's job leads the build
	tg.pull(alice, "corp/secret:3", &api.PullRequest{AuthorizedLocations: map[string]string{"default": "alice:" + secret}})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tg.g.mu.Lock()
		n := len(tg.g.waiters["sys\x00"+id])
		tg.g.mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(p.gate)
	if im := tg.wait(bob, "corp/secret:3"); im.Status != api.StateFailure {
		t.Errorf("bob (expiring token): %s %q", im.Status, im.StatusMessage)
	}
	if im := tg.wait(alice, "corp/secret:3"); im.Status != api.StateReady || im.ID != id {
		t.Errorf("alice sharing bob's failed build: %s %q", im.Status, im.StatusMessage)
	}
	if _, code := tg.lookup(bob, "corp/secret:3"); code != 404 {
		t.Errorf("bob sees the image after his failed pull: %d", code)
	}
}
