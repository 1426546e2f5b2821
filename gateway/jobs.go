// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

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

// dequeue takes the oldest queued job whose registry is below its
// concurrency limit (registryLimit), waiting until there is one. Jobs of
// a registry at its limit are passed over, so that pulls from one slow
// registry never hold every worker. done releases the job's slot.
func (g *Gateway) dequeue() (k string, done func(), ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := -1
	for !g.closed {
		if i = pickJob(g.queue, g.cfg.DefaultRegistry, g.regRunning, g.registryLimit); i >= 0 {
			break
		}
		g.cond.Wait()
	}
	if g.closed {
		return "", nil, false
	}
	k = g.queue[i]
	g.queue = slices.Delete(g.queue, i, i+1)
	delete(g.queued, k)
	reg := jobRegistry(k, g.cfg.DefaultRegistry)
	g.regRunning[reg]++
	return k, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.regRunning[reg]--; g.regRunning[reg] <= 0 {
			delete(g.regRunning, reg)
		}
		g.cond.Broadcast()
	}, true
}

// registryLimit is how many jobs may pull from one registry at once:
// registries.HOST.concurrency, else registry_concurrency, else one
// worker less than all (at least one).
func (g *Gateway) registryLimit(reg string) int {
	if r, ok := g.cfg.Registries[reg]; ok && r.Concurrency > 0 {
		return r.Concurrency
	}
	if g.cfg.RegistryConcurrency > 0 {
		return g.cfg.RegistryConcurrency
	}
	return max(1, g.cfg.Workers-1)
}

// pickJob returns the index of the first job key in queue whose
// registry (jobRegistry; def for Docker Hub names) has fewer running
// jobs than its limit, or -1.
func pickJob(queue []string, def string, running map[string]int, limit func(reg string) int) int {
	for i, k := range queue {
		reg := jobRegistry(k, def)
		if running[reg] < limit(reg) {
			return i
		}
	}
	return -1
}

// jobRegistry gives the registry host of a job key's tag (lowercase), or
// def for a Docker Hub name without one.
func jobRegistry(k, def string) string {
	f := strings.Split(strings.TrimPrefix(k, pfxJob), "\x00")
	if len(f) < 3 {
		return def
	}
	if f[1] == itypeCustom {
		return importQueue
	}
	return tagRegistry(f[2], def)
}

// importQueue is the registry name jobRegistry gives imports: they
// share a concurrency limit of their own, never a registry's. No
// registry host is spelled so (tagRegistry's hosts hold "." or ":").
const importQueue = "import"

// tagRegistry gives the registry host of a normalized tag, or def.
func tagRegistry(tag, def string) string {
	first, _, ok := strings.Cut(tag, "/")
	if !ok || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		return def
	}
	return strings.ToLower(first)
}

