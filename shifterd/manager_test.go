// SPDX-License-Identifier: BSD-3-Clause

package shifterd

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shifter-go/shifter/imagestore"
)

func testImage(n byte) *imagestore.Metadata {
	id := make([]byte, 64)
	for i := range id {
		id[i] = "0123456789abcdef"[(int(n)+i)%16]
	}
	return &imagestore.Metadata{ID: string(id), Format: imagestore.FormatSquashfs}
}

func newTestManager(t *testing.T, idle time.Duration, b *fakeBackend) *Manager {
	t.Helper()
	m, err := NewManager(filepath.Join(t.TempDir(), "mnt"), idle, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestManagerSharesOneMount(t *testing.T) {
	b := &fakeBackend{delay: 20 * time.Millisecond}
	m := newTestManager(t, time.Hour, b)
	img := testImage(1)
	const n = 64
	refs := make([]*Ref, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := m.Acquire(context.Background(), img, Holder{PID: i + 1, UID: 1000})
			if err != nil {
				t.Error(err)
				return
			}
			refs[i] = r
		})
	}
	wg.Wait()
	if got := b.mounts.Load(); got != 1 {
		t.Fatalf("%d concurrent acquires made %d mounts, want 1", n, got)
	}
	for _, r := range refs {
		if r == nil || r.Path() != refs[0].Path() {
			t.Fatalf("references to different mounts")
		}
	}
	if data, err := os.ReadFile(filepath.Join(refs[0].Path(), marker)); err != nil || string(data) != img.ID {
		t.Fatalf("mount content %q, %v", data, err)
	}
	st, mounts, nrefs := m.Stats()
	if mounts != 1 || nrefs != n || st.Acquires != n {
		t.Fatalf("stats %+v mounts %d refs %d", st, mounts, nrefs)
	}
	if s := m.Status(nil, nil); len(s) != 1 || len(s[0].Refs) != n || s[0].ID != img.ID {
		t.Fatalf("status %+v", s)
	}
	for _, r := range refs {
		r.Release()
		r.Release() // twice is harmless
	}
	if _, _, nrefs := m.Stats(); nrefs != 0 {
		t.Fatalf("%d references after release", nrefs)
	}
	if b.unmounts.Load() != 0 {
		t.Fatal("unmounted before the idle time")
	}
}

func TestManagerIdleUnmount(t *testing.T) {
	for _, idle := range []time.Duration{0, 30 * time.Millisecond} {
		b := &fakeBackend{}
		m := newTestManager(t, idle, b)
		img := testImage(2)
		r, err := m.Acquire(context.Background(), img, Holder{PID: 1})
		if err != nil {
			t.Fatal(err)
		}
		path := r.Path()
		r.Release()
		waitFor(t, "idle unmount", func() bool { return b.unmounts.Load() == 1 })
		waitFor(t, "mount directory removed", func() bool {
			_, err := os.Stat(path)
			return os.IsNotExist(err)
		})
		waitFor(t, "manager forgets the mount", func() bool { _, n, _ := m.Stats(); return n == 0 })
		// A new reference mounts again.
		r, err = m.Acquire(context.Background(), img, Holder{PID: 2})
		if err != nil {
			t.Fatal(err)
		}
		if b.mounts.Load() != 2 || b.mounted() != 1 {
			t.Fatalf("idle %v: mounts %d, live %d", idle, b.mounts.Load(), b.mounted())
		}
		r.Release()
	}
}

func TestManagerReacquireCancelsIdle(t *testing.T) {
	b := &fakeBackend{}
	m := newTestManager(t, 50*time.Millisecond, b)
	img := testImage(3)
	r, _ := m.Acquire(context.Background(), img, Holder{})
	r.Release()
	r2, err := m.Acquire(context.Background(), img, Holder{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond)
	if b.unmounts.Load() != 0 || b.mounts.Load() != 1 {
		t.Fatalf("a held mount was unmounted (mounts %d, unmounts %d)", b.mounts.Load(), b.unmounts.Load())
	}
	r2.Release()
	waitFor(t, "unmount", func() bool { return b.unmounts.Load() == 1 })
}

func TestManagerMountFailureNotRemembered(t *testing.T) {
	b := &fakeBackend{}
	b.fail.Store(true)
	m := newTestManager(t, time.Hour, b)
	img := testImage(4)
	if _, err := m.Acquire(context.Background(), img, Holder{}); err == nil {
		t.Fatal("acquire succeeded on a failing mount")
	}
	if _, n, refs := m.Stats(); n != 0 || refs != 0 {
		t.Fatalf("after a failure: %d mounts, %d refs", n, refs)
	}
	b.fail.Store(false)
	r, err := m.Acquire(context.Background(), img, Holder{})
	if err != nil {
		t.Fatalf("retry after failure: %v", err)
	}
	r.Release()
}

func TestManagerAcquireCancelled(t *testing.T) {
	b := &fakeBackend{delay: 200 * time.Millisecond}
	m := newTestManager(t, time.Hour, b)
	img := testImage(5)
	first := make(chan error, 1)
	go func() {
		r, err := m.Acquire(context.Background(), img, Holder{})
		if err == nil {
			r.Release()
		}
		first <- err
	}()
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := m.Acquire(ctx, img, Holder{}); err == nil {
		t.Fatal("a cancelled acquire succeeded")
	}
	if err := <-first; err != nil {
		t.Fatalf("the first acquirer failed with the second's cancellation: %v", err)
	}
}

func TestManagerClose(t *testing.T) {
	b := &fakeBackend{}
	m, err := NewManager(filepath.Join(t.TempDir(), "mnt"), time.Hour, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := m.Acquire(context.Background(), testImage(6), Holder{})
	r2, _ := m.Acquire(context.Background(), testImage(7), Holder{})
	m.Close()
	if b.mounted() != 0 || b.unmounts.Load() != 2 {
		t.Fatalf("after Close: %d live, %d unmounts", b.mounted(), b.unmounts.Load())
	}
	r1.Release()
	r2.Release()
	if _, err := m.Acquire(context.Background(), testImage(6), Holder{}); err != ErrClosed {
		t.Fatalf("acquire after close: %v", err)
	}
}

func TestNewManagerDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mnt")
	stale := filepath.Join(dir, testImage(8).ID)
	if err := os.MkdirAll(stale, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := NewManager(dir, 0, &fakeBackend{}, nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("mount directory mode %v, %v; want 0700", fi.Mode(), err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale mount directory left: %v", err)
	}
}
