// SPDX-License-Identifier: BSD-3-Clause

// Package gateway is the image gateway service: a REST API on Shifter's
// paths (docs/api.md), a badger/v4 database of image records, tags, ACLs
// and durable pull jobs, workers that pull and convert images with a
// Puller (gateway/pull) and publish them into each system's image store
// (imagestore), expiry, and Prometheus metrics. Configuration is
// documented in docs/gateway.md.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
	"golang.org/x/sync/singleflight"
)

// Options configures a Gateway.
type Options struct {
	Config *Config // validated
	Puller Puller
	Logger *slog.Logger // default: discard
	// Auth, if set, authenticates TCP requests in place of munge (tests).
	Auth Authenticator
	// Transfers overrides the per-system transfers (tests).
	Transfers map[string]Transfer
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Gateway is the running service (without its listeners: see Handler).
type Gateway struct {
	cfg       *Config
	db        *Store
	puller    Puller
	log       *slog.Logger
	m         *metrics
	auth      Authenticator
	unmunge   Unmunger
	transfers map[string]Transfer
	now       func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	cond     *sync.Cond
	queue    []string                     // job keys, FIFO
	queued   map[string]bool              // queued or running
	creds    map[string]map[string]string // job key -> registry credentials (memory only)
	inFlight map[string]int               // system\x00id -> jobs working on it
	waiters  map[string]map[string]bool   // system\x00id -> job keys waiting on its build
	lastProg map[string]time.Time
	closed   bool

	flight singleflight.Group
	// hookBeforeCommit, set by tests before any pull, runs between a
	// job's build and its commit.
	hookBeforeCommit func(j *jobRecord)
	pubMu            sync.Mutex // serializes image record, tag index and metadata changes
}

// New opens the database, reconciles it with the image stores (crash
// recovery), and starts the workers.
func New(o Options) (*Gateway, error) {
	if o.Config == nil || o.Puller == nil {
		return nil, errors.New("new gateway: Config and Puller are required")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := o.Config
	for _, d := range []string{c.DataDir, c.CacheDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("new gateway: %w", err)
		}
	}
	// The work directory holds only half-done work: start afresh.
	if err := os.RemoveAll(c.WorkDir); err != nil {
		return nil, fmt.Errorf("new gateway: clean work dir: %w", err)
	}
	if err := os.MkdirAll(c.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("new gateway: %w", err)
	}
	db, err := OpenStore(filepath.Join(c.DataDir, "db"), log)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg: c, db: db, puller: o.Puller, log: log, m: newMetrics(), auth: o.Auth,
		transfers: map[string]Transfer{}, now: time.Now,
		queued: map[string]bool{}, creds: map[string]map[string]string{},
		inFlight: map[string]int{}, waiters: map[string]map[string]bool{}, lastProg: map[string]time.Time{},
	}
	if o.Now != nil {
		g.now = o.Now
	}
	g.cond = sync.NewCond(&g.mu)
	g.ctx, g.cancel = context.WithCancel(context.Background())
	for name, s := range c.Systems {
		if t, ok := o.Transfers[name]; ok {
			g.transfers[name] = t
			continue
		}
		if s.Transfer == TransferLocal {
			if err := os.MkdirAll(s.ImageDir, 0o755); err != nil {
				db.Close()
				return nil, fmt.Errorf("new gateway: image dir of %s: %w", name, err)
			}
		}
		g.transfers[name] = newTransfer(name, s, c.WorkDir)
	}
	if err := g.reconcile(); err != nil {
		db.Close()
		return nil, err
	}
	for range c.Workers {
		g.wg.Add(1)
		go g.worker()
	}
	return g, nil
}

// Close stops the workers (jobs in progress stay queued in the database
// and resume at the next start) and closes the database.
func (g *Gateway) Close() error {
	g.cancel()
	g.mu.Lock()
	g.closed = true
	g.cond.Broadcast()
	g.mu.Unlock()
	g.wg.Wait()
	return g.db.Close()
}

// reconcile makes the database agree with the image stores after a
// crash: temporary files are removed, READY records whose files are gone
// are withdrawn (their pulls marked FAILURE), and unfinished jobs are
// queued again.
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

// credKey names one job's credentials: a key and its job's sequence, so
// that a finished job never drops the credentials of the next job of the
// same key.
func credKey(k string, seq uint64) string { return k + "\x00" + strconv.FormatUint(seq, 10) }