func (g *Gateway) worker() {
	defer g.wg.Done()
	for {
		k, done, ok := g.dequeue()
		if !ok {
			return
		}
		g.runJob(k)
		done()
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
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.JobTimeout.D())
	defer cancel()
	// The image's id and how to build it: a pull resolves the manifest;
	// an import (custom) copies and hashes the user's file (import.go).
	var private bool
	var buildImage func(fk string) (*imagestore.Metadata, error)
	if j.Itype == itypeCustom {
		j.Status, j.Message, j.Done, j.Total = api.StateHashing, "copying and hashing the file", 0, 0
		if err := g.saveJob(j); err != nil {
			log.Error("save job", "err", err)
			return
		}
		log.Info("import started", "attempt", j.Attempts, "path", j.FilePath)
		imp, err := g.prepareImport(ctx, j, tr, log)
		if err != nil {
			log.Warn("import failed", "path", j.FilePath, "err", err)
			g.fail(j, errors.New(importMessage(err, j.FilePath)), start, log)
			return
		}
		defer g.cleanupImport(imp)
		j.ID, j.Message, j.Done, j.Total = imp.id, "image "+imp.id[:12]+" hashed", 0, 0
		buildImage = func(fk string) (*imagestore.Metadata, error) {
			return g.publishImport(ctx, j.System, tr, imp, fk, log)
		}
	} else {
		j.Status, j.Message, j.Done, j.Total = api.StatePulling, "getting manifest", 0, 0
		if err := g.saveJob(j); err != nil {
			log.Error("save job", "err", err)
			return
		}
		g.mu.Lock()
		creds := g.creds[ck]
		g.mu.Unlock()
		log.Info("pull started", "attempt", j.Attempts)
		res, priv, err := g.resolve(ctx, j, creds)
		if err != nil {
			g.fail(j, err, start, log)
			return
		}
		private = priv
		j.ID = res.ID
		j.Message = "manifest " + res.ID[:12] + " resolved"
		buildImage = func(fk string) (*imagestore.Metadata, error) {
			return g.build(ctx, j.System, tr, res, fk, log)
		}
	}
	if err := g.saveJob(j); err != nil {
		log.Error("save job", "err", err)
		return
	}
	fk := j.System + "\x00" + j.ID
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
			m, err := buildImage(fk)
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
		// Images published before chunk lists get one now. The image is
		// valid without it: a failure is logged, not fatal.
		if wrote, err := tr.EnsureChunks(ctx, m, g.cfg.ChunkSize); err != nil {
			log.Error("write the chunk list of a published image", "id", res.ID, "err", err)
		} else if wrote {
			log.Info("chunk list written for an image published without one", "id", res.ID)
		}
		return m, nil
	} else if !errors.Is(err, imagestore.ErrNotFound) && !errors.Is(err, imagestore.ErrInvalid) {
		return nil, err
	}
	g.m.conversions.WithLabelValues(system).Inc()
	g.retryLeftovers()
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
		g.removeTemp(tmp)
		return nil, err
	}
	// Hash the chunks while the file is local (before an ssh transfer).
	cl, err := imagestore.ComputeChunkListFile(tmp, g.cfg.ChunkSize)
	if err != nil {
		g.removeTemp(tmp)
		return nil, err
	}
	g.progress(fk, api.StateTransfer, "publishing the image", 0, 0, true)
	// Whatever is left under this id is not a complete image (Load
	// failed above): replace it rather than keep it.
	if err := tr.Remove(ctx, res.ID); err != nil {
		g.removeTemp(tmp)
		return nil, err
	}
	// Until each job's commit writes the merged ACL, the image is
	// visible to root only.
	meta.Format = imagestore.FormatSquashfs
	meta.Tags, meta.UserACL, meta.GroupACL = []string{}, []uint32{0}, nil
	meta.Created = g.now().UTC()
	if err := tr.Publish(ctx, tmp, meta, cl); err != nil {
		g.removeTemp(tmp)
		return nil, err
	}
	g.m.bytes.WithLabelValues(system).Add(float64(meta.Size))
	return meta, nil
}

// progress records a build's progress in every job waiting on it, at
// most every 250 ms unless forced or the state changes.
func (g *Gateway) progress(fk, state, msg string, done, total int64, force bool) {
	switch state {
	case api.StatePulling, api.StateConversion, api.StateTransfer, api.StateHashing:
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

// removeTemp removes a failed build's temporary file at once. When the
// store refuses even that (it turned read-only), the file is kept in
// mind and removed as soon as the store allows it again (retryLeftovers,
// before each build and at autoexpire), not only at the next start.
func (g *Gateway) removeTemp(p string) {
	err := os.Remove(p)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return
	}
	g.log.Error("remove temporary image file; retried later", "path", p, "err", err)
	g.mu.Lock()
	g.leftovers[p] = true
	g.mu.Unlock()
}

// retryLeftovers removes the temporary files that removeTemp could not.
func (g *Gateway) retryLeftovers() {
	g.mu.Lock()
	var ps []string
	for p := range g.leftovers {
		ps = append(ps, p)
	}
	g.mu.Unlock()
	for _, p := range ps {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		g.log.Info("removed a failed build's temporary file", "path", p)
		g.mu.Lock()
		delete(g.leftovers, p)
		g.mu.Unlock()
	}
}
