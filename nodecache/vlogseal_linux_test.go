// SPDX-License-Identifier: BSD-3-Clause

package nodecache

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// vlogFiles lists the value-log files of the cache in dir with their sizes,
// in file-id order.
func vlogFiles(t *testing.T, dir string) (names []string, sizes map[string]int64) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	sizes = map[string]int64{}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".vlog") {
			info, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, e.Name())
			sizes[e.Name()] = info.Size()
		}
	}
	sort.Strings(names)
	return names, sizes
}

// TestCloseSealsValueLog: a clean Close leaves badger's value log ending in
// an empty file (so the next Open does not read the session's chunks
// through); the cache reopens with every chunk, served without the source;
// sessions that store nothing add no files; a temporary file left by a
// crash while sealing does not stop the next seal, and badger ignores it.
func TestCloseSealsValueLog(t *testing.T) {
	const chunk = 64 << 10
	data := randBytes(11, 40*chunk)
	dir := t.TempDir()
	cl := chunksOf(t, data, chunk)
	session := func(want int64) {
		t.Helper()
		src := &memSource{data: data}
		c := openTest(t, dir, Options{Size: 64 << 20, MemorySize: -1})
		im, err := c.Image(testID("seal"), src, cl)
		if err != nil {
			t.Fatal(err)
		}
		checkRead(t, im, data, 10000)
		if got := src.reads.Load(); got != want {
			t.Errorf("%d source reads, want %d", got, want)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	session(40) // cold: every chunk from the source, stored
	names, sizes := vlogFiles(t, dir)
	if len(names) < 2 || sizes[names[len(names)-1]] != vlogHeaderSize || sizes[names[len(names)-2]] <= int64(len(data)) {
		t.Fatalf("value log after a session that stored: %v %v; want the chunks in one file and an empty (%d-byte) last file", names, sizes, vlogHeaderSize)
	}
	for range 3 {
		session(0) // warm: nothing from the source
	}
	names, sizes = vlogFiles(t, dir)
	if len(names) > 4 || sizes[names[len(names)-1]] != vlogHeaderSize {
		t.Errorf("value log after sessions that stored nothing: %v %v; want at most 4 files, the last empty", names, sizes)
	}
	// A crash between writing the seal's temporary file and renaming it.
	c := openTest(t, dir, Options{Size: 64 << 20, MemorySize: -1})
	more := randBytes(12, 8*chunk)
	im, err := c.Image(testID("seal2"), &memSource{data: more}, chunksOf(t, more, chunk))
	if err != nil {
		t.Fatal(err)
	}
	checkRead(t, im, more, 10000)
	c.Flush()
	names, _ = vlogFiles(t, dir)
	last := names[len(names)-1]
	fid, err := strconv.Atoi(strings.TrimSuffix(last, ".vlog"))
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "db", fmt.Sprintf("%06d.vlog.seal", fid+1))
	if err := os.WriteFile(stale, []byte("torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("the stale %s is still there", stale)
	}
	names, sizes = vlogFiles(t, dir)
	if sizes[names[len(names)-1]] != vlogHeaderSize {
		t.Errorf("value log after a stale seal file: %v %v; want the last file empty", names, sizes)
	}
	session(0)
}