func (g *Gateway) enqueue(k, system string, seq uint64, creds map[string]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if creds != nil {
		g.creds[credKey(k, seq)] = creds
	}
	if g.queued[k] {
		return
	}
	g.queued[k] = true
	g.queue = append(g.queue, k)
	g.m.inProgress.WithLabelValues(system).Inc()
	g.cond.Signal()
}

func (g *Gateway) dequeue() (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.queue) == 0 && !g.closed {
		g.cond.Wait()
	}
	if g.closed {
		return "", false
	}
	k := g.queue[0]
	g.queue = g.queue[1:]
	delete(g.queued, k)
	return k, true
}

func (g *Gateway) worker() {
	defer g.wg.Done()
	for {
		k, ok := g.dequeue()
		if !ok {
			return
		}
		g.runJob(k)
	}
}

func (g *Gateway) loadJob(k string) (*jobRecord, error) {
	var j *jobRecord
	err := g.db.view(func(t tx) (err error) { j, err = t.getJob([]byte(k)); return err })
	return j, err
}

// saveJob writes j (its worker is its only writer besides progress updates).
func (g *Gateway) saveJob(j *jobRecord) error {
	j.Updated = g.now()
	return g.db.update(func(t tx) error { return t.put(j.key(), j) })
}

// runJob runs one pull job to READY or FAILURE. If the gateway stops
// meanwhile, the job is left in its state and queued again at start-up.
func (g *Gateway) runJob(k string) {
	j, err := g.loadJob(k)
	if err != nil {
		g.log.Error("load queued job", "err", err)
		return
	}
	ck := credKey(k, j.Seq)
	defer func() {
		g.m.inProgress.WithLabelValues(j.System).Dec()
		if terminal(j.Status) {
			g.mu.Lock()
			delete(g.creds, ck)
			g.mu.Unlock()
		}
	}()
	if terminal(j.Status) {
		return
	}
	log := g.log.With("system", j.System, "tag", j.Tag, "uid", j.UID)
	start := g.now()
	j.Attempts++
	if j.Attempts > g.cfg.MaxAttempts {
		g.fail(j, fmt.Errorf("gave up after %d interrupted attempts", j.Attempts-1), start, log)
		return
	}
	tr, ok := g.transfers[j.System]
	if !ok {
		g.fail(j, fmt.Errorf("system %s is no longer configured", j.System), start, log)
		return
	}
	j.Status, j.Message, j.Done, j.Total = api.StatePulling, "getting manifest", 0, 0
	if err := g.saveJob(j); err != nil {
		log.Error("save job", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.JobTimeout.D())
	defer cancel()
	g.mu.Lock()
	creds := g.creds[ck]
	g.mu.Unlock()
	log.Info("pull started", "attempt", j.Attempts)
	res, private, err := g.resolve(ctx, j, creds)
	if err != nil {
		g.fail(j, err, start, log)
		return
	}
	j.ID = res.ID
	j.Message = "manifest " + res.ID[:12] + " resolved"
	if err := g.saveJob(j); err != nil {
		log.Error("save job", "err", err)
		return
	}
	fk := j.System + "\x00" + res.ID
	g.mu.Lock()
	g.inFlight[fk]++
	if g.waiters[fk] == nil {
		g.waiters[fk] = map[string]bool{}
	}
	g.waiters[fk][k] = true
	g.mu.Unlock()
	// release drops the job's hold on the image: on success inside
	// commit, still under pubMu, so that no expire sees the image READY
	// and still held by the job that made it (a 409 for an idle image);
	// otherwise when the job ends.
	released := false
	release := func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if released {
			return
		}
		released = true
		if g.inFlight[fk]--; g.inFlight[fk] <= 0 {
			delete(g.inFlight, fk)
		}
		delete(g.waiters[fk], k)
		if len(g.waiters[fk]) == 0 {
			delete(g.waiters, fk)
			delete(g.lastProg, fk)
		}
	}
	defer release()
	for attempt := 0; ; attempt++ {
		v, err, _ := g.flight.Do(fk, func() (any, error) {
			m, err := g.build(ctx, j.System, tr, res, fk, log)
			if err != nil {
				err = &buildError{leader: k, err: err}
			}
			return m, err
		})
		var be *buildError
		if errors.As(err, &be) {
			if be.leader != k && attempt < 4 && ctx.Err() == nil {
				// Another job's build failed; it may be that job's own
				// doing (its credentials): build again, with ours if
				// this job leads the next round.
				log.Info("shared build failed; trying again", "err", be.err)
				continue
			}
			err = be.err
		}
		if err == nil {
			if g.hookBeforeCommit != nil {
				g.hookBeforeCommit(j)
			}
			err = g.commit(ctx, j, tr, v.(*imagestore.Metadata), private, release)
		}
		if errors.Is(err, errRemovedDuringPull) && attempt < 2 {
			log.Info("image expired while being pulled; building it again")
			continue
		}
		if err != nil {
			g.fail(j, err, start, log)
			return
		}
		break
	}
	d := g.now().Sub(start)
	g.m.pulls.WithLabelValues(j.System, api.StateReady).Inc()
	g.m.duration.WithLabelValues(j.System, api.StateReady).Observe(d.Seconds())
	log.Info("pull ready", "id", j.ID, "seconds", d.Seconds())
}

