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
	"sync"
	"time"

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
	// records replaces the database (tests: in-memory records).
	records records
}

// Gateway is the running service (without its listeners: see Handler).
type Gateway struct {
	cfg       *Config
	db        records
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
	// regRunning counts the running jobs per registry host (dequeue).
	regRunning map[string]int
	// leftovers are temporary files of failed builds that the store
	// refused to remove (removeTemp).
	leftovers map[string]bool
	closed    bool

	// damaged, set at start when the image stores hold images the
	// database does not know, refuses expiry and removal.
	damaged error

	flight singleflight.Group
	// hookBeforeCommit, set by tests before any pull, runs between a
	// job's build and its commit.
	hookBeforeCommit func(j *jobRecord)
	// hookImportCopied, set by tests, runs once an import's copy is
	// made and hashed, before it is checked and published.
	hookImportCopied func(j *jobRecord)
	pubMu            sync.Mutex // serializes image record, tag index and metadata changes
	importMu         sync.Mutex // serializes import submissions (submitImport)
}

// New opens the database, reconciles it with the image stores (crash
// recovery), and starts the workers.
func New(o Options) (*Gateway, error) {
	g, err := open(o)
	if err != nil {
		return nil, err
	}
	if err := g.reconcile(); err != nil {
		g.db.Close()
		return nil, err
	}
	for range g.cfg.Workers {
		g.wg.Add(1)
		go g.worker()
	}
	return g, nil
}

// RebuildRecords rebuilds the image records and public tag bindings of
// the images published in the image stores that the database does not
// know (a damaged or lost database), from their <id>.json files, and
// closes the database. The gateway must not be running.
func RebuildRecords(o Options) (RebuildResult, error) {
	g, err := open(o)
	if err != nil {
		return RebuildResult{}, err
	}
	defer g.cancel()
	if err := g.migrateTags(); err != nil {
		g.db.Close()
		return RebuildResult{}, fmt.Errorf("rebuild records: %w", err)
	}
	res, err := g.rebuildRecords(g.ctx)
	return res, errors.Join(err, g.db.Close())
}

// open opens the database and the transfers.
func open(o Options) (*Gateway, error) {
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
	var db records = o.records
	if db == nil {
		s, err := OpenStore(filepath.Join(c.DataDir, "db"), log)
		if err != nil {
			return nil, err
		}
		db = s
	}
	g := &Gateway{
		cfg: c, db: db, puller: o.Puller, log: log, m: newMetrics(), auth: o.Auth,
		transfers: map[string]Transfer{}, now: time.Now,
		queued: map[string]bool{}, creds: map[string]map[string]string{},
		inFlight: map[string]int{}, waiters: map[string]map[string]bool{}, lastProg: map[string]time.Time{},
		regRunning: map[string]int{}, leftovers: map[string]bool{},
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
