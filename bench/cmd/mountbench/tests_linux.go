// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bytes"
	"context"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
)

// statFormat is what the stat test prints per entry (find -printf lstats
// every entry for it): path, type, mode, uid, gid, size, mtime, nlink,
// symlink target. The output check compares it across methods.
const statFormat = `%P|%y|%m|%U|%G|%s|%T@|%n|%l\n`

// counter counts bytes and, when h is set, hashes them.
type counter struct {
	n int64
	h hash.Hash32
}

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if c.h != nil {
		c.h.Write(p)
	}
	return len(p), nil
}

// runCmd runs argv with stdout into w and returns the elapsed seconds.
func runCmd(ctx context.Context, w io.Writer, argv ...string) (float64, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	start := time.Now()
	err := cmd.Run()
	el := time.Since(start).Seconds()
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(tailString(stderr.String(), 500)))
	}
	return el, nil
}

// testRun runs one test on a mounted image once and returns seconds.
type testRun func(ctx context.Context, mnt string) (float64, error)

func (b *runner) testFunc(name string, img *benchImage) testRun {
	switch name {
	case "find":
		return func(ctx context.Context, mnt string) (float64, error) {
			return runCmd(ctx, &counter{}, "find", mnt, "-xdev")
		}
	case "stat":
		return func(ctx context.Context, mnt string) (float64, error) {
			return runCmd(ctx, &counter{}, "find", mnt, "-xdev", "-printf", statFormat)
		}
	case "tar":
		return func(ctx context.Context, mnt string) (float64, error) {
			return runCmd(ctx, &counter{}, "tar", "-C", mnt, "--exclude=./bench-big", "-cf", "-", ".")
		}
	case "big":
		return func(ctx context.Context, mnt string) (float64, error) {
			start := time.Now()
			for _, f := range img.Big {
				if _, _, err := readFile(filepath.Join(mnt, f.Name), false); err != nil {
					return 0, err
				}
			}
			return time.Since(start).Seconds(), nil
		}
	case "bigpar":
		return func(ctx context.Context, mnt string) (float64, error) {
			start := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, len(img.Big))
			for i, f := range img.Big {
				wg.Go(func() { _, _, errs[i] = readFile(filepath.Join(mnt, f.Name), false) })
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					return 0, err
				}
			}
			return time.Since(start).Seconds(), nil
		}
	case "py":
		return func(ctx context.Context, mnt string) (float64, error) {
			return runCmd(ctx, io.Discard, "chroot", mnt, "python3", "-c", b.cfg.Python)
		}
	}
	panic("unknown test " + name)
}

// readFile reads path sequentially in 1 MiB requests (like dd bs=1M) and
// returns its length and, when sum is set, its CRC-32C.
func readFile(path string, sum bool) (int64, uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read big file: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	h := crc32.New(benchutil.Castagnoli)
	for {
		m, err := f.Read(buf)
		n += int64(m)
		if sum {
			h.Write(buf[:m])
		}
		if err == io.EOF {
			return n, h.Sum32(), nil
		}
		if err != nil {
			return n, 0, fmt.Errorf("read big file: %w", err)
		}
	}
}

// verification is what one method shows of an image, compared across
// methods in the output check.
type verification struct {
	Entries  int64             `json:"entries"`
	StatCRC  uint32            `json:"stat_crc32c"`
	TarBytes int64             `json:"tar_bytes"`
	TarCRC   uint32            `json:"tar_crc32c"`
	BigCRC   map[string]uint32 `json:"big_crc32c"`
	PyOK     bool              `json:"py_ok"`
	Err      string            `json:"error,omitempty"`
	stat     []byte            // the stat listing, written out when it differs
}

// verify reads what the output check compares, untimed.
func (b *runner) verify(ctx context.Context, mnt string, img *benchImage) *verification {
	v := &verification{BigCRC: map[string]uint32{}}
	var errs []string
	var list bytes.Buffer
	if _, err := runCmd(ctx, &list, "find", mnt, "-xdev", "-printf", statFormat); err != nil {
		errs = append(errs, err.Error())
	}
	v.stat = list.Bytes()
	v.Entries = int64(bytes.Count(v.stat, []byte{'\n'}))
	v.StatCRC = crc32.Checksum(v.stat, benchutil.Castagnoli)
	tc := &counter{h: crc32.New(benchutil.Castagnoli)}
	if _, err := runCmd(ctx, tc, "tar", "-C", mnt, "--exclude=./bench-big", "-cf", "-", "."); err != nil {
		errs = append(errs, err.Error())
	}
	v.TarBytes, v.TarCRC = tc.n, tc.h.Sum32()
	for _, f := range img.Big {
		_, crc, err := readFile(filepath.Join(mnt, f.Name), true)
		if err != nil {
			errs = append(errs, err.Error())
		}
		v.BigCRC[f.Name] = crc
	}
	_, err := runCmd(ctx, io.Discard, "chroot", mnt, "python3", "-c", b.cfg.Python)
	v.PyOK = err == nil
	if err != nil {
		errs = append(errs, err.Error())
	}
	v.Err = strings.Join(errs, "; ")
	return v
}

// compare describes how v differs from the kernel's ref and the
// generated files ("ok" when it does not).
func (v *verification) compare(ref *verification, img *benchImage) string {
	var d []string
	if v.Err != "" {
		d = append(d, "errors")
	}
	if ref != nil && v != ref {
		if v.Entries != ref.Entries {
			d = append(d, fmt.Sprintf("%d entries, kernel %d", v.Entries, ref.Entries))
		}
		if v.StatCRC != ref.StatCRC {
			d = append(d, "lstat differs: "+listingDiff(ref.stat, v.stat))
		}
		if v.TarBytes != ref.TarBytes || v.TarCRC != ref.TarCRC {
			d = append(d, "tar bytes differ")
		}
	}
	for _, f := range img.Big {
		if v.BigCRC[f.Name] != f.CRC {
			d = append(d, f.Name+" content differs")
		}
	}
	if !v.PyOK {
		d = append(d, "python failed")
	}
	if len(d) == 0 {
		return "ok"
	}
	return strings.Join(d, ", ")
}

// listingDiff says how many lines of two stat listings differ and shows
// the first difference.
func listingDiff(ref, got []byte) string {
	a := strings.Split(string(ref), "\n")
	b := strings.Split(string(got), "\n")
	n, first := 0, ""
	for i := range max(len(a), len(b)) {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if n == 0 {
				first = fmt.Sprintf("kernel `%s`, here `%s`", x, y)
			}
			n++
		}
	}
	return fmt.Sprintf("%d of %d lines, first: %s", n, len(a)-1, first)
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
