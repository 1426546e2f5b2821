// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
)

// More users: dave is on alice's ACL by uid, carol by her group 5000.
const (
	dave = "dave:1004:1004"
	eve  = "eve:1005:1005"
	root = "root:0:0"
)

const (
	pubTag  = "reg1.example.org/app:v1"
	privTag = "reg2.example.org/secret:v1"
	noTag   = "reg2.example.org/nothere:v1" // never pulled: what "missing" looks like
)

// errorOf returns the status and api.Error of a request.
func (tg *testGW) errorOf(method, path, user string) (int, api.Error) {
	tg.t.Helper()
	req, err := http.NewRequest(method, tg.srv.URL+path, nil)
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
	var e api.Error
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		if err := json.Unmarshal(b, &e); err != nil {
			tg.t.Errorf("%s %s: %d with body %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, e
}

// looksMissing checks that the answers to user about privTag are those
// about a tag nobody ever pulled: same status, same error, same message
// but for the name. Lookup always; the pull status too unless
// publicPulls (someone's public pull of the tag has its own record,
// which all may read).
func looksMissing(t *testing.T, tg *testGW, user string, publicPulls bool) {
	t.Helper()
	looksMissingAs(t, tg, user, privTag, noTag, publicPulls)
}

// looksMissing2 checks lookup only, for any pair of tags.
func looksMissing2(t *testing.T, tg *testGW, user, tag, missing string) {
	t.Helper()
	looksMissingAs(t, tg, user, tag, missing, true)
}

func looksMissingAs(t *testing.T, tg *testGW, user, privTag, noTag string, publicPulls bool) {
	t.Helper()
	eps := []struct{ method, pfx string }{{"GET", "/api/lookup/sys/docker/"}, {"GET", "/api/pull/sys/docker/"}}
	if publicPulls {
		eps = eps[:1]
	}
	for _, ep := range eps {
		code, e := tg.errorOf(ep.method, ep.pfx+privTag+"/", user)
		mcode, me := tg.errorOf(ep.method, ep.pfx+noTag+"/", user)
		if code != 404 || code != mcode || e.Error != me.Error ||
			strings.ReplaceAll(e.Message, privTag, "X") != strings.ReplaceAll(me.Message, noTag, "X") {
			t.Errorf("%s %s as %q: %d %+v; a missing tag: %d %+v", ep.method, ep.pfx, user, code, e, mcode, me)
		}
	}
}

// listTags returns the tags of image id in user's list (nil: not listed).
func listTags(tg *testGW, user, id string) []string {
	for _, im := range tg.list(user) {
		if im.ID == id {
			return im.Tag
		}
	}
	return nil
}

func storeTags(t *testing.T, tg *testGW, id string) *imagestore.Metadata {
	t.Helper()
	m, err := imagestore.Load(tg.cfg.Systems["sys"].ImageDir, id)
	if err != nil {
		t.Fatalf("load %s: %v", id, err)
	}
	return m
}

// TestPrivateTagOnPublicDigest: a private pull whose digest is already
// public under another tag gives a private tag: seen by the puller and
// its ACL (uid and group) only, missing (404, same message) to everyone
// else in lookup, pull status, list, queue and the lookup log, and kept
// out of the published <id>.json, while the public tag stays public.
func TestPrivateTagOnPublicDigest(t *testing.T) {
	const cred = "alice:" + secret
	for _, tc := range []struct {
		name string
		img  fakeImage          // what the registry serves privTag as
		req  *api.PullRequest   // alice's private pull
		sees map[string]bool    // who may see privTag
		acl  [2][]uint32        // privTag's ACL (users, groups)
		deny []*api.PullRequest // bob's attempts at privTag
	}{
		{
			name: "allowed_uids and allowed_gids",
			img:  fakeImage{},
			req:  &api.PullRequest{AllowedUIDs: "1004", AllowedGIDs: "5000"},
			sees: map[string]bool{alice: true, dave: true, carol: true, root: true, bob: false, eve: false, admin: false, anon: false},
			acl:  [2][]uint32{{1001, 1004}, {5000}},
		},
		{
			name: "registry credentials",
			img:  fakeImage{creds: cred},
			req:  &api.PullRequest{AuthorizedLocations: map[string]string{"default": cred}},
			sees: map[string]bool{alice: true, root: true, dave: false, carol: false, bob: false, eve: false, admin: false, anon: false},
			acl:  [2][]uint32{{1001}, nil},
			deny: []*api.PullRequest{
				nil,
				{AllowedUIDs: "1002,1005"},
				{AllowedUIDs: "1005", AuthorizedLocations: map[string]string{"default": "bob:guess"}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakePuller()
			id := fakeID("the image")
			p.add(pubTag, fakeImage{id: id})
			tc.img.id = id
			p.add(privTag, tc.img)
			c := testConfig(t)
			tg := startGW(t, c, p)
			hold, held := make(chan struct{}), make(chan struct{}, 1)
			tg.g.hookBeforeCommit = func(j *jobRecord) {
				if j.Tag == privTag && j.UID == 1001 {
					held <- struct{}{}
					<-hold
				}
			}
			if im := tg.pullWait(bob, pubTag, nil); im.Status != api.StateReady || im.ID != id {
				t.Fatalf("bob's public pull: %+v", im)
			}

			// While alice's private pull runs, the queue shows it to her
			// (and root) only.
			tg.pull(alice, privTag, tc.req)
			<-held
			for user, want := range map[string]bool{alice: true, root: true, bob: false, dave: false, carol: false, anon: false} {
				var q api.List
				if code := tg.do("GET", "/api/queue/sys/", user, nil, &q); code != 200 {
					t.Fatalf("queue as %q: %d", user, code)
				}
				got := slices.ContainsFunc(q.List, func(im api.Image) bool {
					return im.Pulltag == privTag || slices.Contains(im.Tag, privTag)
				})
				if got != want {
					t.Errorf("queue as %q shows alice's private pull: %v, want %v (%+v)", user, got, want, q.List)
				}
			}
			close(hold)
			im := tg.wait(alice, privTag)
			if im.Status != api.StateReady || im.ID != id {
				t.Fatalf("alice's private pull: %+v", im)
			}
			if !slices.Equal(im.UserACL, tc.acl[0]) || !slices.Equal(im.GroupACL, append([]uint32{}, tc.acl[1]...)) {
				t.Errorf("alice's pull answer ACL %v %v, want %v", im.UserACL, im.GroupACL, tc.acl)
			}
			if b := p.count(p.builds, id); b != 1 {
				t.Errorf("%d builds of one digest", b)
			}

			check := func(t *testing.T, publicPulls bool) {
				t.Helper()
				for user, want := range tc.sees {
					got, code := tg.lookup(user, privTag)
					if want {
						if code != 200 || got.ID != id || !slices.Contains(got.Tag, privTag) {
							t.Errorf("lookup %s as %q: %d %+v", privTag, user, code, got)
						}
						if user != root && (!slices.Equal(got.UserACL, tc.acl[0]) || !slices.Equal(got.GroupACL, append([]uint32{}, tc.acl[1]...))) {
							t.Errorf("lookup %s as %q: ACL %v %v, want %v", privTag, user, got.UserACL, got.GroupACL, tc.acl)
						}
					} else {
						looksMissing(t, tg, user, publicPulls)
					}
					// The public tag stays visible to all, and shows the
					// private tag only to those who see it.
					pub, code := tg.lookup(user, pubTag)
					if code != 200 || pub.ID != id || !slices.Contains(pub.Tag, pubTag) || slices.Contains(pub.Tag, privTag) != want {
						t.Errorf("lookup %s as %q: %d tags %v", pubTag, user, code, pub.Tag)
					}
					if len(pub.UserACL)+len(pub.GroupACL) != 0 {
						t.Errorf("public image shown with an ACL to %q: %v %v", user, pub.UserACL, pub.GroupACL)
					}
					if user == anon {
						continue
					}
					tags := listTags(tg, user, id)
					if !slices.Contains(tags, pubTag) || slices.Contains(tags, privTag) != want {
						t.Errorf("list as %q: tags %v", user, tags)
					}
				}
				m := storeTags(t, tg, id)
				if !slices.Equal(m.Tags, []string{pubTag}) || !m.Public() {
					t.Errorf("published metadata: tags %v ACL %v %v, want only the public tag, public", m.Tags, m.UserACL, m.GroupACL)
				}
			}
			check(t, false)

			// The lookup log shows alice's lookup of her private tag to
			// an administrator who may see it (root), not to one who may
			// not.
			for user, want := range map[string]bool{root: true, admin: false} {
				var ll api.LookupLog
				if code := tg.do("GET", "/api/metrics/sys/?limit=1000", user, nil, &ll); code != 200 {
					t.Fatalf("lookup log as %q: %d", user, code)
				}
				got := slices.ContainsFunc(ll.List, func(l api.Lookup) bool { return l.Tag == privTag })
				if got != want {
					t.Errorf("lookup log as %q shows the private tag: %v", user, got)
				}
			}
			resp, err := http.Get(tg.srv.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), "secret") {
				t.Error("/metrics names the private tag")
			}

			// Bob cannot give himself (or eve) the private tag: the
			// registry refuses him, and nothing changes.
			for _, req := range tc.deny {
				tg.clock.add(c.FailureHold.D() + time.Second)
				im := tg.pullWait(bob, privTag, req)
				if im.Status != api.StateFailure || im.ID != "" || strings.Contains(im.StatusMessage, id[:12]) {
					t.Errorf("bob's pull %+v of the private tag: %s id %q %q", req, im.Status, im.ID, im.StatusMessage)
				}
			}
			check(t, tc.deny != nil)
			if strings.Contains(tg.logs.String(), secret) {
				t.Error("the registry password is in the logs")
			}
		})
	}
}

// TestPrivateTagACLIsTheOwners: another user's pull of the same tag name
// makes their own binding; it neither changes nor reveals the owner's.
func TestPrivateTagACLIsTheOwners(t *testing.T) {
	p := newFakePuller()
	id := p.add(privTag, fakeImage{})
	tg := startGW(t, testConfig(t), p)
	if im := tg.pullWait(alice, privTag, &api.PullRequest{AllowedUIDs: "1004"}); im.Status != api.StateReady {
		t.Fatalf("alice: %+v", im)
	}
	// Bob pulls the same tag (the registry serves it to him too) with
	// his own ACL: his answer shows his ACL only.
	im := tg.pullWait(bob, privTag, &api.PullRequest{AllowedUIDs: "1005"})
	if im.Status != api.StateReady || im.ID != id || !slices.Equal(im.UserACL, []uint32{1002, 1005}) {
		t.Fatalf("bob's private pull of the same tag: %+v", im)
	}
	for _, tc := range []struct {
		user string
		code int
		acl  []uint32
	}{
		{alice, 200, []uint32{1001, 1004}},
		{dave, 200, []uint32{1001, 1004}},
		{bob, 200, []uint32{1002, 1005}},
		{eve, 200, []uint32{1002, 1005}},
		{carol, 404, nil},
	} {
		got, code := tg.lookup(tc.user, privTag)
		if code != tc.code || (code == 200 && (got.ID != id || !slices.Equal(got.UserACL, tc.acl))) {
			t.Errorf("lookup as %q: %d ACL %v, want %d %v", tc.user, code, got.UserACL, tc.code, tc.acl)
		}
	}
	// The image is private to both ACLs; the metadata holds no tag, as
	// neither ACL covers the other.
	m := storeTags(t, tg, id)
	if len(m.Tags) != 0 || !m.Allowed(1004, nil) || !m.Allowed(1005, nil) || m.Allowed(1003, []uint32{5000}) {
		t.Errorf("metadata of an image with two private tags: tags %v users %v", m.Tags, m.UserACL)
	}
}

// TestPrivateTagOrder: the private pull first, the public digest after;
// and the owner's public re-pull makes the tag public.
func TestPrivateTagOrder(t *testing.T) {
	p := newFakePuller()
	id := fakeID("the image")
	p.add(pubTag, fakeImage{id: id})
	p.add(privTag, fakeImage{id: id})
	c := testConfig(t)
	tg := startGW(t, c, p)
	if im := tg.pullWait(alice, privTag, &api.PullRequest{AllowedGIDs: "5000"}); im.Status != api.StateReady {
		t.Fatalf("alice: %+v", im)
	}
	// Alone, the private tag covers the image's ACL: it is in the
	// metadata, so nodes resolve it without the gateway.
	if m := storeTags(t, tg, id); !slices.Equal(m.Tags, []string{privTag}) || !slices.Equal(m.UserACL, []uint32{1001}) || !slices.Equal(m.GroupACL, []uint32{5000}) {
		t.Errorf("metadata of a private image: tags %v ACL %v %v", m.Tags, m.UserACL, m.GroupACL)
	}
	// Bob's public pull of the same digest under another tag adds bob
	// to the image (not on its ACL: the image stays private) and leaves
	// alice's tag out of the metadata, which now admits bob.
	if im := tg.pullWait(bob, pubTag, nil); im.Status != api.StateReady || im.ID != id {
		t.Fatalf("bob: %+v", im)
	}
	m := storeTags(t, tg, id)
	if !slices.Equal(m.Tags, []string{pubTag}) || !m.Allowed(1002, nil) || m.Allowed(1005, nil) {
		t.Errorf("metadata after bob's public pull: tags %v ACL %v %v", m.Tags, m.UserACL, m.GroupACL)
	}
	for _, u := range []string{bob, eve, anon} {
		looksMissing(t, tg, u, false)
	}
	if _, code := tg.lookup(carol, privTag); code != 200 {
		t.Errorf("carol (group 5000) lookup: %d", code)
	}
	if got, _ := tg.lookup(bob, pubTag); slices.Contains(got.UserACL, 1001) || slices.Contains(got.GroupACL, 5000) {
		t.Errorf("bob sees alice's ACL: %v %v", got.UserACL, got.GroupACL)
	}
	// Alice pulls her tag publicly: it becomes public (and the image,
	// she being on its ACL).
	tg.clock.add(c.PullUpdateTimeout.D() + time.Second)
	if im := tg.pullWait(alice, privTag, nil); im.Status != api.StateReady || len(im.UserACL) != 0 {
		t.Fatalf("alice's public pull: %+v", im)
	}
	for _, u := range []string{bob, eve, anon} {
		if got, code := tg.lookup(u, privTag); code != 200 || got.ID != id {
			t.Errorf("lookup of the now public tag as %q: %d", u, code)
		}
	}
	if m := storeTags(t, tg, id); !slices.Equal(m.Tags, []string{pubTag, privTag}) || !m.Public() {
		t.Errorf("metadata after the tag went public: tags %v ACL %v %v", m.Tags, m.UserACL, m.GroupACL)
	}
}

// TestExpirePrivateAndPublicTags: expiring one tag leaves the other's
// record; the files go with the last tag.
func TestExpirePrivateAndPublicTags(t *testing.T) {
	for _, tc := range []struct {
		name   string
		first  string // tag expired first, by root
		second string
	}{
		{"public first", pubTag, privTag},
		{"private first", privTag, pubTag},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakePuller()
			id := fakeID("the image")
			p.add(pubTag, fakeImage{id: id})
			p.add(privTag, fakeImage{id: id})
			tg := startGW(t, testConfig(t), p)
			tg.pullWait(bob, pubTag, nil)
			if im := tg.pullWait(alice, privTag, &api.PullRequest{AllowedUIDs: "1004"}); im.Status != api.StateReady {
				t.Fatalf("alice: %+v", im)
			}
			sq, js := imagestore.Paths(tg.cfg.Systems["sys"].ImageDir, id)
			// An administrator who may not see the private tag finds it
			// missing.
			if code, e := tg.errorOf("POST", "/api/expire/sys/docker/"+privTag+"/", admin); code != 404 || strings.Contains(e.Message, id) {
				t.Errorf("expire of alice's private tag by a non-root admin: %d %+v", code, e)
			}
			var res api.ExpireResult
			if code := tg.do("POST", "/api/expire/sys/docker/"+tc.first+"/", root, nil, &res); code != 200 ||
				!slices.Equal(res.Status, []string{id}) || len(res.Removed) != 0 {
				t.Fatalf("expire %s: %d %+v", tc.first, code, res)
			}
			if !fileExists(sq) || !fileExists(js) {
				t.Fatal("expire of one tag removed the files another tag names")
			}
			if _, code := tg.lookup(alice, tc.first); code != 404 {
				t.Errorf("lookup of the expired tag: %d", code)
			}
			if got, code := tg.lookup(alice, tc.second); code != 200 || got.ID != id {
				t.Errorf("lookup of the other tag after the expire: %d %+v", code, got)
			}
			var st api.Image
			if code := tg.do("GET", "/api/pull/sys/docker/"+tc.second+"/", map[string]string{pubTag: bob, privTag: alice}[tc.second], nil, &st); code != 200 || st.Status != api.StateReady {
				t.Errorf("pull record of the other tag: %d %s", code, st.Status)
			}
			m := storeTags(t, tg, id)
			if tc.second == pubTag && !slices.Equal(m.Tags, []string{pubTag}) || tc.second == privTag && len(m.Tags) != 0 {
				t.Errorf("metadata tags after expiring %s: %v", tc.first, m.Tags)
			}
			if tc.second == privTag {
				// Only alice's private tag is left: bob does not see the
				// image at all, as if it were gone.
				if tags := listTags(tg, bob, id); tags != nil {
					t.Errorf("bob lists the image of alice's private tag: %v", tags)
				}
				looksMissing(t, tg, bob, false)
			}
			if code := tg.do("POST", "/api/expire/sys/docker/"+tc.second+"/", root, nil, &res); code != 200 ||
				!slices.Equal(res.Status, []string{id}) || !slices.Equal(res.Removed, []string{id}) {
				t.Fatalf("expire %s: %d %+v", tc.second, code, res)
			}
			if fileExists(sq) || fileExists(js) {
				t.Error("the last tag's expire left the files")
			}
			for _, tag := range []string{pubTag, privTag} {
				if _, code := tg.lookup(root, tag); code != 404 {
					t.Errorf("lookup of %s after both expires: %d", tag, code)
				}
			}
			// Both may be pulled again.
			if im := tg.pullWait(alice, privTag, &api.PullRequest{AllowedUIDs: "1004"}); im.Status != api.StateReady {
				t.Errorf("re-pull after expire: %+v", im)
			}
		})
	}
}