// resolve fetches the manifest anonymously first; if the registry wants
// credentials and the requester gave some, again with them, and the
// image is then private.
func (g *Gateway) resolve(ctx context.Context, j *jobRecord, creds map[string]string) (*Resolved, bool, error) {
	res, err := g.puller.Resolve(ctx, j.Tag, nil)
	if err == nil {
		return res, false, nil
	}
	if !errors.Is(err, ErrUnauthorized) && !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	if len(creds) == 0 {
		if j.HasCreds {
			return nil, false, fmt.Errorf("%w; registry credentials are kept in memory only and were lost when the gateway restarted: pull again", err)
		}
		return nil, false, err
	}
	res, err = g.puller.Resolve(ctx, j.Tag, creds)
	if err != nil {
		return nil, false, err
	}
	return res, true, nil
}

// build makes sure image res is published in the system's image store,
// building it if needed; concurrent callers for one id share one build.
func (g *Gateway) build(ctx context.Context, system string, tr Transfer, res *Resolved, fk string, log *slog.Logger) (*imagestore.Metadata, error) {
	if m, err := tr.Load(ctx, res.ID); err == nil {
		log.Info("image already published; updating its record only", "id", res.ID)
		return m, nil
	} else if !errors.Is(err, imagestore.ErrNotFound) && !errors.Is(err, imagestore.ErrInvalid) {
		return nil, err
	}
	g.m.conversions.WithLabelValues(system).Inc()
	f, err := tr.CreateTemp()
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	meta, err := g.puller.Build(ctx, res, f, func(state, msg string, done, total int64) {
		g.progress(fk, state, msg, done, total, false)
	})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close image file: %w", cerr)
	}
	if err == nil && meta.ID != res.ID {
		err = fmt.Errorf("build %s: puller gave image id %s", res.ID, meta.ID)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	g.progress(fk, api.StateTransfer, "publishing the image", 0, 0, true)
	// Whatever is left under this id is not a complete image (Load
	// failed above): replace it rather than keep it.
	if err := tr.Remove(ctx, res.ID); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	// Until each job's commit writes the merged ACL, the image is
	// visible to root only.
	meta.Format = imagestore.FormatSquashfs
	meta.Tags, meta.UserACL, meta.GroupACL = []string{}, []uint32{0}, nil
	meta.Created = g.now().UTC()
	if err := tr.Publish(ctx, tmp, meta); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	g.m.bytes.WithLabelValues(system).Add(float64(meta.Size))
	return meta, nil
}

