// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// realData gathers up to n bytes of one kind of real data: "binary" (ELF
// executables of /usr/bin, in name order) or "text" (/usr/share/doc and
// /usr/share/common-licenses, skipping compressed files).
func realData(tb testing.TB, kind string, n int) []byte {
	tb.Helper()
	var buf []byte
	add := func(path string) {
		if len(buf) >= n {
			return
		}
		b, err := os.ReadFile(path)
		if err == nil {
			buf = append(buf, b[:min(len(b), n-len(buf))]...)
		}
	}
	switch kind {
	case "binary":
		ents, _ := os.ReadDir("/usr/bin")
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			if e.Type().IsRegular() {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, name := range names {
			p := filepath.Join("/usr/bin", name)
			if f, err := elf.Open(p); err == nil {
				f.Close()
				add(p)
			}
		}
	case "text":
		for _, root := range []string{"/usr/share/common-licenses", "/usr/share/doc"} {
			filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
				if err == nil && de.Type().IsRegular() && !strings.HasSuffix(p, ".gz") && !strings.HasSuffix(p, ".xz") {
					add(p)
				}
				if len(buf) >= n {
					return filepath.SkipAll
				}
				return nil
			})
		}
	}
	if len(buf) < n/2 {
		testutil.Unavailable(tb, fmt.Sprintf("only %d bytes of %s data on this system", len(buf), kind))
	}
	return buf
}

// zstdCLI compresses data with the zstd command and args; stdin says
// whether it reads a pipe (no content size in the header) or a file.
func zstdCLI(tb testing.TB, data []byte, stdin bool, args ...string) []byte {
	tb.Helper()
	var cmd *exec.Cmd
	if stdin {
		cmd = exec.Command("zstd", append([]string{"-q", "-c"}, args...)...)
		cmd.Stdin = bytes.NewReader(data)
	} else {
		f := filepath.Join(tb.TempDir(), "in")
		if err := os.WriteFile(f, data, 0o644); err != nil {
			tb.Fatal(err)
		}
		cmd = exec.Command("zstd", append(append([]string{"-q", "-c"}, args...), f)...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("zstd %v: %v: %s", args, err, stderr.Bytes())
	}
	return out
}

// checkDecode decodes z with cap(dst) the size of want and one byte less.
func checkDecode(t *testing.T, name string, z, want []byte) {
	t.Helper()
	got, err := Decode(make([]byte, 0, len(want)), z)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: decoded %d bytes, want %d, or they differ", name, len(got), len(want))
		return
	}
	if len(want) > 0 {
		if _, err := Decode(make([]byte, 0, len(want)-1), z); !errors.Is(err, codec.ErrTooLong) {
			t.Errorf("%s: one byte short: %v, want codec.ErrTooLong", name, err)
		}
	}
}

// TestCLI decodes the zstd command's output: ELF executables, text,
// random bytes (raw blocks), zeros (RLE blocks); sizes from 0 to 1 MiB
// around the 128 KiB block size; levels 1 to 19 and --ultra -22; with and
// without checksums and content sizes; small windows (not single-segment),
// --long, multithreaded, several frames. Each with the exact size as
// cap(dst), and one byte less.
func TestCLI(t *testing.T) {
	testutil.RequireTool(t, "zstd")
	bin := realData(t, "binary", 1<<20)
	txt := realData(t, "text", 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 400<<10)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	type job struct {
		name  string
		data  []byte
		stdin bool
		args  []string
	}
	var jobs []job
	for _, n := range []int{0, 1, 7, 100, 1000, 4096, 65536, 131071, 131072, 131073, 300000} {
		for _, lvl := range []string{"-1", "-3", "-19"} {
			jobs = append(jobs,
				job{fmt.Sprintf("binary %d %s", n, lvl), bin[:n], false, []string{lvl}},
				job{fmt.Sprintf("text %d %s, stdin, checksum", n, lvl), txt[:n], true, []string{lvl, "--check"}})
		}
	}
	for lvl := 1; lvl <= 19; lvl++ {
		jobs = append(jobs, job{fmt.Sprintf("text 200000 -%d", lvl), txt[:200000], false, []string{fmt.Sprintf("-%d", lvl)}})
	}
	jobs = append(jobs,
		job{"binary 1 MiB -3", bin, false, []string{"-3"}},
		job{"binary 1 MiB -19 --no-check", bin, false, []string{"-19", "--no-check"}},
		job{"binary 1 MiB --ultra -22", bin, false, []string{"--ultra", "-22"}},
		job{"text 1 MiB --ultra -22, stdin", txt, true, []string{"--ultra", "-22"}},
		job{"text 1 MiB -5 wlog 17", txt, false, []string{"-5", "--zstd=wlog=17"}},
		job{"binary 1 MiB -9 wlog 10", bin, false, []string{"-9", "--zstd=wlog=10"}},
		job{"text 1 MiB --long=20", txt, false, []string{"-3", "--long=20"}},
		job{"binary 1 MiB -T2 -4", bin, false, []string{"-T2", "-4"}},
		job{"text 1 MiB --fast=3", txt, false, []string{"--fast=3"}},
		job{"random 400 KiB -3", random, false, []string{"-3"}},
		job{"random 400 KiB -19, stdin", random, true, []string{"-19"}},
		job{"zeros 1 MiB -1", make([]byte, 1<<20), false, []string{"-1"}},
		job{"zeros 1 MiB -19, stdin", make([]byte, 1<<20), true, []string{"-19"}},
		job{"mixed -3", append(append(append([]byte(nil), txt[:50000]...), random[:70000]...), make([]byte, 200000)...), false, []string{"-3", "--check"}},
	)
	var mu sync.Mutex
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	zs := make([][]byte, len(jobs))
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			z := zstdCLI(t, j.data, j.stdin, j.args...)
			mu.Lock()
			zs[i] = z
			mu.Unlock()
		}()
	}
	wg.Wait()
	for i, j := range jobs {
		checkDecode(t, j.name, zs[i], j.data)
	}
	// Several frames, and skippable frames between them.
	var multi, want []byte
	for i := 0; i < 6; i++ {
		multi = append(multi, zs[i*7]...)
		want = append(want, jobs[i*7].data...)
		if i%2 == 1 {
			multi = append(multi, 0x5E, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 'a', 'b', 'c')
		}
	}
	checkDecode(t, "frames", multi, want)
	t.Logf("%d streams", len(jobs)+1)
}
