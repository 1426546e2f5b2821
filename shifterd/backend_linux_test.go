// SPDX-License-Identifier: BSD-3-Clause

package shifterd

import (
	"context"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/nodecache"
	"github.com/shifter-go/shifter/shifterd/client"
	"github.com/shifter-go/shifter/shifterd/proto"
)

const testChunk = 64 << 10

// realImage builds a squashfs of the feature tree into a new image store
// with its metadata and chunk list, and returns the store and the image.
func realImage(t *testing.T) (string, *imagestore.Metadata, string) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	tree := sqtest.MakeFeatureTree(t, t.TempDir(), sqtest.TreeOptions{})
	store := t.TempDir()
	id := strings.Repeat("5a", 32)
	sq, _ := imagestore.Paths(store, id)
	sqtest.BuildTo(t, sq, tree.Dir, "-comp", "gzip", "-b", "64K")
	fi, err := os.Stat(sq)
	if err != nil {
		t.Fatal(err)
	}
	meta := &imagestore.Metadata{ID: id, Format: imagestore.FormatSquashfs, Tags: []string{}, Size: fi.Size()}
	if err := imagestore.WriteMetadata(store, meta); err != nil {
		t.Fatal(err)
	}
	cl, err := imagestore.ComputeChunkListFile(sq, testChunk)
	if err != nil {
		t.Fatal(err)
	}
	if err := imagestore.WriteChunkList(store, id, cl); err != nil {
		t.Fatal(err)
	}
	return store, meta, sqtest.MountKernel(t, sq)
}

type realDaemon struct {
	socket string
	m      *Manager
	b      *CacheBackend
	cache  *nodecache.Cache
}

func startReal(t *testing.T, store string, idle time.Duration, cacheDir string) *realDaemon {
	t.Helper()
	cache, err := nodecache.Open(cacheDir, nodecache.Options{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	d := &realDaemon{socket: filepath.Join(t.TempDir(), "s"), cache: cache}
	d.b = &CacheBackend{ImageDir: store, Cache: cache, TraceIdle: 2 * time.Second}
	d.m, err = NewManager(filepath.Join(t.TempDir(), "mnt"), idle, d.b, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: d.socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Manager: d.m, Backend: d.b, ImageDir: store}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		<-done
		d.m.Close()
		srv.Wait()
		cache.Close()
	})
	return d
}

// sharedMounts lists the mounts of image id made by shifterd.
func sharedMounts(t *testing.T, id string) []testutil.Mount {
	t.Helper()
	var out []testutil.Mount
	for _, m := range testutil.Mounts(t) {
		if m.Source == MountSource(id) {
			out = append(out, m)
		}
	}
	return out
}

