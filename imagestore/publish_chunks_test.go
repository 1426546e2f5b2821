// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeTemp makes a temporary image file of n pseudo-random bytes in dir.
func writeTemp(t *testing.T, dir string, n int, seed uint64) (string, []byte) {
	t.Helper()
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	f, err := CreateTemp(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return f.Name(), b
}

// checkChunkList loads id's chunk list from dir and compares it with one
// computed from the bytes.
func checkChunkList(t *testing.T, dir, id string, data []byte, chunkSize int64, mode os.FileMode) {
	t.Helper()
	cl, err := LoadChunkList(dir, id)
	if err != nil {
		t.Fatalf("load chunk list: %v", err)
	}
	want, err := ComputeChunkList(bytes.NewReader(data), int64(len(data)), chunkSize, 1)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Digest() != want.Digest() || cl.Size != int64(len(data)) {
		t.Errorf("chunk list does not match the file (size %d, chunk size %d)", cl.Size, cl.ChunkSize)
	}
	if st, err := os.Lstat(ChunksPath(dir, id)); err != nil || st.Mode().Perm() != mode {
		t.Errorf("chunk list mode %v (%v), want %o", st.Mode(), err, mode)
	}
}

func TestPublishWithChunks(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		chunkSize int64
		acl       []uint32
		mode      os.FileMode
	}{
		{"public, several chunks and a short last one", 3*MinChunkSize + 100, MinChunkSize, nil, ModePublic},
		{"private", 2 * MinChunkSize, MinChunkSize, []uint32{1001}, ModePrivate},
		{"empty file", 0, DefaultChunkSize, nil, ModePublic},
		{"one short chunk", 10, DefaultChunkSize, []uint32{7}, ModePrivate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			id := testID(tc.name)
			tmp, data := writeTemp(t, dir, tc.size, 1)
			cl, err := ComputeChunkListFile(tmp, tc.chunkSize)
			if err != nil {
				t.Fatal(err)
			}
			m := &Metadata{ID: id, Format: FormatSquashfs, UserACL: tc.acl}
			if err := PublishWithChunks(dir, tmp, m, cl); err != nil {
				t.Fatal(err)
			}
			checkChunkList(t, dir, id, data, tc.chunkSize, tc.mode)
			// A visibility change moves the chunk list's mode with the image's.
			flipped := *m
			if m.Public() {
				flipped.UserACL = []uint32{1}
			} else {
				flipped.UserACL = nil
			}
			if err := WriteMetadata(dir, &flipped); err != nil {
				t.Fatal(err)
			}
			if st, _ := os.Stat(ChunksPath(dir, id)); st.Mode().Perm() != FileMode(&flipped) {
				t.Errorf("after a visibility change: chunk list mode %v, want %o", st.Mode(), FileMode(&flipped))
			}
			if err := SetModes(dir, m); err != nil {
				t.Fatal(err)
			}
			if st, _ := os.Stat(ChunksPath(dir, id)); st.Mode().Perm() != tc.mode {
				t.Errorf("after SetModes: chunk list mode %v, want %o", st.Mode(), tc.mode)
			}
			// Remove takes the chunk list and a node's trace with it.
			os.WriteFile(TracePath(dir, id), []byte("shifter-trace 1\n"), 0o644)
			if err := Remove(dir, id); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 0 {
				t.Errorf("left after Remove: %v", ents)
			}
		})
	}
}

// TestPublishChunksMismatch: a chunk list of another file is refused and
// nothing is published.
func TestPublishChunksMismatch(t *testing.T) {
	dir := t.TempDir()
	id := testID("mismatch")
	tmp, _ := writeTemp(t, dir, 5000, 1)
	other := &ChunkList{ChunkSize: MinChunkSize, Size: 4096, Sums: make([][32]byte, 1)}
	if err := PublishWithChunks(dir, tmp, &Metadata{ID: id}, other); err == nil {
		t.Fatal("a chunk list of another size was accepted")
	}
	for _, p := range []string{ChunksPath(dir, id), filepath.Join(dir, id+".json"), filepath.Join(dir, id+".squashfs")} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists after a refused publish", filepath.Base(p))
		}
	}
}

// TestEnsureChunkList: an image published without a chunk list (before
// chunk lists existed) gets one; a valid one is kept; a stale one (of
// another file size) or a garbage one is replaced; Publish without a list
// over a stale one removes it.
func TestEnsureChunkList(t *testing.T) {
	dir := t.TempDir()
	id := testID("legacy")
	tmp, data := writeTemp(t, dir, 3*MinChunkSize+1, 2)
	m := &Metadata{ID: id, Format: FormatSquashfs, UserACL: []uint32{5}}
	// A stale chunk list of an incomplete earlier image is not kept.
	stale, _ := ComputeChunkList(bytes.NewReader(make([]byte, 10)), 10, MinChunkSize, 1)
	if err := WriteChunkList(dir, id, stale); err != nil {
		t.Fatal(err)
	}
	if err := Publish(dir, tmp, m); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadChunkList(dir, id); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("chunk list after Publish without one: %v", err)
	}
	for _, tc := range []struct {
		name  string
		setup func()
		wrote bool
	}{
		{"missing", func() {}, true},
		{"valid", func() {}, false},
		{"of another size", func() { WriteChunkList(dir, id, stale) }, true},
		{"garbage", func() { os.WriteFile(ChunksPath(dir, id), []byte("garbage\n"), 0o644) }, true},
	} {
		tc.setup()
		wrote, err := EnsureChunkList(dir, m, MinChunkSize)
		if err != nil || wrote != tc.wrote {
			t.Errorf("%s: EnsureChunkList = %v, %v; want %v", tc.name, wrote, err, tc.wrote)
		}
		checkChunkList(t, dir, id, data, MinChunkSize, ModePrivate)
	}
	// A re-publish of the same id (another build) keeps the file and its list.
	tmp2, _ := writeTemp(t, dir, 100, 3)
	cl2, _ := ComputeChunkListFile(tmp2, MinChunkSize)
	if err := PublishWithChunks(dir, tmp2, m, cl2); err != nil {
		t.Fatal(err)
	}
	checkChunkList(t, dir, id, data, MinChunkSize, ModePrivate)
	if _, err := os.Stat(tmp2); !errors.Is(err, fs.ErrNotExist) {
		t.Error("temporary file of the re-publish kept")
	}
}

// BenchmarkComputeChunkListFile is the hashing a publish adds: every
// chunk of a 256 MiB image file (page cache warm), default chunk size.
func BenchmarkComputeChunkListFile(b *testing.B) {
	p := filepath.Join(b.TempDir(), "image")
	r := rand.NewChaCha8([32]byte{1})
	data := make([]byte, 256<<20)
	r.Read(data)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := ComputeChunkListFile(p, DefaultChunkSize); err != nil {
			b.Fatal(err)
		}
	}
}
