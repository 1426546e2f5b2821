// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"slices"
	"strconv"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
)

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// view gives the API record of an image as a caller sees it through the
// bindings they may see (vis, all naming this image): their tags, the
// last pull and the expiration through them (so that others' private
// tags do not show, even as a refreshed time), and of a private image's
// ACL only what those bindings and the caller's own entries account for
// (root sees the whole ACL).
func (r *imageRecord) view(id *Identity, vis []*bindRecord, expiration time.Duration) api.Image {
	im := api.Image{
		ID: r.ID, System: r.System, Itype: r.Itype, Tag: []string{}, Status: r.Status,
		StatusMessage: "", UserACL: []uint32{}, GroupACL: []uint32{},
		Env: r.Env, Entry: r.Entry, Cmd: r.Cmd, Workdir: r.Workdir, Labels: r.Labels, Size: r.Size,
	}
	var pulled, used time.Time
	var users, groups []uint32
	for _, b := range vis {
		if !slices.Contains(im.Tag, b.Tag) {
			im.Tag = append(im.Tag, b.Tag)
		}
		if b.Pulled.After(pulled) {
			pulled = b.Pulled
		}
		if b.lastUse().After(used) {
			used = b.lastUse()
		}
		if b.private() {
			users, groups = union(users, b.UserACL), union(groups, b.GroupACL)
		}
	}
	slices.Sort(im.Tag)
	im.LastPull = unixSeconds(pulled)
	if !used.IsZero() {
		im.Expiration = unixSeconds(used.Add(expiration))
	}
	if !r.Public {
		if id != nil && id.Authenticated && id.UID == 0 {
			users, groups = r.UserACL, r.GroupACL
		} else if id != nil && id.Authenticated {
			if slices.Contains(r.UserACL, id.UID) {
				users = union(users, []uint32{id.UID})
			}
			for _, g := range id.Groups {
				if slices.Contains(r.GroupACL, g) {
					groups = union(groups, []uint32{g})
				}
			}
		}
		im.UserACL = append(im.UserACL, users...)
		im.GroupACL = append(im.GroupACL, groups...)
	}
	if im.Env == nil {
		im.Env = []string{}
	}
	if im.Entry == nil {
		im.Entry = []string{}
	}
	if im.Cmd == nil {
		im.Cmd = []string{}
	}
	if im.Labels == nil {
		im.Labels = map[string]string{}
	}
	return im
}

// tagView gives the API record of an image reached through binding b:
// the caller's view of the image, with the binding's own ACL when it is
// private (the tag is visible to that ACL, whatever the image's).
func (r *imageRecord) tagView(id *Identity, b *bindRecord, vis []*bindRecord, expiration time.Duration) api.Image {
	im := r.view(id, vis, expiration)
	if b.private() {
		im.UserACL = append([]uint32{}, b.UserACL...)
		im.GroupACL = append([]uint32{}, b.GroupACL...)
	}
	return im
}

// jobView gives the API record of a pull job; a READY job carries its
// image's fields when img (the caller's view of it) is given.
func jobView(j *jobRecord, img *api.Image) api.Image {
	var im api.Image
	if img != nil && j.Status == api.StateReady {
		im = *img
	} else {
		im = api.Image{ID: j.ID, System: j.System, Itype: j.Itype, Tag: []string{j.Tag},
			UserACL: []uint32{}, GroupACL: []uint32{}, Env: []string{}, Entry: []string{}, Cmd: []string{},
			Labels: map[string]string{}}
		if j.Requested {
			im.UserACL = append(im.UserACL, j.UserACL...)
			im.GroupACL = append(im.GroupACL, j.GroupACL...)
		}
		im.LastPull = unixSeconds(j.Finished)
	}
	im.Pulltag = j.Tag
	im.Status, im.StatusMessage = j.Status, j.Message
	if j.Status == api.StatePulling || j.Status == api.StateConversion || j.Status == api.StateTransfer || j.Status == api.StateHashing {
		if j.Done > 0 || j.Total > 0 {
			im.Progress = &api.Progress{BytesDone: j.Done, BytesTotal: j.Total}
		}
	}
	return im
}

func scopeOf(uid uint32) string { return "u" + strconv.FormatUint(uint64(uid), 10) }
