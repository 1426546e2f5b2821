// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

// Fuzz inputs run with small caches and no read-ahead, and with bounded
// work: at most fuzzMaxEntries entries, fuzzMaxRead bytes read per file
// and fuzzMaxTotal in all.
const (
	fuzzMaxEntries = 5000
	fuzzMaxRead    = 1 << 20
	fuzzMaxTotal   = 16 << 20
)

var (
	fuzzOpts       = &Options{MetadataCacheSize: 64, DataCacheSize: 4 << 20, Readahead: -1, DirectReads: -1}
	fuzzDirectOpts = &Options{MetadataCacheSize: 64, DataCacheSize: 4 << 20, DirectReads: 1}
)

// watchdog turns an input that hangs into a crash the fuzzer records.
func watchdog() (stop func()) {
	tm := time.AfterFunc(20*time.Second, func() { panic("input took more than 20s: hang") })
	return func() { tm.Stop() }
}

func addSeeds(f *testing.F) {
	for _, img := range fixtures(f) {
		b, err := os.ReadFile(img)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkErr fails on errors that do not say what is corrupt.
func checkErr(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || errors.Is(err, ErrFormat) || errors.Is(err, io.ErrUnexpectedEOF) {
		return
	}
	if strings.Contains(err.Error(), "not a directory") || strings.Contains(err.Error(), "symbolic links") {
		return
	}
	t.Fatalf("%s: error %v does not wrap ErrFormat", what, err)
}

func FuzzOpen(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog()()
		r, err := Open(bytes.NewReader(data), int64(len(data)), fuzzOpts)
		if err != nil {
			checkErr(t, "Open", err)
			return
		}
		defer r.Close()
		root, err := r.Root()
		if err != nil {
			t.Fatalf("Root after a successful Open: %v", err)
		}
		if root.Type != TypeDir {
			t.Fatalf("root is a %s", root.Type)
		}
		_ = r.Superblock()
	})
}

func FuzzWalk(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog()()
		// Half the inputs read with blocks decompressed straight into
		// the read's buffer.
		opts := fuzzOpts
		if len(data) > 0 && data[len(data)-1]&2 == 2 {
			opts = fuzzDirectOpts
		}
		r, err := Open(bytes.NewReader(data), int64(len(data)), opts)
		if err != nil {
			checkErr(t, "Open", err)
			return
		}
		defer r.Close()
		// Half the inputs walk after a prefetch of the metadata tables
		// (shifter-mount's first step): the same answers, from the cache.
		if len(data) > 0 && data[len(data)-1]&1 == 1 {
			if _, err := r.PrefetchMetadata(1 << 20); err != nil {
				checkErr(t, "PrefetchMetadata", err)
			}
		}
		fuzzWalk(t, r)
	})
}

// fuzzWalk walks and reads all of r with the inode API and the io/fs view.
func fuzzWalk(t *testing.T, r *Reader) {
	root, err := r.Root()
	if err != nil {
		checkErr(t, "Root", err)
		return
	}
	entries, total := 0, 0
	buf := make([]byte, 64<<10)
	var walk func(dir *Inode, ancestors map[InodeRef]bool, depth int)
	walk = func(dir *Inode, ancestors map[InodeRef]bool, depth int) {
		if depth > 64 || entries > fuzzMaxEntries {
			return
		}
		// Resume with cookies, two entries at a time, and compare.
		all, err := r.ReadDir(dir, 0, 0)
		if err != nil {
			checkErr(t, "ReadDir", err)
			return
		}
		var cookie int64
		for i := 0; ; i += 2 {
			part, err := r.ReadDir(dir, cookie, 2)
			if err != nil {
				t.Fatalf("ReadDir(cookie %d) failed after a full ReadDir succeeded: %v", cookie, err)
			}
			if len(part) == 0 {
				if i < len(all) {
					t.Fatalf("ReadDir by cookies ended at %d of %d", i, len(all))
				}
				break
			}
			for j, e := range part {
				if i+j >= len(all) || all[i+j].Name != e.Name {
					t.Fatalf("ReadDir by cookies differs at %d", i+j)
				}
			}
			cookie = part[len(part)-1].Next
		}
		for _, e := range all {
			entries++
			if entries > fuzzMaxEntries {
				return
			}
			if err := checkName(e.Name); err != nil {
				t.Fatalf("ReadDir returned %v", err)
			}
			in, err := r.Lookup(dir, e.Name)
			if errors.Is(err, fs.ErrNotExist) && len(dir.index) > 0 {
				continue // a corrupt directory index can hide entries, as in the kernel
			}
			if err != nil {
				checkErr(t, "Lookup", err)
				continue
			}
			if in.Type != e.Type {
				t.Fatalf("Lookup type %s, entry type %s", in.Type, e.Type)
			}
			if _, err := r.Xattrs(in); err != nil {
				checkErr(t, "Xattrs", err)
			}
			switch in.Type {
			case TypeDir:
				if ancestors[in.Ref] {
					continue
				}
				ancestors[in.Ref] = true
				walk(in, ancestors, depth+1)
				delete(ancestors, in.Ref)
			case TypeSymlink:
				if _, err := r.Readlink(in); err != nil {
					t.Fatalf("Readlink: %v", err)
				}
			case TypeFile:
				for off := int64(0); off < int64(in.Size) && off < fuzzMaxRead && total < fuzzMaxTotal; {
					n, err := r.ReadAt(in, buf, off)
					total += n
					if n > len(buf) || (n < len(buf) && err == nil) {
						t.Fatalf("ReadAt = %d, %v", n, err)
					}
					off += int64(n)
					if err != nil {
						if err != io.EOF {
							checkErr(t, "ReadAt", err)
						}
						break
					}
				}
			}
		}
	}
	walk(root, map[InodeRef]bool{root.Ref: true}, 0)
	// The io/fs view: a few paths, errors only.
	for _, p := range []string{".", "dir", "dir/link", "a/b/c"} {
		if _, err := r.Stat(p); err != nil {
			var pe interface{ Unwrap() error }
			if !errors.As(err, &pe) {
				t.Fatalf("Stat(%s) error %v is not a *fs.PathError", p, err)
			}
		}
	}
}
