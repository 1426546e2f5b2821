// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
)

// inUse reports whether a pull job is working on image id of a system.
// Callers hold pubMu.
func (g *Gateway) inUse(sys, id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight[sys+"\x00"+id] > 0
}

// expireImage withdraws image id (record EXPIRED, tags removed) and then
// removes its files. With a non-zero before, only an image whose
// expiration is still before it is expired (a lookup may have refreshed
// it). It reports false, without changes, when the image is in use by a
// pull job or no longer due.
func (g *Gateway) expireImage(ctx context.Context, sys, id string, before time.Time) (bool, error) {
	if err := g.refuseIfDamaged(); err != nil {
		return false, err
	}
	g.pubMu.Lock()
	defer g.pubMu.Unlock()
	if g.inUse(sys, id) {
		return false, nil
	}
	now := g.now()
	done := false
	err := g.db.update(func(t tx) error {
		done = false
		rec, err := t.getImage(sys, id)
		if err != nil {
			return err
		}
		if rec.Status != api.StateReady || (!before.IsZero() && !rec.Expiration.Before(before)) {
			return nil
		}
		if err := g.withdraw(t, rec, api.StateExpired, "image expired", now); err != nil {
			return err
		}
		rec.Status = api.StateExpired
		done = true
		return t.putImage(rec)
	})
	if errors.Is(err, errNoKey) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("expire image %s: %w", id, err)
	}
	if !done {
		return false, nil
	}
	// The database no longer points at the files: remove them. Jobs that
	// have the squashfs open keep reading it (unlink, not truncate).
	if err := g.transfers[sys].Remove(ctx, id); err != nil {
		return true, fmt.Errorf("expire image %s: %w", id, err)
	}
	g.m.expired.WithLabelValues(sys).Inc()
	return true, nil
}

