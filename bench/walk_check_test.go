// SPDX-License-Identifier: BSD-3-Clause

package bench

import (
	"hash/crc32"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/squashreader"
)

// TestReadImageMatchesUnsquashfs checks the benchmark's whole-image read
// against unsquashfs: the same files with the same contents, with one
// reading goroutine and with several.
func TestReadImageMatchesUnsquashfs(t *testing.T) {
	testutil.RequireTool(t, "mksquashfs")
	testutil.RequireTool(t, "unsquashfs")
	root, err := goroot()
	if err != nil {
		testutil.Unavailable(t, err.Error())
	}
	src := filepath.Join(root, "src", "encoding")
	for _, comp := range []string{"gzip", "xz"} {
		t.Run(comp, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "img.squashfs")
			if out, err := exec.Command("mksquashfs", src, img, "-comp", comp, "-no-progress", "-quiet").CombinedOutput(); err != nil {
				t.Fatalf("mksquashfs: %v\n%s", err, out)
			}
			out := filepath.Join(dir, "x")
			if b, err := exec.Command("unsquashfs", "-no-progress", "-d", out, img).CombinedOutput(); err != nil {
				t.Fatalf("unsquashfs: %v\n%s", err, b)
			}
			want := map[string]fileSum{}
			err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(out, p)
				want[rel] = fileSum{int64(len(b)), crc32.Checksum(b, benchutil.Castagnoli)}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			wantStats, err := treeStats(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, workers := range []int{1, 4} {
				r, err := squashreader.OpenFile(img, nil)
				if err != nil {
					t.Fatalf("OpenFile(%s) error %v", img, err)
				}
				got := map[string]fileSum{}
				st, err := readImage(r, workers, got)
				r.Close()
				if err != nil {
					t.Fatalf("readImage(workers=%d) error %v", workers, err)
				}
				if st != wantStats {
					t.Errorf("readImage(workers=%d) stats = %+v, want %+v", workers, st, wantStats)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("readImage(workers=%d) files differ from unsquashfs (-want +got):\n%s", workers, diff)
				}
			}
		})
	}
}