// TestPrivateTagRealRegistry: gateway/pull against go-containerregistry's
// registry on 127.0.0.1 with one image in two repositories, a public one
// and one that needs credentials. The private pull resolves to the
// public image's digest; its tag stays private, out of <id>.json, and the
// runtime's path (store first, then the gateway's lookup and a load by
// id) gives it to its puller only.
func TestPrivateTagRealRegistry(t *testing.T) {
	testutil.RequireTool(t, "mksquashfs")
	reg := newTestRegistry(t)
	img, err := random.Image(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layer(t, map[string]string{"etc/os-release": "NAME=same\n"})); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	id := d.Hex
	for _, repo := range []string{"test/same:v1", "private/same:v1"} {
		ref, err := name.ParseReference(reg.host+"/"+repo, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "puller", Password: secret})); err != nil {
			t.Fatal(err)
		}
	}
	pub, priv := reg.host+"/test/same:v1", reg.host+"/private/same:v1"
	c := testConfig(t)
	c.Registries = map[string]Registry{reg.host: {Insecure: true}}
	c.Retries = 0
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := NewPuller(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg := startGW(t, c, p)
	dir := c.Systems["sys"].ImageDir
	if im := tg.pullWait(bob, pub, nil); im.Status != api.StateReady || im.ID != id {
		t.Fatalf("public pull: %s %q id %s want %s", im.Status, im.StatusMessage, im.ID, id)
	}
	sq, _ := imagestore.Paths(dir, id)
	before, err := os.Stat(sq)
	if err != nil {
		t.Fatal(err)
	}
	// Without credentials the registry refuses the private repository.
	if im := tg.pullWait(carol, priv, nil); im.Status != api.StateFailure || im.ID != "" {
		t.Errorf("carol's pull of the private repository: %s %q", im.Status, im.StatusMessage)
	}
	creds := &api.PullRequest{AuthorizedLocations: map[string]string{reg.host: "puller:" + secret}}
	if im := tg.pullWait(alice, priv, creds); im.Status != api.StateReady || im.ID != id || !slices.Equal(im.UserACL, []uint32{1001}) {
		t.Fatalf("alice's private pull: %+v", im)
	}
	if after, err := os.Stat(sq); err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the private pull of a published digest rewrote its squashfs: %v", err)
	}
	m, err := imagestore.Load(dir, id)
	if err != nil || !slices.Equal(m.Tags, []string{pub}) || !m.Public() {
		t.Fatalf("published metadata: %+v %v", m, err)
	}
	// The runtime: the store does not know the private tag...
	if _, err := imagestore.FindTag(dir, priv); !errors.Is(err, imagestore.ErrNotFound) {
		t.Errorf("the store resolves the private tag: %v", err)
	}
	// ...so it asks the gateway as the caller, and loads the id.
	for _, tc := range []struct {
		user string
		uid  uint32
		want bool
	}{{alice, 1001, true}, {root, 0, true}, {bob, 1002, false}, {carol, 1003, false}, {anon, 0, false}} {
		got, code := tg.lookup(tc.user, priv)
		if !tc.want {
			looksMissing2(t, tg, tc.user, priv, reg.host+"/private/nothere:v1")
			if tc.user != anon {
				if tags := listTags(tg, tc.user, id); !slices.Equal(tags, []string{pub}) {
					t.Errorf("list as %q: %v", tc.user, tags)
				}
			}
			continue
		}
		if code != 200 || got.ID != id {
			t.Errorf("lookup of the private tag as %q: %d %+v", tc.user, code, got)
			continue
		}
		if m, err := imagestore.Load(dir, got.ID); err != nil || !m.Allowed(tc.uid, nil) {
			t.Errorf("runtime load by id for %q: %v", tc.user, err)
		}
	}
	for _, u := range []string{bob, carol, anon} {
		if got, code := tg.lookup(u, pub); code != 200 || got.ID != id || !slices.Equal(got.Tag, []string{pub}) {
			t.Errorf("the public tag as %q: %d %v", u, code, got.Tag)
		}
	}
}

