// SPDX-License-Identifier: BSD-3-Clause

package shifterd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/shifterd/proto"
)

// Backend mounts images and warms the node cache. The daemon's serves
// images through the node cache over FUSE (backend_linux.go); tests use
// fakes.
type Backend interface {
	// Mount serves img at dir, an existing empty directory, read-only,
	// nosuid and nodev, with the mount source "shifterd:<id>", and returns
	// once the mount answers. ctx bounds the mounting, not the mount.
	Mount(ctx context.Context, img *imagestore.Metadata, dir string) (Mounted, error)
	// Warm fills the node cache with img's chunks: those of its start-up
	// trace first, in order, then (unless traceOnly) the rest.
	Warm(ctx context.Context, img *imagestore.Metadata, traceOnly bool, progress func(proto.Progress)) error
	// CacheStatus reports the node cache, or nil when there is none.
	CacheStatus() *proto.CacheStatus
}

// Mounted is one mount made by a Backend.
type Mounted interface {
	// Unmount detaches the mount (lazily: a namespace that still has it
	// bound keeps it until it goes) and stops serving it once unused.
	Unmount() error
}

// RequestCounter is a Mounted that counts the requests it served, by
// FUSE opcode (shown by status).
type RequestCounter interface {
	Requests() map[string]uint64
}

// Holder is who holds a reference.
type Holder struct {
	PID int
	UID uint32
}

// Manager keeps one shared mount per image, counts references to it and
// unmounts it after it has had none for the idle time.
type Manager struct {
	dir     string
	idle    time.Duration
	backend Backend
	log     *slog.Logger

	mu     sync.Mutex
	mounts map[string]*shared
	closed bool
	stats  ManagerStats
}

// ManagerStats counts what the manager did since it started.
type ManagerStats struct {
	Mounts, Unmounts, MountFailures, Acquires, Releases int64
}

// shared is one image's mount. Its fields are guarded by Manager.mu, but
// for those set before ready is closed.
type shared struct {
	img   *imagestore.Metadata
	path  string
	ready chan struct{} // closed when the mount is made or failed
	err   error         // why it failed, once ready
	m     Mounted
	since time.Time

	refs      map[*Ref]struct{}
	idleSince time.Time
	timer     *time.Timer
	gone      chan struct{} // non-nil while unmounting; closed when done
}

// Ref is one reference to a shared mount.
type Ref struct {
	mgr    *Manager
	s      *shared
	holder Holder
	since  time.Time
	once   sync.Once
}

// NewManager makes a manager whose mounts go under dir (created mode
// 0700: the mounts are reached through the descriptors handed out, not
// by path, so that no user can walk into a private image). Mount
// directories left by an earlier run are removed; they must not be
// mount points any more (the caller unmounts stale mounts first).
func NewManager(dir string, idle time.Duration, b Backend, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mount directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mount directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("mount directory: %w", err)
	}
	for _, e := range ents {
		if imagestore.ValidID(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				log.Warn("stale mount directory", "path", filepath.Join(dir, e.Name()), "err", err)
			}
		}
	}
	return &Manager{dir: dir, idle: idle, backend: b, log: log, mounts: map[string]*shared{}}, nil
}

// ErrClosed is returned by Acquire once Close has begun.
var ErrClosed = errors.New("shifterd is shutting down")

// Acquire returns a reference to img's shared mount, mounting it when
// there is none. Concurrent first acquirers of one image wait for one
// mount. A failed mount is not remembered: the next Acquire tries again.
func (m *Manager) Acquire(ctx context.Context, img *imagestore.Metadata, h Holder) (*Ref, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		s := m.mounts[img.ID]
		if s != nil && s.gone != nil {
			gone := s.gone
			m.mu.Unlock()
			select {
			case <-gone:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		first := s == nil
		if first {
			s = &shared{img: img, path: filepath.Join(m.dir, img.ID), ready: make(chan struct{}), refs: map[*Ref]struct{}{}}
			m.mounts[img.ID] = s
		}
		r := &Ref{mgr: m, s: s, holder: h, since: time.Now()}
		s.refs[r] = struct{}{}
		if s.timer != nil {
			s.timer.Stop()
			s.timer = nil
		}
		m.stats.Acquires++
		m.mu.Unlock()

		if first {
			m.mount(ctx, s)
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			r.Release()
			return nil, ctx.Err()
		}
		if s.err != nil {
			r.Release()
			return nil, s.err
		}
		return r, nil
	}
}

// mountTimeout bounds one mount, whoever waits for it.
const mountTimeout = 2 * time.Minute

func (m *Manager) mount(ctx context.Context, s *shared) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mountTimeout)
	defer cancel()
	start := time.Now()
	err := os.Mkdir(s.path, 0o755)
	if errors.Is(err, os.ErrExist) {
		err = nil // left by a failed mount; empty, or Mount fails on it
	}
	var mt Mounted
	if err == nil {
		mt, err = m.backend.Mount(ctx, s.img, s.path)
	}
	m.mu.Lock()
	if err != nil {
		s.err = fmt.Errorf("image %s: mount: %w", s.img.ID, err)
		delete(m.mounts, s.img.ID)
		m.stats.MountFailures++
		os.Remove(s.path)
		m.log.Error("mount failed", "image", s.img.ID, "err", err)
	} else {
		s.m = mt
		s.since = time.Now()
		m.stats.Mounts++
		m.log.Info("mounted", "image", s.img.ID, "path", s.path, "took", time.Since(start).Round(time.Microsecond))
	}
	close(s.ready)
	m.mu.Unlock()
}

