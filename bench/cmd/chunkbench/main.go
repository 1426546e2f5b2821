// SPDX-License-Identifier: BSD-3-Clause

// Command chunkbench chooses the node cache's chunk size: it builds a
// squashfs of a real tree (default /usr/lib/python3.11) and reads it with
// squashreader through nodecache over a simulated slow shared filesystem
// (a fixed latency per request plus a bandwidth cap), for each chunk
// size, in two workloads:
//
//   - python: what `python3 -c 'import json, email, http.client, sqlite3'`
//     opens (its .pyc files and extension modules read whole, the .py
//     files stat'ed), small random reads;
//   - tar: every file of the tree read whole, in walk order.
//
// Each runs with no cache (the reader straight over the slow source),
// a cold cache (filled by the run) and a warm cache (reopened, so only
// the disk cache is warm). It prints the median time, the bytes and the
// requests sent to the source, as a Markdown table.
package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/nodecache"
	"github.com/shifter-go/shifter/squashreader"
)

// slowSource adds latency per request and a bandwidth cap to a source,
// counting requests and bytes.
type slowSource struct {
	nodecache.Source
	latency time.Duration
	bw      float64 // bytes per second, 0 = unlimited
	reqs    atomic.Int64
	bytes   atomic.Int64
}

func (s *slowSource) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.Source.ReadAt(p, off)
	s.reqs.Add(1)
	s.bytes.Add(int64(n))
	d := s.latency
	if s.bw > 0 {
		d += time.Duration(float64(n) / s.bw * float64(time.Second))
	}
	time.Sleep(d)
	return n, err
}

func main() {
	tree := pflag.String("tree", "/usr/lib/python3.11", "tree to pack into the image")
	python := pflag.String("python", "/usr/bin/python3.11", "python whose imports make the small-read workload (its stdlib must be --tree)")
	sizes := pflag.String("chunk-sizes", "64K,256K,1M", "chunk sizes to compare")
	latency := pflag.Duration("latency", 2*time.Millisecond, "latency added to every source request")
	bwFlag := pflag.String("bandwidth", "200M", "source bandwidth per request stream, bytes/s (0: unlimited)")
	reps := pflag.Int("reps", 3, "repetitions of each measurement (median)")
	comp := pflag.String("comp", "gzip", "mksquashfs compressor")
	pflag.Parse()
	if err := run(*tree, *python, *sizes, *latency, *bwFlag, *reps, *comp); err != nil {
		fmt.Fprintln(os.Stderr, "chunkbench:", err)
		os.Exit(1)
	}
}

// pythonFiles lists, relative to tree, the files the import opens (read)
// and the sources it stats.
func pythonFiles(python, tree string) (read, stat []string, err error) {
	script := `
import json, email, http.client, sqlite3, sys
for m in list(sys.modules.values()):
    f = getattr(m, '__file__', None)
    c = getattr(getattr(m, '__spec__', None), 'cached', None)
    if f: print(('R ' if f.endswith('.so') else 'S ') + f)
    if c: print('R ' + c)
`
	out, err := exec.Command(python, "-c", script).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", python, err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		kind, p, _ := strings.Cut(l, " ")
		rel, err := filepath.Rel(tree, p)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		if st, err := os.Lstat(p); err != nil || !st.Mode().IsRegular() {
			continue
		}
		if kind == "R" {
			read = append(read, rel)
		} else {
			stat = append(stat, rel)
		}
	}
	if len(read) == 0 {
		return nil, nil, fmt.Errorf("no module of %s under %s", python, tree)
	}
	return read, stat, nil
}

