// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

// ErrDisagrees: the image stores hold published images that the
// database has no record of (a damaged, lost or replaced database).
// Expiry, which removes files the database does not know, is refused
// until the records are rebuilt (Options.RebuildRecords).
var ErrDisagrees = errors.New("the database disagrees with the image store (damaged or replaced database?): expiry and removal are disabled; stop the gateway and rebuild the records with shifter-gateway --rebuild-db (docs/gateway.md)")

// unknownImage is a published image the database has no record of.
type unknownImage struct {
	system string
	meta   *imagestore.Metadata
}

// uncommitted reports whether m is the metadata a build publishes
// before any job commits it (no tags, root only): an image that was
// never READY, not one the database lost.
func uncommitted(m *imagestore.Metadata) bool {
	return len(m.Tags) == 0 && slices.Equal(m.UserACL, []uint32{0}) && len(m.GroupACL) == 0
}

// unknownImages lists the images published in the systems' image stores
// that the database does not know: a complete committed image (its
// metadata loads, with tags or an ACL a commit wrote) with no image
// record and named by no pull job. A crash between a build's publish
// and its commit leaves uncommitted metadata or a job naming the image,
// so it is not counted.
func (g *Gateway) unknownImages(ctx context.Context) ([]unknownImage, error) {
	var out []unknownImage
	for _, name := range g.cfg.SystemNames() {
		known := map[string]bool{}
		err := g.db.view(func(t tx) error {
			recs, err := t.images(name)
			if err != nil {
				return err
			}
			for _, r := range recs {
				known[r.ID] = true
			}
			jobs, err := t.jobs(key(pfxJob, name, ""))
			for _, j := range jobs {
				known[j.ID] = true
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		tr := g.transfers[name]
		files, err := tr.Published(ctx)
		if err != nil {
			return nil, fmt.Errorf("system %s: %w", name, err)
		}
		for id := range files {
			if known[id] {
				continue
			}
			m, err := tr.Load(ctx, id)
			if errors.Is(err, imagestore.ErrNotFound) || errors.Is(err, imagestore.ErrInvalid) {
				continue // incomplete: never READY
			}
			if err != nil {
				return nil, fmt.Errorf("system %s: %w", name, err)
			}
			if !uncommitted(m) {
				out = append(out, unknownImage{name, m})
			}
		}
	}
	slices.SortFunc(out, func(a, b unknownImage) int {
		return strings.Compare(a.system+"\x00"+a.meta.ID, b.system+"\x00"+b.meta.ID)
	})
	return out, nil
}

// checkAgreement runs at start: if the image stores hold images the
// database does not know, the gateway says so and refuses expiry.
func (g *Gateway) checkAgreement(ctx context.Context) error {
	unknown, err := g.unknownImages(ctx)
	if err != nil {
		return fmt.Errorf("compare the database with the image stores: %w", err)
	}
	if len(unknown) == 0 {
		return nil
	}
	var ids []string
	for _, u := range unknown[:min(len(unknown), 5)] {
		ids = append(ids, u.system+"/"+u.meta.ID[:12])
	}
	g.damaged = fmt.Errorf("%w: %d published images have no record (%s)", ErrDisagrees, len(unknown), strings.Join(ids, ", "))
	g.log.Error("THE DATABASE DISAGREES WITH THE IMAGE STORE: published images have no record; "+
		"expiry and removal are disabled until the records are rebuilt with shifter-gateway --rebuild-db",
		"images", len(unknown), "examples", strings.Join(ids, ", "))
	return nil
}

// refuseIfDamaged returns the error that refuses expiry and removal
// when the database disagrees with the image stores.
func (g *Gateway) refuseIfDamaged() error {
	if g.damaged != nil {
		return &httpError{code: http.StatusServiceUnavailable, short: "database damaged", msg: g.damaged.Error()}
	}
	return nil
}

// RebuildResult reports a rebuild of the records.
type RebuildResult struct {
	Images int // image records made
	Tags   int // tag bindings made
	// Skipped counts tags left to bindings the database already had.
	Skipped int
}

// rebuildRecords makes an image record, READY, for every published
// image the database does not know, from its <id>.json: visibility, ACL
// and the tags the metadata carries (bound publicly: they are the tags
// everyone the image admits may see). A tag the database already binds
// to a READY image keeps that binding; two rebuilt images with one tag:
// the newer one has it. Private tags not written into metadata are
// lost: their owners pull again. Expiration restarts from now.
func (g *Gateway) rebuildRecords(ctx context.Context) (RebuildResult, error) {
	var res RebuildResult
	unknown, err := g.unknownImages(ctx)
	if err != nil {
		return res, fmt.Errorf("rebuild records: %w", err)
	}
	// Newest first, so that a tag goes to the newest image.
	slices.SortStableFunc(unknown, func(a, b unknownImage) int { return b.meta.Created.Compare(a.meta.Created) })
	now := g.now()
	for _, u := range unknown {
		m := u.meta
		rec := &imageRecord{ID: m.ID, System: u.system, Itype: itypeDocker, Status: api.StateReady, Public: m.Public(),
			Env: m.Env, Entry: m.Entrypoint, Cmd: m.Cmd, Workdir: m.WorkDir, User: m.User, Labels: m.Labels,
			Size: m.Size, SHA256: m.SHA256, Created: m.Created, LastPull: now, Expiration: now.Add(g.cfg.Expiration.D())}
		if !rec.Public {
			rec.UserACL, rec.GroupACL = slices.Clone(m.UserACL), slices.Clone(m.GroupACL)
		}
		var tags, skipped int
		err := g.db.update(func(t tx) error {
			tags, skipped = 0, 0
			for _, tag := range m.Tags {
				b := &bindRecord{System: u.system, Itype: itypeDocker, Tag: tag, ID: m.ID, Pulled: m.Created}
				cur, err := t.getBind(b.key())
				if err == nil {
					img, err := t.getImage(u.system, cur.ID)
					if err == nil && img.Status == api.StateReady {
						skipped++
						continue
					} else if err != nil && !errors.Is(err, errNoKey) {
						return err
					}
				} else if !errors.Is(err, errNoKey) {
					return err
				}
				if err := t.put(b.key(), b); err != nil {
					return err
				}
				tags++
			}
			return t.putImage(rec)
		})
		if err != nil {
			return res, fmt.Errorf("rebuild records: %w", err)
		}
		res.Tags += tags
		res.Skipped += skipped
		res.Images++
		g.log.Info("image record rebuilt from the image store", "system", u.system, "id", m.ID, "tags", m.Tags, "public", rec.Public)
	}
	return res, nil
}