// Path is the host path of the reference's mount.
func (r *Ref) Path() string { return r.s.path }

// Release gives the reference back; the last one starts the idle timer.
// It may be called more than once.
func (r *Ref) Release() {
	r.once.Do(func() { r.mgr.release(r) })
}

func (m *Manager) release(r *Ref) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := r.s
	delete(s.refs, r)
	m.stats.Releases++
	if len(s.refs) > 0 || s.m == nil || s.gone != nil || m.closed {
		return
	}
	s.idleSince = time.Now()
	if m.idle <= 0 {
		m.startUnmount(s)
		return
	}
	s.timer = time.AfterFunc(m.idle, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.mounts[s.img.ID] == s && len(s.refs) == 0 && s.gone == nil && !m.closed {
			m.startUnmount(s)
		}
	})
}

// startUnmount unmounts s in the background; m.mu is held.
func (m *Manager) startUnmount(s *shared) {
	s.timer = nil
	s.gone = make(chan struct{})
	go func() {
		m.unmount(s)
		m.mu.Lock()
		delete(m.mounts, s.img.ID)
		close(s.gone)
		m.mu.Unlock()
	}()
}

func (m *Manager) unmount(s *shared) {
	if err := s.m.Unmount(); err != nil {
		m.log.Error("unmount", "image", s.img.ID, "path", s.path, "err", err)
	} else {
		m.log.Info("unmounted", "image", s.img.ID, "path", s.path, "idle", time.Since(s.idleSince).Round(time.Millisecond))
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("mount directory", "path", s.path, "err", err)
	}
	m.mu.Lock()
	m.stats.Unmounts++
	m.mu.Unlock()
}

// Close unmounts every mount, references or not, and refuses new ones.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	var wait []*shared
	for _, s := range m.mounts {
		if s.timer != nil {
			s.timer.Stop()
			s.timer = nil
		}
		wait = append(wait, s)
	}
	m.mu.Unlock()
	for _, s := range wait {
		<-s.ready
		m.mu.Lock()
		gone := s.gone
		ok := s.m != nil && gone == nil
		if ok {
			s.gone = make(chan struct{})
		}
		m.mu.Unlock()
		switch {
		case ok:
			m.unmount(s)
			m.mu.Lock()
			delete(m.mounts, s.img.ID)
			close(s.gone)
			m.mu.Unlock()
		case gone != nil:
			<-gone
		}
	}
}

// Stats returns the manager's counters and the current number of mounts
// and references.
func (m *Manager) Stats() (st ManagerStats, mounts, refs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.mounts {
		if s.m != nil {
			mounts++
		}
		refs += len(s.refs)
	}
	return m.stats, mounts, refs
}

// Status lists the mounts the filter admits (nil: all), with the holders
// that show admits (nil: all).
func (m *Manager) Status(filter func(*imagestore.Metadata) bool, show func(Holder) bool) []proto.MountStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []proto.MountStatus
	for _, s := range m.mounts {
		if s.m == nil || (filter != nil && !filter(s.img)) {
			continue
		}
		ms := proto.MountStatus{ID: s.img.ID, Path: s.path, Since: s.since.UTC(), Refs: []proto.HolderState{}}
		for r := range s.refs {
			if show == nil || show(r.holder) {
				ms.Refs = append(ms.Refs, proto.HolderState{PID: r.holder.PID, UID: r.holder.UID, Since: r.since.UTC()})
			}
		}
		slices.SortFunc(ms.Refs, func(a, b proto.HolderState) int { return a.Since.Compare(b.Since) })
		if rc, ok := s.m.(RequestCounter); ok {
			ms.Requests = rc.Requests()
		}
		if len(s.refs) == 0 {
			ms.IdleFor = time.Since(s.idleSince).Round(time.Second).String()
		}
		out = append(out, ms)
	}
	slices.SortFunc(out, func(a, b proto.MountStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}