func walkRef(t *testing.T, ref *client.Ref) *sqtest.Listing {
	t.Helper()
	l, err := sqtest.WalkMount("shifterd", ref.Path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestBackendSharedMount(t *testing.T) {
	store, meta, kernel := realImage(t)
	d := startReal(t, store, 0, filepath.Join(t.TempDir(), "cache"))
	ctx := context.Background()
	r1, err := client.Mount(ctx, d.socket, meta.ID, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := client.Mount(ctx, d.socket, meta.ID, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ms := sharedMounts(t, meta.ID)
	if len(ms) != 1 {
		t.Fatalf("%d mounts of the image, want 1: %+v", len(ms), ms)
	}
	if ms[0].FSType != "fuse.shifterd" || !hasOpts(ms[0].Options, "ro", "nosuid", "nodev") {
		t.Errorf("mount %+v: want fuse.shifterd, ro, nosuid, nodev", ms[0])
	}
	want, err := sqtest.WalkMount("kernel", kernel)
	if err != nil {
		t.Fatal(err)
	}
	if diffs := sqtest.CompareListings(want, walkRef(t, r1), 20); len(diffs) > 0 {
		t.Fatalf("shared mount differs from the kernel's:\n%s", strings.Join(diffs, "\n"))
	}
	st, err := client.Status(ctx, d.socket)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Mounts) != 1 || st.Mounts[0].Requests["READDIRPLUS"] == 0 || st.Mounts[0].Requests["READ"] == 0 {
		t.Errorf("status after a walk of the mount: %+v, want its READDIRPLUS and READ requests counted", st.Mounts)
	}
	r1.Close()
	time.Sleep(50 * time.Millisecond)
	if len(sharedMounts(t, meta.ID)) != 1 {
		t.Fatal("unmounted while a reference remains")
	}
	r2.Close()
	waitFor(t, "idle unmount", func() bool { return len(sharedMounts(t, meta.ID)) == 0 })
}

func hasOpts(opts string, want ...string) bool {
	have := map[string]bool{}
	for _, o := range strings.Split(opts, ",") {
		have[o] = true
	}
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return true
}

// spoil replaces the image file with random bytes of the same size: from
// then on, any read of the source fails verification.
func spoil(t *testing.T, store string, meta *imagestore.Metadata) {
	t.Helper()
	sq, _ := imagestore.Paths(store, meta.ID)
	junk := make([]byte, meta.Size)
	rand.Read(junk)
	if err := os.WriteFile(sq+".junk", junk, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(sq+".junk", sq); err != nil {
		t.Fatal(err)
	}
}

// someFiles picks n regular files of the listing with content, spread
// through it.
func someFiles(t *testing.T, l *sqtest.Listing, n int) []sqtest.WalkEntry {
	t.Helper()
	var all []sqtest.WalkEntry
	for _, e := range l.Entries {
		if e.Type == "file" && e.Size > 0 {
			all = append(all, e)
		}
	}
	if len(all) < n {
		t.Fatalf("%d files in the tree", len(all))
	}
	var out []sqtest.WalkEntry
	for i := range n {
		out = append(out, all[i*len(all)/n])
	}
	return out
}

func readAll(root string, files []sqtest.WalkEntry) error {
	for _, f := range files {
		if _, err := os.ReadFile(filepath.Join(root, f.Path)); err != nil {
			return err
		}
	}
	return nil
}

func TestBackendTraceThenWarm(t *testing.T) {
	store, meta, kernel := realImage(t)
	want, err := sqtest.WalkMount("kernel", kernel)
	if err != nil {
		t.Fatal(err)
	}
	start := someFiles(t, want, 3) // what a "start-up" reads
	ctx := context.Background()

	// First mount on a node: a trace of what the start read is published.
	d := startReal(t, store, 0, filepath.Join(t.TempDir(), "cache1"))
	ref, err := client.Mount(ctx, d.socket, meta.ID, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := readAll(ref.Path, start); err != nil {
		t.Fatal(err)
	}
	var tr *imagestore.Trace
	waitFor(t, "trace published", func() bool {
		tr, err = imagestore.LoadTrace(store, meta)
		return err == nil
	})
	ref.Close()
	cl, _ := imagestore.LoadChunkList(store, meta.ID)
	if len(tr.Chunks) == 0 || tr.ChunkSize != testChunk || int64(len(tr.Chunks)) >= cl.Count() {
		t.Fatalf("trace of %d chunks (size %d) for an image of %d", len(tr.Chunks), tr.ChunkSize, cl.Count())
	}
	t.Logf("trace: %d of %d chunks", len(tr.Chunks), cl.Count())

	// Another node warms from the trace only.
	d2 := startReal(t, store, 0, filepath.Join(t.TempDir(), "cache2"))
	var last proto.Progress
	if err := client.Warm(ctx, d2.socket, meta.ID, true, nil, func(p proto.Progress) { last = p }); err != nil {
		t.Fatal(err)
	}
	if st := d2.cache.Stats(); st.Chunks != int64(len(tr.Chunks)) || last.Done != int64(len(tr.Chunks)) {
		t.Fatalf("trace-only warm-up: %d chunks cached, progress %+v; the trace has %d", st.Chunks, last, len(tr.Chunks))
	}
	// The same start then reads nothing from the image file: spoil it,
	// and the start still sees the image's bytes.
	spoil(t, store, meta)
	before := d2.cache.Stats().SourceBytes
	ref2, err := client.Mount(ctx, d2.socket, meta.ID, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ref2.Close()
	for _, f := range start {
		got, err := os.ReadFile(filepath.Join(ref2.Path, f.Path))
		exp, _ := os.ReadFile(filepath.Join(kernel, f.Path))
		if err != nil || string(got) != string(exp) {
			t.Fatalf("%s after a trace warm-up: %v (equal %v)", f.Path, err, string(got) == string(exp))
		}
	}
	if got := d2.cache.Stats().SourceBytes - before; got != 0 {
		t.Fatalf("a traced start read %d bytes from the image file", got)
	}
	// What the trace did not cover comes from the (spoiled) file and is
	// refused, never served.
	spoiled, err := sqtest.WalkMount("spoiled", ref2.Path)
	readErrs := 0
	if err == nil {
		for _, e := range spoiled.Entries {
			if e.ReadErr != "" {
				readErrs++
				if !strings.Contains(e.ReadErr, "input/output error") {
					t.Fatalf("%s: %s, want EIO", e.Path, e.ReadErr)
				}
			}
		}
	}
	if err == nil && readErrs == 0 {
		t.Fatal("a walk of the spoiled image's untraced parts succeeded")
	}
	if d2.cache.Stats().VerifyFailures == 0 {
		t.Fatal("no verification failure counted")
	}
}

func TestBackendFullWarm(t *testing.T) {
	store, meta, kernel := realImage(t)
	want, err := sqtest.WalkMount("kernel", kernel)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := startReal(t, store, 0, filepath.Join(t.TempDir(), "cache"))
	// No trace yet: trace-only has nothing to do, a full warm-up fetches all.
	if err := client.Warm(ctx, d.socket, meta.ID, true, nil, nil); err == nil || !strings.Contains(err.Error(), "no start-up trace") {
		t.Fatalf("trace-only warm-up without a trace: %v", err)
	}
	cl, _ := imagestore.LoadChunkList(store, meta.ID)
	var last proto.Progress
	if err := client.Warm(ctx, d.socket, meta.ID, false, nil, func(p proto.Progress) { last = p }); err != nil {
		t.Fatal(err)
	}
	if st := d.cache.Stats(); st.Chunks != cl.Count() || last.Done != cl.Count() || last.FromSource != meta.Size {
		t.Fatalf("full warm-up: %d chunks cached, progress %+v; want %d chunks, %d bytes", st.Chunks, last, cl.Count(), meta.Size)
	}
	// With every chunk cached, the image file is never read again.
	spoil(t, store, meta)
	before := d.cache.Stats().SourceBytes
	ref, err := client.Mount(ctx, d.socket, meta.ID, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if diffs := sqtest.CompareListings(want, walkRef(t, ref), 20); len(diffs) > 0 {
		t.Fatalf("warm mount differs from the kernel's:\n%s", strings.Join(diffs, "\n"))
	}
	if got := d.cache.Stats().SourceBytes - before; got != 0 {
		t.Fatalf("a warm start read %d bytes from the image file", got)
	}
}
