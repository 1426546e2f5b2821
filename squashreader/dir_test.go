// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/shifter-go/shifter/internal/sqtest"
)

// TestDirectoryIndex looks up every entry of a directory large enough to
// carry a directory index (and more than 256 entries: several headers),
// and names that fall between entries, and resumes ReadDir from every
// cookie; the reference is the full listing, which TestAgainstUnsquashfs
// checks against unsquashfs.
func TestDirectoryIndex(t *testing.T) {
	tree := featureTree(t, false)
	img := sqtest.Build(t, tree.Dir)
	r, dir := openLookup(t, img, nil, "dirs/big")
	if len(dir.index) < 2 || !dir.Extended {
		t.Fatalf("dirs/big has %d index entries (extended %v): the test needs an index", len(dir.index), dir.Extended)
	}
	all, err := r.ReadDir(dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 600 {
		t.Fatalf("dirs/big lists %d entries", len(all))
	}
	for i, e := range all {
		in, err := r.Lookup(dir, e.Name)
		if err != nil {
			t.Errorf("Lookup(%q): %v", e.Name, err)
			continue
		}
		if in.Ref != e.Ref || in.Ino != e.Ino || in.Type != e.Type {
			t.Errorf("Lookup(%q) = ref 0x%x ino %d %s, ReadDir has 0x%x %d %s", e.Name, in.Ref, in.Ino, in.Type, e.Ref, e.Ino, e.Type)
		}
		for _, absent := range []string{e.Name + "\x01", e.Name[:len(e.Name)-1] + "~"} {
			if i+1 < len(all) && all[i+1].Name == absent {
				continue
			}
			if _, err := r.Lookup(dir, absent); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Lookup(%q) error %v, want fs.ErrNotExist", absent, err)
			}
		}
		// Resume after every entry, a few entries at a time.
		if i%7 == 0 {
			next, err := r.ReadDir(dir, e.Next, 5)
			if err != nil {
				t.Fatalf("ReadDir(cookie after %q): %v", e.Name, err)
			}
			for j, n := range next {
				if i+1+j >= len(all) || all[i+1+j].Name != n.Name {
					t.Fatalf("ReadDir(cookie after %q)[%d] = %q", e.Name, j, n.Name)
				}
			}
			if want := min(5, len(all)-i-1); len(next) != want {
				t.Fatalf("ReadDir(cookie after %q) = %d entries, want %d", e.Name, len(next), want)
			}
		}
	}
	for _, absent := range []string{"", ".", "..", "a/b", "zzzz", "\x00"} {
		if _, err := r.Lookup(dir, absent); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Lookup(%q) error %v, want fs.ErrNotExist", absent, err)
		}
	}
	if end, err := r.ReadDir(dir, all[len(all)-1].Next, 10); err != nil || len(end) != 0 {
		t.Errorf("ReadDir(last cookie) = %d entries, %v; want none", len(end), err)
	}
}
