// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"slices"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

// ids of the policy tests.
const (
	idA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func caller(uid uint32, groups ...uint32) *Identity {
	return &Identity{Authenticated: true, UID: uid, GID: uid, Groups: append([]uint32{uid}, groups...)}
}

func TestJobGrant(t *testing.T) {
	for _, tc := range []struct {
		name    string
		j       jobRecord
		private bool
		want    grant
	}{
		{"public", jobRecord{UID: 1001, GID: 1001}, false, grant{uid: 1001, gid: 1001, public: true}},
		{"credentials make it private", jobRecord{UID: 1001, GID: 1001}, true,
			grant{uid: 1001, gid: 1001, users: []uint32{1001}, groups: nil}},
		{"an ACL asked for", jobRecord{UID: 1001, GID: 1001, UserACL: []uint32{1004}, GroupACL: []uint32{5000}, Requested: true}, false,
			grant{uid: 1001, gid: 1001, users: []uint32{1004, 1001}, groups: []uint32{5000}}},
		{"requester already on it", jobRecord{UID: 1001, UserACL: []uint32{1001, 1004}, Requested: true}, false,
			grant{uid: 1001, users: []uint32{1001, 1004}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := jobGrant(&tc.j, tc.private)
			if g.uid != tc.want.uid || g.gid != tc.want.gid || g.public != tc.want.public ||
				!slices.Equal(g.users, tc.want.users) || !slices.Equal(g.groups, tc.want.groups) {
				t.Errorf("jobGrant = %+v, want %+v", g, tc.want)
			}
		})
	}
}

func TestGrantACL(t *testing.T) {
	pub := grant{uid: 1002, gid: 1002, public: true}
	privAlice := grant{uid: 1001, gid: 1001, users: []uint32{1004, 1001}, groups: []uint32{5000}}
	ready := func(public bool, users, groups []uint32) *imageRecord {
		return &imageRecord{Status: api.StateReady, Public: public, UserACL: users, GroupACL: groups}
	}
	for _, tc := range []struct {
		name          string
		cur           *imageRecord
		g             grant
		public        bool
		users, groups []uint32
	}{
		{"new image, public pull", nil, pub, true, nil, nil},
		{"new image, private pull", nil, privAlice, false, []uint32{1004, 1001}, []uint32{5000}},
		{"expired record counts as new", &imageRecord{Status: api.StateExpired, Public: true}, privAlice, false, []uint32{1004, 1001}, []uint32{5000}},
		{"public pull by one on the ACL makes it public", ready(false, []uint32{1002}, nil), pub, true, nil, nil},
		{"public pull by a group member makes it public", ready(false, []uint32{1001}, []uint32{1002}), pub, true, nil, nil},
		{"public pull by root makes it public", ready(false, []uint32{1001}, nil), grant{public: true}, true, nil, nil},
		{"public pull by one not on the ACL adds only them", ready(false, []uint32{1001}, []uint32{5000}), pub, false, []uint32{1001, 1002}, []uint32{5000}},
		{"private pull widens a private ACL", ready(false, []uint32{1003}, []uint32{7}), privAlice, false, []uint32{1003, 1004, 1001}, []uint32{7, 5000}},
		{"private pull leaves a public image public", ready(true, nil, nil), privAlice, true, nil, nil},
		{"public pull of a public image", ready(true, nil, nil), pub, true, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before *imageRecord
			if tc.cur != nil {
				c := *tc.cur
				before = &c
			}
			public, users, groups := grantACL(tc.cur, tc.g)
			if public != tc.public || !slices.Equal(users, tc.users) || !slices.Equal(groups, tc.groups) {
				t.Errorf("grantACL = %v %v %v, want %v %v %v", public, users, groups, tc.public, tc.users, tc.groups)
			}
			if tc.cur != nil && (tc.cur.Public != before.Public || !slices.Equal(tc.cur.UserACL, before.UserACL)) {
				t.Errorf("grantACL changed its input: %+v", tc.cur)
			}
		})
	}
}