// TestMigrateAndRepair: a database of the previous layout (one tag index
// entry per tag) that holds the leak this layout had (alice's private tag
// on an image public through bob's tag, in the public <id>.json) is fixed
// at start-up: the index becomes bindings, the tag of a private pull her
// private one, and the metadata is rewritten from the database.
func TestMigrateAndRepair(t *testing.T) {
	p := newFakePuller()
	id := fakeID("the image")
	p.add(pubTag, fakeImage{id: id})
	p.add(privTag, fakeImage{id: id})
	c := testConfig(t)
	tg := startGW(t, c, p)
	tg.pullWait(bob, pubTag, nil)
	tg.pullWait(alice, privTag, &api.PullRequest{AllowedUIDs: "1004"})
	dir := c.Systems["sys"].ImageDir
	tg.close()

	// The old layout: t system itype tag -> id, job records without
	// "private", and the leaked tag in the metadata.
	db, err := OpenStore(filepath.Join(c.DataDir, "db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	err = db.update(func(t tx) error {
		binds, err := t.systemBindings("sys")
		if err != nil {
			return err
		}
		for _, b := range binds {
			if err := t.del(b.key()); err != nil {
				return err
			}
		}
		jobs, err := t.jobs(key(pfxJob, "sys", ""))
		if err != nil {
			return err
		}
		for _, j := range jobs {
			j.Private = false
			if err := t.put(j.key(), j); err != nil {
				return err
			}
		}
		for _, tag := range []string{pubTag, privTag} {
			if err := t.put(key(pfxTag, "sys", "docker", tag), id); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := imagestore.Load(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	m.Tags = []string{pubTag, privTag}
	if err := imagestore.WriteMetadata(dir, m); err != nil {
		t.Fatal(err)
	}

	tg.open()
	for _, tc := range []struct {
		user     string
		pub, prv bool
	}{{anon, true, false}, {bob, true, false}, {alice, true, true}, {dave, true, true}, {carol, true, false}} {
		got, code := tg.lookup(tc.user, pubTag)
		if code != 200 || got.ID != id || slices.Contains(got.Tag, privTag) != tc.prv {
			t.Errorf("lookup %s as %q after the migration: %d %+v", pubTag, tc.user, code, got)
		}
		if got, code := tg.lookup(tc.user, privTag); (code == 200) != tc.prv || (tc.prv && got.ID != id) {
			t.Errorf("lookup %s as %q after the migration: %d", privTag, tc.user, code)
		}
	}
	if m := storeTags(t, tg, id); !slices.Equal(m.Tags, []string{pubTag}) {
		t.Errorf("metadata after the repair: tags %v", m.Tags)
	}
	if !strings.Contains(tg.logs.String(), "image metadata disagrees with the database") {
		t.Error("the repair is not logged")
	}
	// Alice's pull record still answers through her (now private) tag.
	var st api.Image
	if code := tg.do("GET", "/api/pull/sys/docker/"+privTag+"/", alice, nil, &st); code != 200 || st.Status != api.StateReady || st.ID != id {
		t.Errorf("alice's pull record after the migration: %d %+v", code, st)
	}
}