// Autoexpire expires the system's images whose expiration has passed
// (no lookup or pull within the expiration window) and that no pull job
// is using, forgets old failed pulls, and removes image files that no
// READY record references and that were not touched for job_timeout.
func (g *Gateway) Autoexpire(ctx context.Context, sys string) (api.ExpireResult, error) {
	res := api.ExpireResult{Status: []string{}}
	if err := g.refuseIfDamaged(); err != nil {
		g.log.Error("autoexpire refused", "system", sys, "err", err)
		return res, err
	}
	now := g.now()
	var recs []*imageRecord
	if err := g.db.view(func(t tx) (err error) { recs, err = t.images(sys); return err }); err != nil {
		return res, fmt.Errorf("autoexpire: %w", err)
	}
	for _, r := range recs {
		if r.Status != api.StateReady || !r.Expiration.Before(now) {
			continue
		}
		ok, err := g.expireImage(ctx, sys, r.ID, now)
		if err != nil {
			return res, fmt.Errorf("autoexpire: %w", err)
		}
		if ok {
			g.log.Info("image expired", "system", sys, "id", r.ID)
			res.Status = append(res.Status, r.ID)
		}
	}
	// Forget finished pulls that failed or expired long ago.
	err := g.db.update(func(t tx) error {
		jobs, err := t.jobs(key(pfxJob, sys, ""))
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if (j.Status == api.StateFailure || j.Status == api.StateExpired) && now.Sub(j.Finished) > g.cfg.JobTimeout.D() {
				if err := t.del(j.key()); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("autoexpire: %w", err)
	}
	g.retryLeftovers()
	removed, err := g.removeOrphans(ctx, sys, now)
	res.Removed = removed
	return res, err
}

func (g *Gateway) removeOrphans(ctx context.Context, sys string, now time.Time) ([]string, error) {
	if err := g.refuseIfDamaged(); err != nil {
		return nil, err
	}
	g.pubMu.Lock()
	defer g.pubMu.Unlock()
	tr := g.transfers[sys]
	files, err := tr.Published(ctx)
	if err != nil || files == nil {
		return nil, err
	}
	var removed []string
	for id, mtime := range files {
		if now.Sub(mtime) < g.cfg.JobTimeout.D() || g.inUse(sys, id) {
			continue
		}
		var ready bool
		err := g.db.view(func(t tx) error {
			rec, err := t.getImage(sys, id)
			ready = err == nil && rec.Status == api.StateReady
			if errors.Is(err, errNoKey) {
				return nil
			}
			return err
		})
		if err != nil {
			return removed, fmt.Errorf("autoexpire: %w", err)
		}
		if ready {
			continue
		}
		if err := tr.Remove(ctx, id); err != nil {
			return removed, fmt.Errorf("autoexpire: %w", err)
		}
		g.log.Info("removed unreferenced image files", "system", sys, "id", id)
		removed = append(removed, id)
	}
	slices.Sort(removed)
	return removed, nil
}

// errInUse: a pull job works on an image an expire would change.
var errInUse = errors.New("image in use by a pull job")

// expireTag withdraws the bindings of a tag that the administrator may
// see (root: all of them; a private tag the administrator may not see is
// missing to them, as to anyone). An image left with no binding is
// expired: record EXPIRED in the database first, then its files removed.
// An image still named by other tags keeps its record and files, and its
// metadata loses the tag. It returns the ids the tag named and those whose
// files were removed; errNoKey if the administrator sees no binding,
// errInUse (without changes) if a pull job works on one of the images.
func (g *Gateway) expireTag(ctx context.Context, sys, itype, tag string, admin *Identity) (named, removed []string, err error) {
	if err := g.refuseIfDamaged(); err != nil {
		g.log.Error("expire refused", "system", sys, "tag", tag, "err", err)
		return nil, nil, err
	}
	g.pubMu.Lock()
	defer g.pubMu.Unlock()
	now := g.now()
	var gone, kept []*imageRecord
	var binds []*bindRecord
	err = g.db.update(func(t tx) error {
		named, gone, kept = nil, nil, nil
		tb, err := t.tagBindings(sys, itype, tag)
		if err != nil {
			return err
		}
		c := t.imageCache(sys)
		vis, err := c.visible(tb, admin)
		if err != nil {
			return err
		}
		if len(vis) == 0 {
			return errNoKey
		}
		for _, b := range vis {
			if !slices.Contains(named, b.ID) {
				named = append(named, b.ID)
			}
		}
		for _, id := range named {
			if g.inUse(sys, id) {
				return errInUse
			}
		}
		jobs, err := t.jobs(append(key(pfxJob, sys, itype, tag), 0))
		if err != nil {
			return err
		}
		for _, b := range vis {
			if err := t.del(b.key()); err != nil {
				return err
			}
			for _, j := range jobs {
				if j.Status == api.StateReady && j.ID == b.ID && j.bindScope() == b.Scope {
					j.Status, j.Message, j.Updated, j.Finished = api.StateExpired, "image expired", now, now
					if err := t.put(j.key(), j); err != nil {
						return err
					}
				}
			}
		}
		if binds, err = t.systemBindings(sys); err != nil {
			return err
		}
		for _, id := range named {
			img, err := c.get(id)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(binds, func(b *bindRecord) bool { return b.ID == id }) {
				kept = append(kept, img)
				continue
			}
			if err := g.withdraw(t, img, api.StateExpired, "image expired", now); err != nil {
				return err
			}
			img.Status = api.StateExpired
			if err := t.putImage(img); err != nil {
				return err
			}
			gone = append(gone, img)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	tr := g.transfers[sys]
	for _, img := range kept {
		if err := tr.WriteMetadata(ctx, img.metadata(binds)); err != nil {
			return named, removed, fmt.Errorf("expire tag %s: %w", tag, err)
		}
	}
	for _, img := range gone {
		if err := tr.Remove(ctx, img.ID); err != nil {
			return named, removed, fmt.Errorf("expire tag %s: %w", tag, err)
		}
		g.m.expired.WithLabelValues(sys).Inc()
		removed = append(removed, img.ID)
	}
	slices.Sort(named)
	slices.Sort(removed)
	return named, removed, nil
}