func TestBindTag(t *testing.T) {
	now := time.Unix(1e9, 0)
	b := func(tag, scope, id string, users ...uint32) *bindRecord {
		return &bindRecord{System: "sys", Itype: "docker", Tag: tag, Scope: scope, ID: id, UserACL: users, Pulled: now.Add(-time.Hour), Looked: now.Add(-time.Minute)}
	}
	pubAlice := grant{uid: 1001, gid: 1001, public: true}
	privAlice := grant{uid: 1001, gid: 1001, users: []uint32{1001, 1004}}
	for _, tc := range []struct {
		name        string
		binds       []*bindRecord
		g           grant
		nb          *bindRecord
		imagePublic bool
		want        []string // key of each binding after, "scope=id"
		wantACL     []uint32 // the bound binding's users
		drop        int
		changed     []string
	}{
		{"first public pull", nil, pubAlice, b("x:1", "", idA), true, []string{"=" + idA}, nil, 0, []string{idA}},
		{"tag moves to a new digest", []*bindRecord{b("x:1", "", idA)}, pubAlice, b("x:1", "", idB), true,
			[]string{"=" + idB}, nil, 0, []string{idB, idA}},
		{"private binding's ACL only grows", []*bindRecord{b("x:1", "u1001", idA, 1001, 1003)}, privAlice, b("x:1", "u1001", idA), false,
			[]string{"u1001=" + idA}, []uint32{1001, 1003, 1004}, 0, []string{idA}},
		{"others' bindings stay", []*bindRecord{b("x:1", "u1002", idA, 1002), b("y:1", "", idA)}, privAlice, b("x:1", "u1001", idA), true,
			[]string{"u1002=" + idA, "=" + idA, "u1001=" + idA}, []uint32{1001, 1004}, 0, []string{idA}},
		{"public pull of one's private tag of a public image drops it", []*bindRecord{b("x:1", "u1001", idA, 1001)}, pubAlice, b("x:1", "", idA), true,
			[]string{"=" + idA}, nil, 1, []string{idA}},
		{"public pull of one's private tag of an image still private keeps it", []*bindRecord{b("x:1", "u1001", idA, 1001)}, pubAlice, b("x:1", "", idA), false,
			[]string{"u1001=" + idA, "=" + idA}, nil, 0, []string{idA}},
		{"another user's private tag stays on a public pull", []*bindRecord{b("x:1", "u1002", idB, 1002)}, pubAlice, b("x:1", "", idA), true,
			[]string{"u1002=" + idB, "=" + idA}, nil, 0, []string{idA}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nb := *tc.nb
			out, bound, drop, changed := bindTag(tc.binds, tc.g, &nb, tc.imagePublic)
			var got []string
			for _, x := range out {
				got = append(got, x.Scope+"="+x.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("bindings %q, want %q", got, tc.want)
			}
			if out[len(out)-1] != bound || !slices.Equal(bound.UserACL, tc.wantACL) {
				t.Errorf("bound %+v, want last with users %v", bound, tc.wantACL)
			}
			if len(drop) != tc.drop || !slices.Equal(changed, tc.changed) {
				t.Errorf("drop %d changed %v, want %d %v", len(drop), changed, tc.drop, tc.changed)
			}
			for _, old := range tc.binds {
				if old.Tag == bound.Tag && old.Scope == bound.Scope && !bound.Looked.Equal(old.Looked) {
					t.Errorf("bound binding lost its last lookup")
				}
			}
			if nb.UserACL != nil && tc.nb.UserACL == nil || !nb.Looked.Equal(tc.nb.Looked) {
				t.Errorf("bindTag changed its input binding: %+v", nb)
			}
		})
	}
}

// TestMetadataTags: the tags written into an image's metadata are those
// everyone the metadata admits may see. A private tag of a public image
// (the delicate case) is never written.
func TestMetadataTags(t *testing.T) {
	pub := &imageRecord{ID: idA, System: "sys", Status: api.StateReady, Public: true}
	priv := &imageRecord{ID: idA, System: "sys", Status: api.StateReady, UserACL: []uint32{1001, 1004}, GroupACL: []uint32{5000}}
	bind := func(tag, scope string, users, groups []uint32) *bindRecord {
		return &bindRecord{System: "sys", Itype: "docker", Tag: tag, Scope: scope, ID: idA, UserACL: users, GroupACL: groups}
	}
	for _, tc := range []struct {
		name        string
		rec         *imageRecord
		binds       []*bindRecord
		tags        []string
		users, grps []uint32
	}{
		{"public image, public tag", pub, []*bindRecord{bind("a:1", "", nil, nil)}, []string{"a:1"}, []uint32{}, []uint32{}},
		{"private tag on a public digest is not written", pub,
			[]*bindRecord{bind("a:1", "", nil, nil), bind("secret:1", "u1001", []uint32{1001}, nil)}, []string{"a:1"}, []uint32{}, []uint32{}},
		{"private tag covering the image's ACL is written", priv,
			[]*bindRecord{bind("s:1", "u1001", []uint32{1001, 1004}, []uint32{5000})}, []string{"s:1"}, []uint32{1001, 1004}, []uint32{5000}},
		{"private tag narrower than the image's ACL is not", priv,
			[]*bindRecord{bind("s:1", "u1001", []uint32{1001, 1004}, []uint32{5000}), bind("t:1", "u1004", []uint32{1004}, nil)},
			[]string{"s:1"}, []uint32{1001, 1004}, []uint32{5000}},
		{"other images' and systems' bindings ignored", pub,
			[]*bindRecord{{System: "sys", Tag: "b:1", ID: idB}, {System: "other", Tag: "c:1", ID: idA}}, []string{}, []uint32{}, []uint32{}},
		{"private with an empty ACL is root only", &imageRecord{ID: idA, System: "sys"}, nil, []string{}, []uint32{0}, []uint32{}},
		{"tags sorted, no duplicates", pub,
			[]*bindRecord{bind("b:1", "", nil, nil), bind("a:1", "", nil, nil), bind("b:1", "", nil, nil)}, []string{"a:1", "b:1"}, []uint32{}, []uint32{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.rec.metadata(tc.binds)
			if !slices.Equal(m.Tags, tc.tags) || !slices.Equal(m.UserACL, tc.users) || !slices.Equal(m.GroupACL, tc.grps) {
				t.Errorf("metadata tags %q acl %v %v, want %q %v %v", m.Tags, m.UserACL, m.GroupACL, tc.tags, tc.users, tc.grps)
			}
			if m.Tags == nil || m.UserACL == nil || m.GroupACL == nil {
				t.Errorf("metadata has a null list: %+v", m)
			}
			if err := m.Validate(); err != nil {
				t.Error(err)
			}
			if m.Format != imagestore.FormatSquashfs {
				t.Errorf("format %q", m.Format)
			}
		})
	}
}

