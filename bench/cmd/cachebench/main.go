// SPDX-License-Identifier: BSD-3-Clause

// Command cachebench measures the node cache (issue 11): Python start-up
// and a full tar of the debootstrap image through shifter-mount with no
// cache, a cold cache and a warm cache, next to the kernel's loop mount,
// with the image read from a file, over HTTP, and over an HTTP server
// that simulates a loaded shared filesystem (latency per request and a
// bandwidth cap); and the chunk size. The page cache is dropped after
// every mount. See bench/README.md, "cache".
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

type config struct {
	CacheDir   string
	ResultsDir string
	BinDir     string
	Comp       string
	Reps       int
	Tests      []string
	ChunkSizes []string
	DefChunk   string
	Latency    time.Duration
	Bandwidth  string
	Python     string
	Quick      bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	fs := pflag.NewFlagSet("cachebench", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: cachebench [options]\n\nTimes Python start-up and a full tar through the node cache (needs root).\n\nOptions:\n")
		fs.PrintDefaults()
	}
	cfg := &config{}
	fs.StringVar(&cfg.CacheDir, "cache", "bench/cache", "directory of the cached rootfs and images (mountbench's)")
	fs.StringVar(&cfg.ResultsDir, "results", "bench/results", "directory for the markdown and JSON results (\"\" = do not write)")
	fs.StringVar(&cfg.BinDir, "bin", "bin", "directory holding shifter-mount and shifter-mount-cache")
	fs.StringVar(&cfg.Comp, "comp", "gzip", "compressor of the image")
	fs.IntVarP(&cfg.Reps, "reps", "n", 3, "repetitions of every figure (medians are reported)")
	fs.StringSliceVar(&cfg.ChunkSizes, "chunk-sizes", []string{"64K", "256K", "1M"}, "chunk sizes compared (file source)")
	fs.StringVar(&cfg.DefChunk, "chunk-size", "256K", "chunk size of the HTTP and slow-source runs")
	fs.DurationVar(&cfg.Latency, "slow-latency", 2*time.Millisecond, "the slow source's latency per request")
	fs.StringVar(&cfg.Bandwidth, "slow-bandwidth", "10M", "the slow source's bandwidth cap, bytes per second (shared by all requests; 10M: what one node of a 2,000-node job gets when the job starts, bench/README.md)")
	fs.StringVar(&cfg.Python, "python", "import json, email, http.client, sqlite3", "the Python start-up test's code")
	fs.BoolVar(&cfg.Quick, "quick", false, "one repetition, default chunk size only")
	fs.StringSliceVar(&cfg.Tests, "tests", []string{"python", "tar"}, "tests: python,tar")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		fmt.Fprintln(os.Stderr, "cachebench:", err)
		return 2
	}
	for _, t := range cfg.Tests {
		if t != "python" && t != "tar" {
			fmt.Fprintf(os.Stderr, "cachebench: --tests: unknown test %q (python, tar)\n", t)
			return 2
		}
	}
	if cfg.Quick {
		cfg.Reps = 1
		cfg.ChunkSizes = []string{cfg.DefChunk}
	}
	if err := bench(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "cachebench:", err)
		return 1
	}
	return 0
}
