// SPDX-License-Identifier: BSD-3-Clause

// Command startbench times container start-up: `shifter --image=id:ID CMD`
// in loop and fuse modes, beside a hand-made floor (unshare -m, kernel
// squashfs mount, chroot), the same floor with squashfuse_ll, and
// Charliecloud's ch-run on the same squashfs (through its built-in
// squashfuse) and on the unpacked rootfs directory, for CMD /bin/true and
// a python import, in one run, with each median's ratio to the floor;
// and shifter through shifterd's shared mount (the daemon started by the
// benchmark, its mount made by a first start) beside the same command run
// on the host itself.
//
// By default the runtimes run as an ordinary user (nobody): the driver
// builds setuid-root copies of shifter for the run and starts them, and
// ch-run, with the user's credentials; the floors run as root. --as-root
// runs everything as root, the installed bin/shifter with SHIFTER_CONFIG.
// --pin runs everything on CPU 0.
//
// It needs root. See bench/README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
)

var allMethods = []string{"floor", "floor-fuse", "shifter-loop", "shifter-fuse", "shifterd", "ch-run", "ch-run-dir", "host"}

var allTests = []string{"true", "py"}

type config struct {
	CacheDir   string   `json:"cache_dir"`
	ResultsDir string   `json:"results_dir"`
	BinDir     string   `json:"bin_dir"`
	Comp       string   `json:"compressor"`
	Methods    []string `json:"methods"`
	Tests      []string `json:"tests"`
	Reps       int      `json:"repetitions"`
	Python     string   `json:"python_code"`
	Cold       int      `json:"cold_repetitions"`
	AsRoot     bool     `json:"as_root"`
	User       string   `json:"user,omitempty"`
	Src        string   `json:"source_dir"`
	SetuidDir  string   `json:"setuid_dir"`
	Pin        bool     `json:"pinned_cpu0"`
	Mirror     string   `json:"-"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	fs := pflag.NewFlagSet("startbench", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: startbench [options]\n\nTimes container start-up: shifter (loop, fuse) against unshare+mount+chroot and ch-run (needs root).\n\nOptions:\n")
		fs.PrintDefaults()
	}
	cfg := &config{}
	var quick bool
	fs.StringVar(&cfg.CacheDir, "cache", "bench/cache", "directory of the cached rootfs and images")
	fs.StringVar(&cfg.ResultsDir, "results", "bench/results", "directory for the markdown and JSON results (\"\" = do not write)")
	fs.StringVar(&cfg.BinDir, "bin", "bin", "directory holding shifter and shifter-mount")
	fs.StringVar(&cfg.Comp, "comp", "gzip", "compressor of the image (the rootfs without big files)")
	fs.StringSliceVar(&cfg.Methods, "methods", allMethods, "methods: "+strings.Join(allMethods, ","))
	fs.StringSliceVar(&cfg.Tests, "tests", allTests, "commands: true (/bin/true), py (python import)")
	fs.IntVarP(&cfg.Reps, "reps", "n", 20, "runs of every command with every method")
	fs.IntVar(&cfg.Cold, "cold", 3, "runs of the python start through shifterd with the page cache dropped, per node-cache state (0: none)")
	fs.StringVar(&cfg.Python, "py", "import json, email, http.client, sqlite3", "python code of the py test")
	fs.BoolVar(&cfg.AsRoot, "as-root", false, "run every method as root (shifter: bin/shifter with SHIFTER_CONFIG, not setuid)")
	fs.StringVar(&cfg.User, "user", "nobody", "the ordinary user the runtimes (setuid shifter, ch-run, host) run as")
	fs.StringVar(&cfg.Src, "src", ".", "the module's source directory (the setuid shifter copies are built from it)")
	fs.StringVar(&cfg.SetuidDir, "setuid-dir", "/run", "where to create the root-owned directory of the setuid shifter copies and their udiRoot.conf (root-owned, not writable by others, not nosuid)")
	fs.BoolVar(&cfg.Pin, "pin", false, "run everything (driver, runtimes, FUSE helpers, commands) on CPU 0 (re-executes under taskset -c 0)")
	fs.StringVar(&cfg.Mirror, "mirror", benchutil.DefaultMirror, "Debian mirror for debootstrap")
	fs.BoolVar(&quick, "quick", false, "quick check while developing: 3 runs (explicit flags win)")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		fmt.Fprintln(os.Stderr, "startbench:", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "startbench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if cfg.Reps < 1 {
		fmt.Fprintln(os.Stderr, "startbench: --reps must be at least 1")
		return 2
	}
	if cfg.AsRoot {
		cfg.User = ""
	}
	if quick && !fs.Changed("reps") {
		cfg.Reps = 3
	}
	for _, m := range cfg.Methods {
		if !slices.Contains(allMethods, m) {
			fmt.Fprintf(os.Stderr, "startbench: unknown method %q (known: %s)\n", m, strings.Join(allMethods, ", "))
			return 2
		}
	}
	for _, t := range cfg.Tests {
		if !slices.Contains(allTests, t) {
			fmt.Fprintf(os.Stderr, "startbench: unknown test %q (known: %s)\n", t, strings.Join(allTests, ", "))
			return 2
		}
	}
	if err := bench(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "startbench:", err)
		return 1
	}
	return 0
}
