// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestParseTrace(t *testing.T) {
	const size = 10 * 4096 // ten 4 KiB chunks
	for _, tc := range []struct {
		in   string
		want []int64
		err  string
	}{
		{"shifter-trace 1\nchunk-size 4096\n3\n0\n9\n", []int64{3, 0, 9}, ""},
		{"shifter-trace 1\nchunk-size 4096\n", nil, ""},
		{"shifter-trace 1\nchunk-size 4096\n3\n0\n9", []int64{3, 0, 9}, ""},
		{"", nil, "first line"},
		{"shifter-trace 2\nchunk-size 4096\n", nil, "first line"},
		{"shifter-trace 1\n", nil, "chunk-size"},
		{"shifter-trace 1\nchunk-size 4095\n", nil, "power of two"},
		{"shifter-trace 1\nchunk-size 2048\n", nil, "power of two"},
		{"shifter-trace 1\nchunk-size 134217728\n", nil, "power of two"},
		{"shifter-trace 1\nchunk-size 04096\n", nil, "power of two"},
		{"shifter-trace 1\nchunk-size 4096\n10\n", nil, "chunk 10 of an image of 10 chunks"},
		{"shifter-trace 1\nchunk-size 4096\n1\n1\n", nil, "listed twice"},
		{"shifter-trace 1\nchunk-size 4096\n-1\n", nil, "not a chunk index"},
		{"shifter-trace 1\nchunk-size 4096\n01\n", nil, "not a chunk index"},
		{"shifter-trace 1\nchunk-size 4096\n 1\n", nil, "not a chunk index"},
		{"shifter-trace 1\nchunk-size 4096\n\n", nil, "not a chunk index"},
		{"shifter-trace 1\nchunk-size 4096\n99999999999999999999\n", nil, "not a chunk index"},
		{"shifter-trace 1\nchunk-size 4096\n" + strings.Repeat("1", 100) + "\n", nil, "token too long"},
	} {
		tr, err := ParseTrace(strings.NewReader(tc.in), size)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalidTrace)):
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		case err == nil && !slices.Equal(tr.Chunks, tc.want):
			t.Errorf("%q: chunks %v, want %v", tc.in, tr.Chunks, tc.want)
		}
	}
}

func testMeta(public bool) *Metadata {
	m := &Metadata{ID: strings.Repeat("ab", 32), Format: FormatSquashfs, Size: 1 << 20, Tags: []string{}}
	if !public {
		m.UserACL = []uint32{1000}
	}
	return m
}

func TestWriteTrace(t *testing.T) {
	for _, public := range []bool{true, false} {
		dir := t.TempDir()
		m := testMeta(public)
		if _, err := LoadTrace(dir, m); !errors.Is(err, ErrNotFound) {
			t.Fatalf("no trace: %v", err)
		}
		tr := &Trace{ChunkSize: 65536, Chunks: []int64{5, 1, 15}}
		kept, err := WriteTrace(dir, m, tr)
		if err != nil || !kept {
			t.Fatalf("WriteTrace = %v, %v", kept, err)
		}
		got, err := LoadTrace(dir, m)
		if err != nil || got.ChunkSize != tr.ChunkSize || !slices.Equal(got.Chunks, tr.Chunks) {
			t.Fatalf("LoadTrace = %+v, %v", got, err)
		}
		fi, _ := os.Stat(TracePath(dir, m.ID))
		if want := map[bool]os.FileMode{true: 0o644, false: 0o600}[public]; fi.Mode().Perm() != want {
			t.Errorf("public=%v: mode %v, want %v", public, fi.Mode().Perm(), want)
		}
		// A second writer keeps the first trace.
		kept, err = WriteTrace(dir, m, &Trace{ChunkSize: 65536, Chunks: []int64{2}})
		if err != nil || kept {
			t.Fatalf("second WriteTrace = %v, %v", kept, err)
		}
		if got, _ := LoadTrace(dir, m); !slices.Equal(got.Chunks, tr.Chunks) {
			t.Fatalf("second writer replaced the trace: %v", got.Chunks)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Fatalf("files left: %v", ents)
		}
	}
}

func TestWriteTraceConcurrent(t *testing.T) {
	dir := t.TempDir()
	m := testMeta(true)
	var wg sync.WaitGroup
	var mu sync.Mutex
	kept := 0
	for i := range 16 {
		wg.Go(func() {
			k, err := WriteTrace(dir, m, &Trace{ChunkSize: 65536, Chunks: []int64{int64(i)}})
			if err != nil {
				t.Error(err)
			}
			if k {
				mu.Lock()
				kept++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if kept != 1 {
		t.Fatalf("%d writers kept their trace, want 1", kept)
	}
	if _, err := LoadTrace(dir, m); err != nil {
		t.Fatal(err)
	}
}

func TestLoadTraceRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	m := testMeta(true)
	os.WriteFile(dir+"/real", []byte("shifter-trace 1\nchunk-size 65536\n1\n"), 0o644)
	os.Symlink(dir+"/real", TracePath(dir, m.ID))
	if _, err := LoadTrace(dir, m); err == nil {
		t.Fatal("a symlinked trace was read")
	}
}

func FuzzParseTrace(f *testing.F) {
	f.Add([]byte("shifter-trace 1\nchunk-size 4096\n3\n0\n9\n"), int64(40960))
	f.Add([]byte("shifter-trace 1\nchunk-size 65536\n"), int64(0))
	f.Add([]byte("shifter-trace 1\nchunk-size 4096\n1\n1\n"), int64(1<<20))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		tr, err := ParseTrace(bytes.NewReader(b), size)
		if err != nil {
			return
		}
		again, err := ParseTrace(bytes.NewReader(tr.Marshal()), size)
		if err != nil || !slices.Equal(again.Chunks, tr.Chunks) || again.ChunkSize != tr.ChunkSize {
			t.Fatalf("round trip: %v", err)
		}
	})
}
