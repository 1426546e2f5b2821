// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
)

// Benchmark images are built once per test process.
var (
	benchMu   sync.Mutex
	benchImgs = map[string]string{}
	benchDir  string
)

// benchImage builds (once) an image of the tree src makes; src returns the
// directory to build from ("" = the directory it was given).
func benchImage(b *testing.B, name string, src func(dir string) string, args ...string) string {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if p, ok := benchImgs[name]; ok {
		return p
	}
	if benchDir == "" {
		d, err := os.MkdirTemp("", "squashreader-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = d
		treeDirs = append(treeDirs, d) // removed by TestMain
	}
	srcDir := filepath.Join(benchDir, name+"-src")
	if err := os.MkdirAll(srcDir, 0o755); err != nil {
		b.Fatal(err)
	}
	if d := src(srcDir); d != "" {
		srcDir = d
	}
	img := filepath.Join(benchDir, name+".sqfs")
	sqtest.BuildTo(b, img, srcDir, args...)
	benchImgs[name] = img
	return img
}

// goroot is the Go toolchain's source tree: a realistic tree of many small
// files.
func goroot(b *testing.B) func(dir string) string {
	return func(string) string { return goRootSrc(b) }
}

// readAll reads every file of r through the inode API and returns the
// bytes read.
func readAll(tb testing.TB, r *Reader) int64 {
	var total int64
	buf := make([]byte, 128<<10)
	err := fs.WalkDir(r.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		in := info.Sys().(*Inode)
		for off := int64(0); ; {
			n, err := r.ReadAt(in, buf, off)
			off += int64(n)
			total += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return total
}

// BenchmarkReadAll reads a whole image (GOROOT/src, gzip) through a fresh
// Reader per iteration: decompression of every block, metadata and data
// (the image file itself stays in the page cache).
func BenchmarkReadAll(b *testing.B) {
	for _, comp := range []string{"gzip", "zstd", "xz", "lz4"} {
		b.Run(comp, func(b *testing.B) {
			img := benchImage(b, "goroot-"+comp, goroot(b), "-comp", comp)
			var n int64
			for b.Loop() {
				r, err := OpenFile(img, nil)
				if err != nil {
					b.Fatal(err)
				}
				n = readAll(b, r)
				r.Close()
			}
			b.SetBytes(n)
		})
	}
}

// BenchmarkSequentialRead reads one 64 MiB file front to back in 128 KiB
// requests (like FUSE), with and without read-ahead.
func BenchmarkSequentialRead(b *testing.B) {
	big := bigSemiText(b)
	for _, comp := range []string{"gzip", "xz", "zstd"} {
		img := benchImage(b, "big-"+comp, big, "-comp", comp)
		for _, ra := range []int{-1, 0} {
			name := comp + "/readahead"
			if ra < 0 {
				name = comp + "/no-readahead"
			}
			b.Run(name, func(b *testing.B) {
				buf := make([]byte, 128<<10)
				var total int64
				for b.Loop() {
					r, err := OpenFile(img, &Options{Readahead: ra})
					if err != nil {
						b.Fatal(err)
					}
					in, err := r.LookupPath("big")
					if err != nil {
						b.Fatal(err)
					}
					total = 0
					for off := int64(0); ; {
						n, err := r.ReadAt(in, buf, off)
						off += int64(n)
						total += int64(n)
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					r.Close()
				}
				b.SetBytes(total)
			})
		}
	}
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bigSemiText makes a 64 MiB file "big" that compresses about 2:1, like
// binaries: half text, half random.
func bigSemiText(b *testing.B) func(dir string) string {
	return func(dir string) string {
		f, err := os.Create(filepath.Join(dir, "big"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		for i := 0; i < 64; i++ {
			if _, err := f.Write(randText(uint64(i), 1<<20)); err != nil {
				b.Fatal(err)
			}
		}
		return ""
	}
}

// randText is half printable random bytes, half repeated words.
func randText(seed uint64, n int) []byte {
	out := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 + 1
	words := []byte("squashfs block fragment inode directory ")
	for i := range out {
		if (i/4096)%2 == 0 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			out[i] = byte(x%94) + 33
		} else {
			out[i] = words[i%len(words)]
		}
	}
	return out
}

// goRootSrc returns the source tree of the installed Go toolchain.
func goRootSrc(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		testutil.Unavailable(tb, "go env GOROOT: "+err.Error())
	}
	src := filepath.Join(strings.TrimSpace(string(out)), "src")
	if _, err := os.Stat(src); err != nil {
		testutil.Unavailable(tb, "no GOROOT/src: "+err.Error())
	}
	return src
}

// BenchmarkDecompress decompresses every data block of the 64 MiB file of
// BenchmarkSequentialRead on one goroutine, without the cache: the speed
// of each decoder (bytes are decompressed bytes).
func BenchmarkDecompress(b *testing.B) {
	for _, comp := range []string{"gzip", "xz", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			img := benchImage(b, "big-"+comp, bigSemiText(b), "-comp", comp)
			r, err := OpenFile(img, &Options{Readahead: -1, DataCacheSize: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			in, err := r.LookupPath("big")
			if err != nil {
				b.Fatal(err)
			}
			var total, all int64
			cpu0 := cpuTime()
			for b.Loop() {
				total = 0
				for bi := range in.sizes {
					want := min(r.bs, int64(in.Size)-int64(bi)*r.bs)
					out, err := r.loadBlock(blockKey{off: in.starts[bi], word: in.sizes[bi], want: uint32(want)})
					if err != nil {
						b.Fatal(err)
					}
					total += int64(len(out))
				}
				all += total
			}
			b.SetBytes(total)
			// The machines are shared: MB per second of this process's CPU
			// time says more than wall time.
			b.ReportMetric(float64(all)/1e6/(cpuTime()-cpu0).Seconds(), "MB/cpu-s")
		})
	}
}
