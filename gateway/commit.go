// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

// errRemovedDuringPull: the image was expired between its build and
// the job's commit.
var errRemovedDuringPull = errors.New("removed during the pull (expired?); pull again")

// commit records a built image as READY for job j: merge the job's grant
// into the image record and its tag into the job's binding (public, or
// the requester's own private one), write the metadata files of the
// images whose tags change, then commit the database (files first, so no
// READY record points at a missing file). Once the database says READY,
// it calls release, still under pubMu: expire, which takes pubMu, never
// finds the image READY and held by this job.
func (g *Gateway) commit(ctx context.Context, j *jobRecord, tr Transfer, meta *imagestore.Metadata, private bool, release func()) error {
	g.pubMu.Lock()
	defer g.pubMu.Unlock()
	now := g.now()
	var rec *imageRecord
	var binds []*bindRecord
	images := map[string]*imageRecord{}
	err := g.db.view(func(t tx) error {
		r, err := t.getImage(j.System, meta.ID)
		if err == nil {
			rec = r
		} else if !errors.Is(err, errNoKey) {
			return err
		}
		binds, err = t.systemBindings(j.System)
		return err
	})
	if err != nil {
		return fmt.Errorf("commit image: %w", err)
	}
	gr := jobGrant(j, private)
	cur := rec
	rec = &imageRecord{ID: meta.ID, System: j.System, Itype: j.Itype, Created: now}
	if cur != nil && cur.Status == api.StateReady {
		rec = cur
	}
	rec.Public, rec.UserACL, rec.GroupACL = grantACL(cur, gr)
	rec.Status = api.StateReady
	rec.Env, rec.Entry, rec.Cmd, rec.Workdir, rec.User, rec.Labels = meta.Env, meta.Entrypoint, meta.Cmd, meta.WorkDir, meta.User, meta.Labels
	rec.Size, rec.SHA256 = meta.Size, meta.SHA256
	rec.LastPull = now
	if exp := now.Add(g.cfg.Expiration.D()); exp.After(rec.Expiration) {
		rec.Expiration = exp
	}
	if !meta.Created.IsZero() {
		rec.Created = meta.Created
	}
	images[rec.ID] = rec

	j.Private = !gr.public
	binds, nb, drop, changed := bindTag(binds, gr, &bindRecord{System: j.System, Itype: j.Itype, Tag: j.Tag,
		Scope: j.bindScope(), ID: rec.ID, Pulled: now, Importer: j.importer()}, rec.Public)
	// The other images whose tags change (the tag moved off them).
	err = g.db.view(func(t tx) error {
		for _, id := range changed {
			if id == rec.ID {
				continue
			}
			if o, err := t.getImage(j.System, id); err == nil && o.Status == api.StateReady {
				images[id] = o
			} else if err != nil && !errors.Is(err, errNoKey) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit image: %w", err)
	}
	// An admin may have expired the image between the build and now.
	if _, err := tr.Load(ctx, meta.ID); err != nil {
		return fmt.Errorf("image %s: %w: %w", meta.ID, errRemovedDuringPull, err)
	}
	if err := tr.WriteMetadata(ctx, rec.metadata(binds)); err != nil {
		return fmt.Errorf("commit image: %w", err)
	}
	for _, id := range changed {
		if o := images[id]; o != nil && id != rec.ID {
			if err := tr.WriteMetadata(ctx, o.metadata(binds)); err != nil {
				g.log.Error("untag previous image", "system", j.System, "id", id, "err", err)
			}
		}
	}
	err = g.db.update(func(t tx) error {
		// Keep lookups that refreshed the records meanwhile.
		if cur, err := t.getImage(j.System, rec.ID); err == nil {
			if cur.Expiration.After(rec.Expiration) {
				rec.Expiration = cur.Expiration
			}
			if cur.LastLookup.After(rec.LastLookup) {
				rec.LastLookup = cur.LastLookup
			}
		}
		if cur, err := t.getBind(nb.key()); err == nil && cur.Looked.After(nb.Looked) {
			nb.Looked = cur.Looked
		}
		if err := t.putImage(rec); err != nil {
			return err
		}
		if err := t.put(nb.key(), nb); err != nil {
			return err
		}
		for _, b := range drop {
			if err := t.del(b.key()); err != nil {
				return err
			}
		}
		j.Status, j.Message, j.Done, j.Total = api.StateReady, "image ready", 0, 0
		j.Finished, j.Updated = now, now
		return t.put(j.key(), j)
	})
	if err == nil {
		release()
	}
	return err
}

// withdraw removes all of an image's bindings and moves the READY jobs
// that produced it to state.
func (g *Gateway) withdraw(t tx, r *imageRecord, state, msg string, now time.Time) error {
	binds, err := t.imageBindings(r.System, r.ID)
	if err != nil {
		return err
	}
	for _, b := range binds {
		if err := t.del(b.key()); err != nil {
			return err
		}
	}
	jobs, err := t.jobs(key(pfxJob, r.System, r.Itype, ""))
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.ID == r.ID && j.Status == api.StateReady {
			j.Status, j.Message, j.Updated, j.Finished = state, msg, now, now
			if err := t.put(j.key(), j); err != nil {
				return err
			}
		}
	}
	return nil
}
