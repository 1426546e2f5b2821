// SPDX-License-Identifier: BSD-3-Clause

package fusefs_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
)

// benchImage is an image of the Go toolchain's sources (about 13,000
// entries), the mid-size tree of the walk benchmarks.
func benchImage(b *testing.B) string {
	b.Helper()
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Fatalf("go env GOROOT: %v", err)
	}
	return sqtest.Build(b, filepath.Join(strings.TrimSpace(string(goroot)), "src"), "-comp", "gzip")
}

// lstatAll lstats every entry under root, as find -printf '%s' does.
func lstatAll(b *testing.B, root string) int {
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkWarmStat: a directory walk that lstats every entry, with warm
// caches, on the kernel's squashfs, squashfuse_ll and fusefs mounts of the
// same image. For fusefs it also reports the requests that reached the
// server per walk (0 when the kernel's caches answer everything).
//
//	go test -run XXX -bench WarmStat ./fusefs/
func BenchmarkWarmStat(b *testing.B) {
	testutil.RequireLoop(b)
	testutil.RequireFUSE(b)
	img := benchImage(b)
	var fsys *fusefs.FS
	mounts := []struct {
		name  string
		mount func() string
	}{
		{"kernel", func() string { return sqtest.MountKernel(b, img) }},
		{"squashfuse_ll", func() string { return mountSquashfuseLL(b, img) }},
		{"fusefs", func() string {
			var mnt string
			mnt, fsys = mountFUSE(b, img, nil)
			return mnt
		}},
	}
	for _, m := range mounts {
		b.Run(m.name, func(b *testing.B) {
			mnt := m.mount()
			lstatAll(b, mnt) // cold walk: fills the caches
			var cold uint64
			if fsys != nil && m.name == "fusefs" {
				cold = fsys.Stats().Total()
				fsys.ResetStats()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lstatAll(b, mnt)
			}
			if fsys != nil && m.name == "fusefs" {
				b.ReportMetric(float64(fsys.Stats().Total())/float64(b.N), "requests/op")
				b.ReportMetric(float64(cold), "cold-walk-requests")
			}
		})
	}
}
