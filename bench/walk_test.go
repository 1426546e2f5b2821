// SPDX-License-Identifier: BSD-3-Clause

package bench

import (
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"sync"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
	"github.com/shifter-go/shifter/squashreader"
)

// walkStats is what a whole-image read saw.
type walkStats struct {
	Entries int64 // every entry below the root
	Files   int64 // regular files (a hard link counts once per name)
	Bytes   int64 // content bytes of those files
}

// fileSum is one file's content checksum, for comparing with unsquashfs.
type fileSum struct {
	Size int64
	CRC  uint32
}

// readImage walks the whole image through the inode API (what the FUSE
// layer uses), reading every regular file to the end in 1 MiB requests
// and every symlink target. workers > 1 reads that many files at once
// while one goroutine walks the directories. When sums is non-nil it
// receives each file's size and CRC-32C by path.
func readImage(r *squashreader.Reader, workers int, sums map[string]fileSum) (walkStats, error) {
	root, err := r.Root()
	if err != nil {
		return walkStats{}, fmt.Errorf("read root inode: %w", err)
	}
	type job struct {
		name string
		in   *squashreader.Inode
	}
	var (
		st    walkStats
		mu    sync.Mutex
		first error
		jobs  = make(chan job, 64)
		wg    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	readOne := func(j job, buf []byte) {
		n, crc, err := readFile(r, j.in, buf, sums != nil)
		if err != nil {
			fail(fmt.Errorf("read %s: %w", j.name, err))
			return
		}
		mu.Lock()
		st.Bytes += n
		if sums != nil {
			sums[j.name] = fileSum{n, crc}
		}
		mu.Unlock()
	}
	for range max(workers, 1) - 1 {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			for j := range jobs {
				readOne(j, buf)
			}
		})
	}
	buf := make([]byte, 1<<20)
	var walk func(dir *squashreader.Inode, name string) error
	walk = func(dir *squashreader.Inode, name string) error {
		ents, err := r.ReadDir(dir, 0, 0)
		if err != nil {
			return fmt.Errorf("read directory %s: %w", name, err)
		}
		for _, e := range ents {
			p := path.Join(name, e.Name)
			in, err := r.Inode(e.Ref)
			if err != nil {
				return fmt.Errorf("read inode of %s: %w", p, err)
			}
			st.Entries++
			switch in.Type {
			case squashreader.TypeDir:
				if err := walk(in, p); err != nil {
					return err
				}
			case squashreader.TypeFile:
				st.Files++
				if workers > 1 {
					jobs <- job{p, in}
				} else {
					readOne(job{p, in}, buf)
				}
			case squashreader.TypeSymlink:
				if _, err := r.Readlink(in); err != nil {
					return fmt.Errorf("read symlink %s: %w", p, err)
				}
			}
		}
		return nil
	}
	err = walk(root, ".")
	close(jobs)
	wg.Wait()
	if err != nil {
		return st, err
	}
	return st, first
}

func readFile(r *squashreader.Reader, in *squashreader.Inode, buf []byte, sum bool) (int64, uint32, error) {
	var off int64
	var crc uint32
	for {
		n, err := r.ReadAt(in, buf, off)
		if sum {
			crc = crc32.Update(crc, benchutil.Castagnoli, buf[:n])
		}
		off += int64(n)
		if err == io.EOF || (err == nil && n == 0) {
			return off, crc, nil
		}
		if err != nil {
			return off, crc, err
		}
	}
}
