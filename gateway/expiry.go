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
			g.log.Info("image expired", "system", sys, "id", r.ID, "tags", r.Tags)
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
	removed, err := g.removeOrphans(ctx, sys, now)
	res.Removed = removed
	return res, err
}

func (g *Gateway) removeOrphans(ctx context.Context, sys string, now time.Time) ([]string, error) {
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
