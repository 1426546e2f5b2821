// SPDX-License-Identifier: BSD-3-Clause

package fusefs_test

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/squashreader"
)

// lockedBuffer is a log sink for a server running in other goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCorruptImage serves images with bytes flipped in their metadata
// tables: walking the mount gets errors (EIO) where the image is broken,
// but the server never panics and keeps answering.
func TestCorruptImage(t *testing.T) {
	testutil.RequireFUSE(t)
	src, _ := featureSource(t, true)
	// Uncompressed metadata, so that flipped bytes become wild offsets,
	// counts and names rather than a failed decompression.
	plain, err := os.ReadFile(sqtest.Build(t, src, "-noI", "-noD", "-noF", "-noX"))
	if err != nil {
		t.Fatal(err)
	}
	gz, err := os.ReadFile(sqtest.Build(t, src, "-comp", "gzip"))
	if err != nil {
		t.Fatal(err)
	}
	served := 0
	for seed := uint64(1); seed <= 24; seed++ {
		good := plain
		if seed%4 == 0 {
			good = gz
		}
		// Flip bytes in the inode and directory tables.
		from := int(binary.LittleEndian.Uint64(good[64:72]))
		to := int(binary.LittleEndian.Uint64(good[80:88])) // fragment table
		dirEnd := int(binary.LittleEndian.Uint64(good[72:80]))
		if to <= from || to > len(good) {
			to = dirEnd + (len(good)-dirEnd)/2
		}
		img := bytes.Clone(good)
		rng := rand.New(rand.NewPCG(seed, 99))
		for i := 0; i < 4; i++ {
			img[from+rng.IntN(to-from)] ^= byte(1 + rng.IntN(255))
		}
		path := filepath.Join(t.TempDir(), "corrupt.sqfs")
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := squashreader.OpenFile(path, nil)
		if err != nil {
			continue // refused at open: fine
		}
		var logs lockedBuffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		fsys, err := fusefs.New(r, &fusefs.Options{Logger: log})
		if err != nil {
			r.Close()
			continue
		}
		mnt := t.TempDir()
		srv, err := fusefs.Mount(mnt, fsys, &fusefs.MountOptions{Logger: log})
		if err != nil {
			r.Close()
			t.Fatalf("seed %d: Mount: %v", seed, err)
		}
		served++
		l, werr := sqtest.WalkMount("corrupt", mnt)
		var st unix.Statfs_t
		serr := unix.Statfs(mnt, &st)
		if err := srv.Unmount(); err != nil {
			t.Errorf("seed %d: unmount: %v", seed, err)
			srv.UnmountLazy()
		}
		r.Close()
		if serr != nil {
			t.Errorf("seed %d: server stopped answering after the walk: %v", seed, serr)
		}
		if s := logs.String(); strings.Contains(s, "panic") {
			t.Errorf("seed %d: the server panicked:\n%s", seed, s)
		}
		nerr, n := 0, 0
		if l != nil {
			n = len(l.Entries)
			for _, e := range l.Entries {
				if e.ReadErr != "" {
					nerr++
					if !strings.Contains(e.ReadErr, "input/output error") && !strings.Contains(e.ReadErr, "no such file") {
						t.Errorf("seed %d: %s: %s, want EIO", seed, e.Path, e.ReadErr)
					}
				}
			}
		}
		t.Logf("seed %d: walk: %d entries, %d with errors, walk error %v", seed, n, nerr, werr)
	}
	if served == 0 {
		t.Fatal("no corrupted image could be served: the test checks nothing")
	}
}
