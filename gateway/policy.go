// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"slices"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

// visible reports whether a caller may see the image.
func (r *imageRecord) visible(id *Identity) bool {
	if r.Public {
		return true
	}
	if id == nil || !id.Authenticated {
		return false
	}
	if id.UID == 0 {
		return true
	}
	for _, u := range r.UserACL {
		if u == id.UID {
			return true
		}
	}
	for _, g := range r.GroupACL {
		for _, h := range id.Groups {
			if g == h {
				return true
			}
		}
	}
	return false
}

// visible reports whether a caller may see the binding; img is the
// image it names. A binding of an image that is not READY, or that the
// caller may not use, is never visible.
func (b *bindRecord) visible(id *Identity, img *imageRecord) bool {
	if img == nil || img.ID != b.ID || img.Status != api.StateReady || !img.visible(id) {
		return false
	}
	return b.allows(id)
}

// allows reports whether the binding's own ACL admits a caller: always
// for a public binding; for a private one, root and those on its ACL.
func (b *bindRecord) allows(id *Identity) bool {
	if !b.private() {
		return true
	}
	if id == nil || !id.Authenticated {
		return false
	}
	if id.UID == 0 || slices.Contains(b.UserACL, id.UID) {
		return true
	}
	for _, g := range id.Groups {
		if slices.Contains(b.GroupACL, g) {
			return true
		}
	}
	return false
}

// onACL reports whether a uid or primary gid is on a private image's ACL.
func (r *imageRecord) onACL(uid, gid uint32) bool {
	return uid == 0 || slices.Contains(r.UserACL, uid) || slices.Contains(r.GroupACL, gid)
}

func union(a, b []uint32) []uint32 {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// metadata gives the image store metadata of a record. Its tags are
// those of binds (any list holding the image's bindings) that everyone
// the metadata admits may see: the public bindings, and private ones
// whose ACL covers the image's whole ACL. A private tag of an image that
// is public (or shared wider) through other grants is never written: the
// runtime resolves it through the gateway's lookup, which answers the id.
// Only docker tags are written: the store's tags are docker references,
// and a custom (imported) tag written there would be taken for the
// docker reference of the same spelling; custom tags are resolved
// through the gateway's lookup.
func (r *imageRecord) metadata(binds []*bindRecord) *imagestore.Metadata {
	m := &imagestore.Metadata{
		ID: r.ID, Format: imagestore.FormatSquashfs, Tags: []string{},
		Env: r.Env, Entrypoint: r.Entry, Cmd: r.Cmd, WorkDir: r.Workdir, User: r.User, Labels: r.Labels,
		UserACL: []uint32{}, GroupACL: []uint32{}, Created: r.Created.UTC(), Size: r.Size, SHA256: r.SHA256,
	}
	if !r.Public {
		m.UserACL, m.GroupACL = slices.Clone(r.UserACL), slices.Clone(r.GroupACL)
		if len(m.UserACL) == 0 && len(m.GroupACL) == 0 {
			m.UserACL = []uint32{0} // private with an empty ACL: root only, never public
		}
		if m.UserACL == nil {
			m.UserACL = []uint32{}
		}
		if m.GroupACL == nil {
			m.GroupACL = []uint32{}
		}
	}
	for _, b := range binds {
		if b.ID != r.ID || b.System != r.System || b.Itype == itypeCustom || slices.Contains(m.Tags, b.Tag) {
			continue
		}
		if b.private() && (m.Public() || !subset(m.UserACL, b.UserACL) || !subset(m.GroupACL, b.GroupACL)) {
			continue
		}
		m.Tags = append(m.Tags, b.Tag)
	}
	slices.Sort(m.Tags)
	return m
}

// subset reports whether every element of a is in b.
func subset(a, b []uint32) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// grant is what one pull grants on the image it made: public (no ACL
// asked for, manifest served anonymously), or private to an ACL that
// always holds the requester.
type grant struct {
	uid, gid      uint32
	public        bool
	users, groups []uint32 // private: the ACL (requester included)
}

// jobGrant gives the grant of job j; private: the registry needed the
// requester's credentials.
func jobGrant(j *jobRecord, private bool) grant {
	gr := grant{uid: j.UID, gid: j.GID, public: !private && !j.Requested}
	if !gr.public {
		gr.users = slices.Clone(j.UserACL)
		if !slices.Contains(gr.users, j.UID) {
			gr.users = append(gr.users, j.UID)
		}
		gr.groups = slices.Clone(j.GroupACL)
	}
	return gr
}

// grantACL gives an image's visibility and ACL after a grant; cur is its
// record (nil, or not READY, for an image new to the database):
//
//   - a new image takes the grant's visibility and ACL;
//   - a public pull makes a public image of a private one, unless the
//     requester is not on its ACL: then it adds that user only (nobody
//     changes the ACL of an image they cannot see);
//   - a private pull of a private image widens its ACL; of a public
//     image, changes nothing (the tag stays private: bindTag).
func grantACL(cur *imageRecord, g grant) (public bool, users, groups []uint32) {
	switch {
	case cur == nil || cur.Status != api.StateReady:
		if g.public {
			return true, nil, nil
		}
		return false, slices.Clone(g.users), slices.Clone(g.groups)
	case g.public && !cur.Public && !cur.onACL(g.uid, g.gid):
		return false, union(cur.UserACL, []uint32{g.uid}), slices.Clone(cur.GroupACL)
	case g.public:
		return true, nil, nil
	case !cur.Public:
		return false, union(cur.UserACL, g.users), union(cur.GroupACL, g.groups)
	default:
		return true, slices.Clone(cur.UserACL), slices.Clone(cur.GroupACL)
	}
}

// bindTag gives a system's tag bindings after a grant binds a tag: nb,
// the binding the pull makes (the public one, or the requester's own
// private one, by its scope), replaces the binding of its key, keeping
// its last lookup and, when private, its earlier grants (a private
// binding's ACL only grows). When the requester pulls publicly a tag
// they had pulled privately and the image is public (imagePublic, after
// grantACL), the tag is visible to everyone now, and their private
// binding goes (drop). changed lists the images whose tags change: the
// new one first, then those the tag moved off. The inputs are not
// modified.
func bindTag(binds []*bindRecord, g grant, nb *bindRecord, imagePublic bool) (out []*bindRecord, bound *bindRecord, drop []*bindRecord, changed []string) {
	b0 := *nb
	bound = &b0
	if !g.public {
		bound.UserACL, bound.GroupACL = slices.Clone(g.users), slices.Clone(g.groups)
	}
	changed = []string{bound.ID}
	change := func(id string) {
		if !slices.Contains(changed, id) {
			changed = append(changed, id)
		}
	}
	out = make([]*bindRecord, 0, len(binds)+1)
	for _, b := range binds {
		switch {
		case string(b.key()) == string(bound.key()):
			change(b.ID)
			bound.Looked = b.Looked
			if !g.public {
				bound.UserACL, bound.GroupACL = union(b.UserACL, bound.UserACL), union(b.GroupACL, bound.GroupACL)
			}
		case g.public && imagePublic && b.Tag == bound.Tag && b.Itype == bound.Itype && b.System == bound.System && b.Scope == scopeOf(g.uid):
			change(b.ID)
			drop = append(drop, b)
		default:
			out = append(out, b)
		}
	}
	return append(out, bound), bound, drop, changed
}
