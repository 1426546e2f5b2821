// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/shifter-go/shifter/internal/sqtest"
)

func fixtures(t testing.TB) []string {
	t.Helper()
	imgs, err := filepath.Glob("testdata/*.sqfs")
	if err != nil || len(imgs) == 0 {
		t.Fatalf("no fixtures in testdata (run testdata/make.sh): %v", err)
	}
	return imgs
}

// TestFixtures checks the committed images against unsquashfs -lln and
// runs fstest.TestFS on them.
func TestFixtures(t *testing.T) {
	for _, img := range fixtures(t) {
		t.Run(filepath.Base(img), func(t *testing.T) {
			r, err := OpenFile(img, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			compareListing(t, r, img)
			sub, err := fs.Sub(r.FS(), "dir")
			if err != nil {
				t.Fatal(err)
			}
			if err := fstest.TestFS(sub, "aaaa", "hardlink", "link", "sub/f1"); err != nil {
				t.Errorf("TestFS(dir): %v", err)
			}
			if got, err := r.ReadLink("abs"); err != nil || got != "/absolute/target" {
				t.Errorf("ReadLink(abs) = %q, %v", got, err)
			}
			if got, err := r.ReadFile("dir/link"); err != nil || string(got) != "hello, squashfs\n" {
				t.Errorf("ReadFile(dir/link) = %q, %v", got, err)
			}
			if _, err := r.Open("abs"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open(abs) error %v, want ErrNotExist", err)
			}
		})
	}
}

// TestFSFeatureTree runs fstest.TestFS on an image of the feature tree
// without the symlinks that leave the image.
func TestFSFeatureTree(t *testing.T) {
	for _, small := range []bool{true, false} {
		if !small && testing.Short() {
			continue
		}
		t.Run(map[bool]string{true: "small", false: "full"}[small], func(t *testing.T) {
			tree := featureTree(t, small)
			img := sqtest.Build(t, tree.Dir, "-e", "links/dangling", "links/long")
			r, err := OpenFile(img, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var expected []string
			err = filepath.WalkDir(tree.Dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(tree.Dir, p)
				if rel != "." && rel != "links/dangling" && rel != "links/long" {
					expected = append(expected, filepath.ToSlash(rel))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := fstest.TestFS(r.FS(), expected...); err != nil {
				t.Errorf("TestFS(FS()): %v", err)
			}
			if err := fstest.TestFS(r, expected[:10]...); err != nil {
				t.Errorf("TestFS(Reader): %v", err)
			}
		})
	}
}

// TestOpenNotSquashfs checks errors for files that are not images.
func TestOpenNotSquashfs(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short", []byte("hsqs")},
		{"zeros", make([]byte, 4096)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := OpenFile(p, nil)
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("OpenFile = %v, want ErrFormat", err)
			}
			var fe *FormatError
			if !errors.As(err, &fe) || fe.What == "" {
				t.Fatalf("OpenFile error %v is not a *FormatError with a description", err)
			}
		})
	}
}
