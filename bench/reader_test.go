// SPDX-License-Identifier: BSD-3-Clause

package bench

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shifter-go/shifter/squashreader"
)

// BenchmarkReadImage reads a whole image through squashreader and, in the
// same iteration, extracts it with `unsquashfs -d DIR -f IMAGE` into tmpfs
// (/dev/shm). ns/op is the reader's time; unsquashfs-ns/op the
// extraction's; x-unsquashfs their ratio (below 1: the reader is faster).
// MB/s counts the file bytes read.
//
// walk: one goroutine walks and reads file after file (the reader's own
// readahead decompresses big files on all cores). par: GOMAXPROCS
// goroutines read files at once, as unsquashfs's threads do.
//
// The images: $BENCH_IMAGES (paths separated by spaces; `make bench` passes
// mountbench's cached images), else bench/cache/images/*.squashfs, else
// small gzip/zstd/xz images of GOROOT/src built in a temporary directory.
// Both sides read the image file through the page cache (warm) unless
// BENCH_DROP_CACHES=1 (root), which drops it before each side.
func BenchmarkReadImage(b *testing.B) {
	for _, img := range benchImages(b) {
		name := strings.TrimSuffix(filepath.Base(img), ".squashfs")
		for _, mode := range []struct {
			name    string
			workers int
		}{{"walk", 1}, {"par", runtime.GOMAXPROCS(0)}} {
			b.Run(name+"/"+mode.name, func(b *testing.B) {
				benchReadImage(b, img, mode.workers)
			})
		}
	}
}

func benchReadImage(b *testing.B, img string, workers int) {
	if _, err := exec.LookPath("unsquashfs"); err != nil {
		b.Skip("needs unsquashfs (Debian squashfs-tools)")
	}
	shm := os.Getenv("BENCH_TMPFS")
	if shm == "" {
		shm = "/dev/shm"
	}
	var readerNs, unsqNs time.Duration
	var st walkStats
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dropCaches(b)
		b.StartTimer()
		start := time.Now()
		r, err := squashreader.OpenFile(img, nil)
		if err != nil {
			b.Fatalf("open %s: %v", img, err)
		}
		st, err = readImage(r, workers, nil)
		r.Close()
		readerNs += time.Since(start)
		if err != nil {
			b.Fatalf("read %s: %v", img, err)
		}
		b.StopTimer()

		dir, err := os.MkdirTemp(shm, "readbench-")
		if err != nil {
			b.Fatal(err)
		}
		out := filepath.Join(dir, "root")
		dropCaches(b)
		start = time.Now()
		cmdOut, err := exec.Command("unsquashfs", "-no-progress", "-d", out, "-f", img).CombinedOutput()
		unsqNs += time.Since(start)
		if err != nil {
			os.RemoveAll(dir)
			b.Fatalf("unsquashfs %s: %v\n%s", img, err, cmdOut)
		}
		if i == 0 {
			// The reader must have seen what unsquashfs wrote.
			want, err := treeStats(out)
			if err != nil {
				b.Fatal(err)
			}
			if want != st {
				os.RemoveAll(dir)
				b.Fatalf("reader saw %+v, unsquashfs wrote %+v", st, want)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(readerNs.Nanoseconds())/n, "ns/op")
	b.ReportMetric(float64(unsqNs.Nanoseconds())/n, "unsquashfs-ns/op")
	b.ReportMetric(float64(readerNs)/float64(unsqNs), "x-unsquashfs")
	b.ReportMetric(float64(st.Bytes)/1e6/(readerNs.Seconds()/n), "MB/s")
	b.ReportMetric(float64(st.Entries), "entries")
}

// treeStats counts what unsquashfs extracted under dir as readImage does.
func treeStats(dir string) (walkStats, error) {
	var st walkStats
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		st.Entries++
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			st.Files++
			st.Bytes += info.Size()
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("walk extracted tree: %w", err)
	}
	return st, nil
}

func dropCaches(b *testing.B) {
	if os.Getenv("BENCH_DROP_CACHES") != "1" {
		return
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		b.Fatalf("drop caches (BENCH_DROP_CACHES=1 needs root): %v", err)
	}
}

var (
	imagesOnce sync.Once
	images     []string
	imagesErr  error
	imagesTmp  string
)

// benchImages returns the images to read (see BenchmarkReadImage).
func benchImages(b *testing.B) []string {
	imagesOnce.Do(func() {
		if env := strings.Fields(os.Getenv("BENCH_IMAGES")); len(env) > 0 {
			images = env
			return
		}
		images, _ = filepath.Glob("cache/images/*.squashfs")
		sort.Strings(images)
		if len(images) > 0 {
			return
		}
		if _, err := exec.LookPath("mksquashfs"); err != nil {
			imagesErr = fmt.Errorf("no cached images and no mksquashfs (Debian squashfs-tools)")
			return
		}
		imagesTmp, imagesErr = os.MkdirTemp("", "readbench-img-")
		if imagesErr != nil {
			return
		}
		root, err := goroot()
		if err != nil {
			imagesErr = err
			return
		}
		src := filepath.Join(root, "src")
		for _, c := range []string{"gzip", "zstd", "xz"} {
			p := filepath.Join(imagesTmp, "gosrc-"+c+".squashfs")
			out, err := exec.Command("mksquashfs", src, p, "-comp", c, "-no-progress", "-quiet").CombinedOutput()
			if err != nil {
				imagesErr = fmt.Errorf("mksquashfs %s: %w\n%s", src, err, out)
				return
			}
			images = append(images, p)
		}
	})
	if imagesErr != nil {
		b.Skip(imagesErr)
	}
	if imagesTmp != "" {
		b.Logf("no cached images (make bench builds them): reading images of GOROOT/src")
	}
	return images
}

// goroot asks the go command for GOROOT (its source tree is a handy
// realistic tree that every build machine has).
func goroot() (string, error) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOROOT: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if imagesTmp != "" {
		os.RemoveAll(imagesTmp)
	}
	os.Exit(code)
}
