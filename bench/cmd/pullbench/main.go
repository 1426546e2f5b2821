// SPDX-License-Identifier: BSD-3-Clause

// Command pullbench times the image gateway: `shifterimg pull` of a
// ~260 MB two-layer image (the benchmark rootfs) from go-containerregistry's
// registry on 127.0.0.1 through a fresh `shifter-gateway`, against the
// floor of pulling, flattening and mksquashfs'ing the same image in one
// stream; and N concurrent pulls of the same tag against one.
//
// See bench/README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
)

type config struct {
	CacheDir       string   `json:"cache_dir"`
	ResultsDir     string   `json:"results_dir"`
	BinDir         string   `json:"bin_dir"`
	Reps           int      `json:"repetitions"`
	Concurrent     int      `json:"concurrent"`
	MksquashfsArgs []string `json:"floor_mksquashfs_args,omitempty"`
	Mirror         string   `json:"-"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	fs := pflag.NewFlagSet("pullbench", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: pullbench [options]\n\nTimes shifterimg pull through shifter-gateway against flatten + mksquashfs.\n\nOptions:\n")
		fs.PrintDefaults()
	}
	cfg := &config{}
	var quick bool
	fs.StringVar(&cfg.CacheDir, "cache", "bench/cache", "directory of the cached rootfs and layers")
	fs.StringVar(&cfg.ResultsDir, "results", "bench/results", "directory for the markdown and JSON results (\"\" = do not write)")
	fs.StringVar(&cfg.BinDir, "bin", "bin", "directory holding shifter-gateway and shifterimg")
	fs.IntVarP(&cfg.Reps, "reps", "n", 3, "repetitions")
	fs.IntVar(&cfg.Concurrent, "concurrent", 4, "number of concurrent pulls of the same tag")
	fs.StringSliceVar(&cfg.MksquashfsArgs, "mksquashfs-opt", nil, "extra mksquashfs options of the floor (set the gateway's mksquashfs_args to match)")
	fs.StringVar(&cfg.Mirror, "mirror", benchutil.DefaultMirror, "Debian mirror for debootstrap")
	fs.BoolVar(&quick, "quick", false, "quick check while developing: 1 repetition (explicit flags win)")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		fmt.Fprintln(os.Stderr, "pullbench:", err)
		return 2
	}
	if quick && !fs.Changed("reps") {
		cfg.Reps = 1
	}
	if cfg.Reps < 1 || cfg.Concurrent < 1 {
		fmt.Fprintln(os.Stderr, "pullbench: --reps and --concurrent must be at least 1")
		return 2
	}
	if err := bench(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "pullbench:", err)
		return 1
	}
	return 0
}