// progress records a build's progress in every job waiting on it, at
// most every 250 ms unless forced or the state changes.
func (g *Gateway) progress(fk, state, msg string, done, total int64, force bool) {
	switch state {
	case api.StatePulling, api.StateConversion, api.StateTransfer:
	default:
		state = api.StatePulling
	}
	g.mu.Lock()
	now := g.now()
	if !force && now.Sub(g.lastProg[fk]) < 250*time.Millisecond {
		g.mu.Unlock()
		return
	}
	g.lastProg[fk] = now
	var keys []string
	for k := range g.waiters[fk] {
		keys = append(keys, k)
	}
	g.mu.Unlock()
	err := g.db.update(func(t tx) error {
		for _, k := range keys {
			j, err := t.getJob([]byte(k))
			if err != nil || terminal(j.Status) {
				continue
			}
			if j.Status != state {
				force = true
			}
			j.Status, j.Message, j.Done, j.Total, j.Updated = state, msg, done, total, now
			if err := t.put(j.key(), j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		g.log.Error("record progress", "err", err)
	}
}

func (g *Gateway) fail(j *jobRecord, err error, start time.Time, log *slog.Logger) {
	if g.ctx.Err() != nil {
		log.Info("pull interrupted by shutdown; it resumes at the next start")
		return
	}
	j.Status, j.Message, j.Done, j.Total = api.StateFailure, failureMessage(err), 0, 0
	j.Finished = g.now()
	if serr := g.saveJob(j); serr != nil {
		log.Error("save job", "err", serr)
	}
	g.m.pulls.WithLabelValues(j.System, api.StateFailure).Inc()
	g.m.duration.WithLabelValues(j.System, api.StateFailure).Observe(g.now().Sub(start).Seconds())
	log.Warn("pull failed", "err", j.Message)
}

// failureMessage gives the user-facing reason of a failed pull.
func failureMessage(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		msg = "pull timed out: " + msg
	case errors.Is(err, ErrUnauthorized) && !strings.Contains(msg, "pull again"):
		msg = "registry denied access (private image? log in with shifterimg login and pull again): " + msg
	}
	if len(msg) > 2000 {
		msg = msg[:2000]
	}
	return msg
}

// buildError is a failed build and the job that ran it.
type buildError struct {
	leader string
	err    error
}

func (e *buildError) Error() string { return e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }

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
	public := !private && !j.Requested
	users := slices.Clone(j.UserACL)
	if !public && !slices.Contains(users, j.UID) {
		users = append(users, j.UID)
	}
	if rec == nil || rec.Status != api.StateReady {
		rec = &imageRecord{ID: meta.ID, System: j.System, Itype: j.Itype, Created: now, Public: public}
		if !public {
			rec.UserACL, rec.GroupACL = users, slices.Clone(j.GroupACL)
		}
	} else if public && !rec.Public && !rec.onACL(j.UID, j.GID) {
		// A public pull by someone not on a private image's ACL adds that
		// user only: nobody changes the ACL of an image they cannot see.
		rec.UserACL = union(rec.UserACL, []uint32{j.UID})
	} else if public {
		rec.Public, rec.UserACL, rec.GroupACL = true, nil, nil
	} else if !rec.Public {
		rec.UserACL = union(rec.UserACL, users)
		rec.GroupACL = union(rec.GroupACL, j.GroupACL)
	}
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

	// The job's binding. A private one belongs to the requester; its ACL
	// only grows (their earlier grants stay).
	j.Private = !public
	nb := &bindRecord{System: j.System, Itype: j.Itype, Tag: j.Tag, Scope: j.bindScope(), ID: rec.ID, Pulled: now}
	if !public {
		nb.UserACL, nb.GroupACL = users, slices.Clone(j.GroupACL)
	}
	changed := map[string]bool{rec.ID: true} // images whose tags change
	var drop []*bindRecord
	kept := binds[:0:0]
	for _, b := range binds {
		switch {
		case string(b.key()) == string(nb.key()):
			changed[b.ID] = true
			nb.Looked = b.Looked
			if !public {
				nb.UserACL, nb.GroupACL = union(b.UserACL, nb.UserACL), union(b.GroupACL, nb.GroupACL)
			}
		case public && rec.Public && b.Tag == j.Tag && b.Itype == j.Itype && b.Scope == scopeOf(j.UID):
			// The requester pulled their private tag publicly: the tag
			// is public now (and visible to everyone), so their private
			// binding goes.
			changed[b.ID] = true
			drop = append(drop, b)
		default:
			kept = append(kept, b)
		}
	}
	binds = append(kept, nb)
	// The other images whose tags change (the tag moved off them).
	err = g.db.view(func(t tx) error {
		for id := range changed {
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
	for id := range changed {
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
		if b.ID != r.ID || b.System != r.System || slices.Contains(m.Tags, b.Tag) {
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
	if j.Status == api.StatePulling || j.Status == api.StateConversion || j.Status == api.StateTransfer {
		if j.Done > 0 || j.Total > 0 {
			im.Progress = &api.Progress{BytesDone: j.Done, BytesTotal: j.Total}
		}
	}
	return im
}

func scopeOf(uid uint32) string { return "u" + strconv.FormatUint(uint64(uid), 10) }
