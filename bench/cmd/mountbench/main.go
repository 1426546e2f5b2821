// SPDX-License-Identifier: BSD-3-Clause

// Command mountbench times a squashfs image mounted by the kernel
// (mount -t squashfs -o loop,ro), squashfuse_ll and our shifter-mount, cold
// (page cache dropped, fresh mount) and warm, in one run: mount time, a
// metadata walk (find), an lstat of every entry, a read of every file
// (tar), sequential reads of big files one after the other and four at
// once, and a python import in a chroot. It prints medians with their
// ratio to the kernel, the FUSE servers' peak RSS and an output check, and
// writes the results as markdown and JSON under bench/results.
//
// It needs root (mounts, chroot, drop_caches). See bench/README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
)

// allTests in the order they run and are reported.
var allTests = []string{"mount", "find", "stat", "tar", "big", "bigpar", "py"}

// allMethods known to the driver; squashfuse (high-level) is not run by
// default.
var allMethods = []string{"kernel", "squashfuse_ll", "shifter-mount", "squashfuse"}

type config struct {
	CacheDir   string        `json:"cache_dir"`
	ResultsDir string        `json:"results_dir"`
	BinDir     string        `json:"bin_dir"`
	Comps      []string      `json:"compressors"`
	Methods    []string      `json:"methods"`
	Tests      []string      `json:"tests"`
	Reps       int           `json:"repetitions"`
	MountReps  int           `json:"mount_samples_per_repetition"`
	BigFiles   int           `json:"big_files"`
	BigSize    int64         `json:"big_size"`
	Pin        bool          `json:"pinned_cpu0"`
	DropAfter  bool          `json:"drop_after_mount"`
	RootfsOnly bool          `json:"rootfs_only"`
	Quick      bool          `json:"quick"`
	Prepare    bool          `json:"-"`
	Mirror     string        `json:"-"`
	Extra      []string      `json:"mksquashfs_extra,omitempty"`
	MountOpts  []string      `json:"shifter_mount_opts,omitempty"`
	Budget     time.Duration `json:"time_budget,omitempty"`
	Python     string        `json:"python_code"`
	DAMON      string        `json:"damon"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	cfg, err := parseFlags(args)
	if err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		fmt.Fprintln(os.Stderr, "mountbench:", err)
		return 2
	}
	if err := bench(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "mountbench:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string) (*config, error) {
	fs := pflag.NewFlagSet("mountbench", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: mountbench [options]\n\nTimes kernel squashfs, squashfuse_ll and shifter-mount on one image (needs root).\n\nOptions:\n")
		fs.PrintDefaults()
	}
	cfg := &config{}
	var bigSize string
	fs.StringVar(&cfg.CacheDir, "cache", "bench/cache", "directory of the cached rootfs, big files and images")
	fs.StringVar(&cfg.ResultsDir, "results", "bench/results", "directory for the markdown and JSON results (\"\" = do not write)")
	fs.StringVar(&cfg.BinDir, "bin", "bin", "directory holding shifter-mount")
	fs.StringSliceVar(&cfg.Comps, "comp", []string{"gzip", "zstd", "xz"}, "compressors, one image each")
	fs.StringSliceVar(&cfg.Methods, "methods", []string{"kernel", "squashfuse_ll", "shifter-mount"}, "methods: "+strings.Join(allMethods, ","))
	fs.StringSliceVar(&cfg.Tests, "tests", allTests, "tests: "+strings.Join(allTests, ","))
	fs.IntVarP(&cfg.Reps, "reps", "n", 5, "repetitions of every figure")
	fs.IntVar(&cfg.MountReps, "mount-samples", 7, "cold and warm mounts timed in each repetition of the mount test (a mount takes milliseconds: one sample a repetition is mostly noise)")
	fs.IntVar(&cfg.BigFiles, "big-files", 4, "number of big files under /bench-big")
	fs.StringVar(&bigSize, "big-size", "256M", "size of each big file (K, M, G suffixes)")
	fs.BoolVar(&cfg.Pin, "pin", false, "run everything (driver, tools, FUSE servers) on CPU 0 (taskset -c 0)")
	fs.BoolVar(&cfg.DropAfter, "drop-after-mount", false, "cold runs: mount fresh, then drop the page cache (sync; echo 3 > /proc/sys/vm/drop_caches), then the test (default: drop, then mount)")
	fs.BoolVar(&cfg.RootfsOnly, "rootfs-only", false, "the images without big files (<comp>-rootfs.squashfs, startbench's); drops big and bigpar from the default tests")
	fs.BoolVar(&cfg.Quick, "quick", false, "quick check while developing: gzip only, 1 repetition, 4 x 16M big files (explicit flags win)")
	fs.BoolVar(&cfg.Prepare, "prepare", false, "only build the cached images, run nothing")
	fs.StringVar(&cfg.Mirror, "mirror", benchutil.DefaultMirror, "Debian mirror for debootstrap")
	fs.StringSliceVar(&cfg.Extra, "mksquashfs-opt", nil, "extra mksquashfs options for the images (e.g. -b,1M)")
	fs.StringSliceVar(&cfg.MountOpts, "shifter-mount-opt", nil, "extra shifter-mount options (e.g. --readahead=8,--data-cache-mb=128)")
	fs.DurationVar(&cfg.Budget, "time-budget", 0, "start no repetition that would end after this much time (e.g. 30m; 0 = run them all)")
	fs.StringVar(&cfg.DAMON, "damon", "pause", "pause: turn off running DAMON page-out schemes for the run and back on after (they evict the page cache between cold and warm runs); keep: leave them")
	fs.StringVar(&cfg.Python, "py", "import json, email, http.client, sqlite3", "python code of the py test")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if cfg.DAMON != "pause" && cfg.DAMON != "keep" {
		return nil, fmt.Errorf("--damon %q: want pause or keep", cfg.DAMON)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.Quick {
		if !fs.Changed("comp") {
			cfg.Comps = []string{"gzip"}
		}
		if !fs.Changed("reps") {
			cfg.Reps = 1
		}
		if !fs.Changed("big-size") {
			bigSize = "16M"
		}
	}
	if cfg.RootfsOnly {
		if fs.Changed("big-files") || fs.Changed("big-size") {
			return nil, fmt.Errorf("--rootfs-only: the images have no big files (--big-files, --big-size)")
		}
		cfg.BigFiles = 0
		if !fs.Changed("tests") {
			cfg.Tests = slices.DeleteFunc(cfg.Tests, func(t string) bool { return t == "big" || t == "bigpar" })
		}
		for _, t := range cfg.Tests {
			if t == "big" || t == "bigpar" {
				return nil, fmt.Errorf("--rootfs-only: no big files for the %s test", t)
			}
		}
	}
	if cfg.MountReps < 1 {
		return nil, fmt.Errorf("--mount-samples %d: want at least 1", cfg.MountReps)
	}
	n, err := parseSize(bigSize)
	if err != nil {
		return nil, fmt.Errorf("parse --big-size: %w", err)
	}
	cfg.BigSize = n
	for _, m := range cfg.Methods {
		if !slices.Contains(allMethods, m) {
			return nil, fmt.Errorf("unknown method %q (known: %s)", m, strings.Join(allMethods, ", "))
		}
	}
	for _, t := range cfg.Tests {
		if !slices.Contains(allTests, t) {
			return nil, fmt.Errorf("unknown test %q (known: %s)", t, strings.Join(allTests, ", "))
		}
	}
	if cfg.Reps < 1 {
		return nil, fmt.Errorf("--reps must be at least 1")
	}
	return cfg, nil
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
