// SPDX-License-Identifier: BSD-3-Clause

package shifterd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/shifterd/proto"
)

// fakeBackend "mounts" by writing a marker file into the directory, so
// that the manager and the server can be tested without privileges.
type fakeBackend struct {
	mounts, unmounts atomic.Int64
	delay            time.Duration // each Mount sleeps this long
	fail             atomic.Bool   // Mount fails
	mu               sync.Mutex
	live             map[string]bool // dir -> mounted
	warmed           []string
}

const marker = "mounted-by-fake"

func (b *fakeBackend) Mount(ctx context.Context, img *imagestore.Metadata, dir string) (Mounted, error) {
	b.mounts.Add(1)
	if b.delay > 0 {
		select {
		case <-time.After(b.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if b.fail.Load() {
		return nil, errors.New("fake mount failure")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.live == nil {
		b.live = map[string]bool{}
	}
	if b.live[dir] {
		return nil, errors.New("fake: " + dir + " mounted twice")
	}
	if err := os.WriteFile(filepath.Join(dir, marker), []byte(img.ID), 0o644); err != nil {
		return nil, err
	}
	b.live[dir] = true
	return &fakeMount{b: b, dir: dir}, nil
}

func (b *fakeBackend) Warm(ctx context.Context, img *imagestore.Metadata, traceOnly bool, progress func(proto.Progress)) error {
	for i := range int64(4) {
		progress(proto.Progress{Done: (i + 1) * 10, Total: 40, FromSource: i * 10})
	}
	b.mu.Lock()
	b.warmed = append(b.warmed, img.ID)
	b.mu.Unlock()
	return nil
}

func (b *fakeBackend) CacheStatus() *proto.CacheStatus {
	return &proto.CacheStatus{Dir: "/fake", Hits: 3}
}

func (b *fakeBackend) mounted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, v := range b.live {
		if v {
			n++
		}
	}
	return n
}

type fakeMount struct {
	b   *fakeBackend
	dir string
}

func (m *fakeMount) Unmount() error {
	m.b.unmounts.Add(1)
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	if !m.b.live[m.dir] {
		return errors.New("fake: unmount of " + m.dir + " not mounted")
	}
	m.b.live[m.dir] = false
	return os.Remove(filepath.Join(m.dir, marker))
}