// TestBindingVisibility: who sees a tag binding. A private binding is
// seen by its own ACL and root only, even when the image is public.
func TestBindingVisibility(t *testing.T) {
	pub := &imageRecord{ID: idA, Status: api.StateReady, Public: true}
	priv := &imageRecord{ID: idA, Status: api.StateReady, UserACL: []uint32{1001, 1002}, GroupACL: []uint32{5000}}
	expired := &imageRecord{ID: idA, Status: api.StateExpired, Public: true}
	public := &bindRecord{ID: idA}
	alices := &bindRecord{ID: idA, Scope: "u1001", UserACL: []uint32{1001}, GroupACL: []uint32{5000}}
	anonymous := &Identity{Source: "none"}
	for _, tc := range []struct {
		name string
		b    *bindRecord
		img  *imageRecord
		id   *Identity
		want bool
	}{
		{"public tag of a public image, anonymous", public, pub, anonymous, true},
		{"public tag of a private image, not on ACL", public, priv, caller(1003), false},
		{"public tag of a private image, on ACL", public, priv, caller(1002), true},
		{"public tag of a private image, by group", public, priv, caller(1009, 5000), true},
		{"private tag of a public image, anonymous", alices, pub, anonymous, false},
		{"private tag of a public image, other user", alices, pub, caller(1002), false},
		{"private tag of a public image, owner", alices, pub, caller(1001), true},
		{"private tag of a public image, its group", alices, pub, caller(1007, 5000), true},
		{"private tag of a public image, root", alices, pub, caller(0), true},
		{"private tag of a private image, on image ACL only", alices, priv, caller(1002), false},
		{"image not READY", public, expired, caller(0), false},
		{"binding of another image", &bindRecord{ID: idB}, pub, caller(0), false},
		{"no image", public, nil, caller(0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.b.visible(tc.id, tc.img); got != tc.want {
				t.Errorf("visible = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestGatewayOnMemoryRecords runs the pull, commit and lookup path on
// the in-memory records: a private tag on a public digest.
func TestGatewayOnMemoryRecords(t *testing.T) {
	p := newFakePuller()
	id := p.add(pubTag, fakeImage{})
	p.add(privTag, fakeImage{id: id, creds: "alice:pw"})
	c := testConfig(t)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tg := &testGW{t: t, cfg: c, puller: p, clock: &fakeClock{}, logs: &syncBuffer{}}
	tg.opts = Options{Config: c, Puller: p, Auth: testAuth, Now: tg.clock.now, records: newMemRecords()}
	tg.open()
	t.Cleanup(tg.close)
	if _, ok := tg.g.db.(*memRecords); !ok {
		t.Fatalf("gateway runs on %T", tg.g.db)
	}
	if im := tg.pullWait(bob, pubTag, nil); im.Status != api.StateReady || im.ID != id {
		t.Fatalf("public pull: %s %q", im.Status, im.StatusMessage)
	}
	im := tg.pullWait(alice, privTag, &api.PullRequest{AuthorizedLocations: map[string]string{"reg2.example.org": "alice:pw"}})
	if im.Status != api.StateReady || im.ID != id {
		t.Fatalf("private pull: %s %q", im.Status, im.StatusMessage)
	}
	if _, code := tg.lookup(alice, privTag); code != 200 {
		t.Errorf("alice's lookup of her private tag: %d", code)
	}
	if _, code := tg.lookup(bob, privTag); code != 404 {
		t.Errorf("bob's lookup of alice's private tag: %d, want 404", code)
	}
	m, err := imagestore.Load(c.Systems["sys"].ImageDir, id)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Public() || !slices.Equal(m.Tags, []string{pubTag}) {
		t.Errorf("metadata: public %v tags %q, want public with %q only", m.Public(), m.Tags, pubTag)
	}
}