func run(tree, python, sizes string, latency time.Duration, bwFlag string, reps int, comp string) error {
	bw, err := nodecache.ParseSize(bwFlag)
	if err != nil {
		return err
	}
	read, stat, err := pythonFiles(python, tree)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "chunkbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	img := filepath.Join(tmp, "image.sqfs")
	if out, err := exec.Command("mksquashfs", tree, img, "-noappend", "-quiet", "-no-progress", "-comp", comp).CombinedOutput(); err != nil {
		return fmt.Errorf("mksquashfs: %v\n%s", err, out)
	}
	file, f, err := nodecache.OpenFileSource(img)
	if err != nil {
		return err
	}
	defer f.Close()
	var total int64
	for _, r := range read {
		if st, err := os.Stat(filepath.Join(tree, r)); err == nil {
			total += st.Size()
		}
	}
	fmt.Printf("image: %s of %s (%s, %s); python workload: %d files read (%s), %d stat'ed; source: %v + 1/%s per request\n\n",
		benchutil.MiB(file.Size()), tree, comp, "mksquashfs", len(read), benchutil.MiB(total), len(stat), latency, bwFlag)

	workloads := []struct {
		name string
		fn   func(fsys squashreader.FS) error
	}{
		{"python", func(fsys squashreader.FS) error {
			for _, s := range stat {
				if _, err := fsys.Lstat(s); err != nil {
					return err
				}
			}
			for _, r := range read {
				if _, err := fsys.ReadFile(r); err != nil {
					return err
				}
			}
			return nil
		}},
		{"tar", func(fsys squashreader.FS) error {
			return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.Type().IsRegular() {
					fh, err := fsys.Open(p)
					if err != nil {
						return err
					}
					_, err = io.Copy(io.Discard, fh)
					fh.Close()
					return err
				}
				return nil
			})
		}},
	}
	type result struct {
		secs        []float64
		bytes, reqs int64
	}
	measure := func(ra io.ReaderAt, size int64, fn func(squashreader.FS) error) (float64, error) {
		t0 := time.Now()
		r, err := squashreader.Open(ra, size, nil)
		if err != nil {
			return 0, err
		}
		defer r.Close()
		if err := fn(r.FS()); err != nil {
			return 0, err
		}
		return time.Since(t0).Seconds(), nil
	}
	fmt.Println("| workload | chunk | state | time (median) | from source | requests |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, w := range workloads {
		// No cache: the reader straight over the slow source.
		var res result
		for range reps {
			src := &slowSource{Source: file, latency: latency, bw: float64(bw)}
			s, err := measure(src, file.Size(), w.fn)
			if err != nil {
				return err
			}
			res.secs = append(res.secs, s)
			res.bytes, res.reqs = src.bytes.Load(), src.reqs.Load()
		}
		fmt.Printf("| %s | - | no cache | %s | %s | %d |\n", w.name, benchutil.Seconds(benchutil.Median(res.secs)), benchutil.MiB(res.bytes), res.reqs)
		for _, cs := range strings.Split(sizes, ",") {
			chunk, err := nodecache.ParseSize(cs)
			if err != nil {
				return err
			}
			cl, err := imagestore.ComputeChunkList(file, file.Size(), chunk, 0)
			if err != nil {
				return err
			}
			var cold, warm result
			for rep := range reps {
				dir := filepath.Join(tmp, fmt.Sprintf("cache-%s-%s-%d", w.name, cs, rep))
				for _, state := range []string{"cold", "warm"} {
					c, err := nodecache.Open(dir, nodecache.Options{Size: 4 << 30})
					if err != nil {
						return err
					}
					src := &slowSource{Source: file, latency: latency, bw: float64(bw)}
					im, err := c.Image(strings.Repeat("ab", 32), src, cl)
					if err != nil {
						c.Close()
						return err
					}
					s, err := measure(im, im.Size(), w.fn)
					c.Close()
					if err != nil {
						return err
					}
					r := &cold
					if state == "warm" {
						r = &warm
					}
					r.secs = append(r.secs, s)
					r.bytes, r.reqs = src.bytes.Load(), src.reqs.Load()
				}
				os.RemoveAll(dir)
			}
			fmt.Printf("| %s | %s | cold | %s | %s | %d |\n", w.name, cs, benchutil.Seconds(benchutil.Median(cold.secs)), benchutil.MiB(cold.bytes), cold.reqs)
			fmt.Printf("| %s | %s | warm | %s | %s | %d |\n", w.name, cs, benchutil.Seconds(benchutil.Median(warm.secs)), benchutil.MiB(warm.bytes), warm.reqs)
		}
	}
	return nil
}
