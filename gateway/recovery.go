// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

// reconcile makes the database agree with the image stores after a
// crash: temporary files are removed, READY records whose files are gone
// are withdrawn (their pulls marked FAILURE), and unfinished jobs are
// queued again. Published images the database does not know (a damaged
// database) disable expiry and removal: checkAgreement.
func (g *Gateway) reconcile() error {
	ctx, cancel := context.WithTimeout(g.ctx, 5*time.Minute)
	defer cancel()
	for _, name := range g.cfg.SystemNames() {
		if err := g.transfers[name].CleanTemp(ctx); err != nil {
			g.log.Error("clean temporary files", "system", name, "err", err)
		}
	}
	if err := g.migrateTags(); err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	if err := g.checkAgreement(ctx); err != nil {
		// Unsure whether the database knows every image: remove nothing.
		g.damaged = err
		g.log.Error("expiry and removal are disabled until the next start", "err", err)
	}
	var missing []*imageRecord
	for _, name := range g.cfg.SystemNames() {
		var recs []*imageRecord
		var binds []*bindRecord
		if err := g.db.view(func(t tx) (err error) {
			if recs, err = t.images(name); err != nil {
				return err
			}
			binds, err = t.systemBindings(name)
			return err
		}); err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		for _, r := range recs {
			if r.Status != api.StateReady {
				continue
			}
			m, err := g.transfers[name].Load(ctx, r.ID)
			if errors.Is(err, imagestore.ErrNotFound) || errors.Is(err, imagestore.ErrInvalid) {
				missing = append(missing, r)
				continue
			} else if err != nil {
				g.log.Error("check published image", "system", name, "id", r.ID, "err", err)
				continue
			}
			// Make the metadata agree with the database: its tags and ACL
			// (this also takes out private tags that earlier versions
			// wrote into public images' metadata).
			want := r.metadata(binds)
			if !slices.Equal(m.Tags, want.Tags) || !slices.Equal(m.UserACL, want.UserACL) || !slices.Equal(m.GroupACL, want.GroupACL) {
				g.log.Warn("image metadata disagrees with the database; rewritten", "system", name, "id", r.ID)
				if err := g.transfers[name].WriteMetadata(ctx, want); err != nil {
					g.log.Error("rewrite image metadata", "system", name, "id", r.ID, "err", err)
				}
			} else if err := g.transfers[name].SetModes(ctx, want); err != nil {
				// Files published world-readable by earlier versions.
				g.log.Error("set image file modes", "system", name, "id", r.ID, "err", err)
			}
		}
	}
	now := g.now()
	for _, r := range missing {
		g.log.Warn("published image missing from the image store; withdrawn", "system", r.System, "id", r.ID)
		err := g.db.update(func(t tx) error {
			if err := g.withdraw(t, r, api.StateFailure, "the image's files are missing from the image store; pull again", now); err != nil {
				return err
			}
			return t.del(key(pfxImage, r.System, r.ID))
		})
		if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		if g.damaged != nil {
			continue
		}
		if err := g.transfers[r.System].Remove(ctx, r.ID); err != nil {
			g.log.Error("remove incomplete image", "system", r.System, "id", r.ID, "err", err)
		}
	}
	var pending []*jobRecord
	err := g.db.update(func(t tx) error {
		jobs, err := t.jobs([]byte(pfxJob))
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if terminal(j.Status) {
				continue
			}
			j.Status, j.Message, j.Updated = api.StatePending, "queued again after a gateway restart", now
			j.Done, j.Total = 0, 0
			if err := t.put(j.key(), j); err != nil {
				return err
			}
			pending = append(pending, j)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	sort.Slice(pending, func(a, b int) bool { return pending[a].Seq < pending[b].Seq })
	for _, j := range pending {
		g.log.Info("pull queued again after restart", "system", j.System, "tag", j.Tag, "attempts", j.Attempts)
		g.enqueue(string(j.key()), j.System, j.Seq, nil)
	}
	return nil
}

// migrateTags turns the tag index of earlier versions (one entry per tag,
// visible to whoever may use the image) into bindings. A tag that a READY
// private pull (an ACL, or registry credentials) made, and no READY public
// pull, becomes that puller's private binding with the pull's ACL: earlier
// versions showed such a tag to everyone when the image was public through
// another tag. Any other tag becomes the public binding, with the
// visibility it had.
func (g *Gateway) migrateTags() error {
	type legacy struct {
		k  []byte
		id string
	}
	var old []legacy
	err := g.db.view(func(t tx) error {
		return t.scan([]byte(pfxTag), func(k []byte, val func(any) error) error {
			var id string
			if err := val(&id); err != nil {
				id = ""
			}
			old = append(old, legacy{k, id})
			return nil
		})
	})
	if err != nil || len(old) == 0 {
		return err
	}
	g.log.Info("migrating the tag index to tag bindings", "tags", len(old))
	for len(old) > 0 {
		batch := old[:min(len(old), 500)]
		old = old[len(batch):]
		err := g.db.update(func(t tx) error {
			for _, l := range batch {
				f := strings.Split(strings.TrimPrefix(string(l.k), pfxTag), "\x00")
				if len(f) != 3 || !imagestore.ValidID(l.id) {
					g.log.Warn("dropped malformed legacy tag entry", "key", fmt.Sprintf("%q", l.k))
					if err := t.del(l.k); err != nil {
						return err
					}
					continue
				}
				sys, itype, tag := f[0], f[1], f[2]
				jobs, err := t.jobs(append(key(pfxJob, sys, itype, tag), 0))
				if err != nil {
					return err
				}
				var binds []*bindRecord
				public := false
				for _, j := range jobs {
					if j.Status != api.StateReady || j.ID != l.id {
						continue
					}
					if j.Scope == "" {
						public = true
						continue
					}
					j.Private = true
					b := &bindRecord{System: sys, Itype: itype, Tag: tag, Scope: j.bindScope(), ID: l.id,
						UserACL: union(j.UserACL, []uint32{j.UID}), GroupACL: slices.Clone(j.GroupACL), Pulled: j.Finished}
					binds = append(binds, b)
					if err := t.put(j.key(), j); err != nil {
						return err
					}
				}
				if public || len(binds) == 0 {
					b := &bindRecord{System: sys, Itype: itype, Tag: tag, ID: l.id}
					if img, err := t.getImage(sys, l.id); err == nil {
						b.Pulled = img.LastPull
					}
					binds = append(binds, b)
				}
				for _, b := range binds {
					if err := t.put(b.key(), b); err != nil {
						return err
					}
				}
				if err := t.del(l.k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("migrate tags: %w", err)
		}
	}
	return nil
}
