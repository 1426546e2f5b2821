// SPDX-License-Identifier: BSD-3-Clause

// Command shifter-mount mounts a squashfs image read-only through FUSE,
// served by the project's Go squashfs reader, like squashfuse:
//
//	shifter-mount [options] IMAGE MOUNTPOINT
//
// It returns once the mount is ready (the server keeps running in the
// background) or, with -f, stays in the foreground. umount MOUNTPOINT, or
// SIGTERM/SIGINT to the server, unmounts the image and ends the server.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/udiroot"
)

// mainStart is when main began, the origin of the start-up step timings.
var mainStart time.Time

func main() {
	mainStart = time.Now()
	os.Exit(run(os.Args[1:], os.Stderr))
}

// config is everything the command line sets.
type config struct {
	image, mountpoint string

	foreground bool
	debug      bool
	allowOther bool
	fsName     string
	subtype    string
	offset     int64
	extraOpts  []string // kernel mount options passed through (noexec, noatime)

	logFile  string
	logLevel string
	readyFD  int
	pidFile  string
	stats    bool
	cpuProf  string

	daemonHow string // how this daemon was started ("" when not one)

	// notifyDelay delays catching signals (tests: a signal that comes
	// before the server handles them). Not a flag.
	notifyDelay time.Duration

	metadataCache   int
	dataCacheMiB    int64
	readahead       int
	inodeCache      int
	prefetchMetaMiB int64
	kernelReadahead int // KiB
	maxReadKiB      int
	maxBackground   int
	noReaddirPlus   bool
	entryTimeout    time.Duration
	attrTimeout     time.Duration
	negativeTimeout time.Duration

	// The node cache (cache_linux.go); cacheSize is parsed from
	// cacheSizeArg.
	cacheDir      string
	cacheSizeArg  string
	cacheSize     int64
	cacheOptional bool
	chunks        string
	chunksSHA256  string
	source        string
	imageID       string
}

const usageHead = `Usage: shifter-mount [options] IMAGE MOUNTPOINT
       shifter-mount --cache-dir DIR [--cache-size SIZE] IMAGE MOUNTPOINT
       shifter-mount --cache-dir DIR --source URL ID MOUNTPOINT

Mount the squashfs image IMAGE read-only on MOUNTPOINT through FUSE. What
programs see through the mount is what a kernel mount of the image shows.
The command returns once the mount is ready and the server runs on in the
background (-f: in the foreground). "umount MOUNTPOINT" (or fusermount3 -u
for an unprivileged mount), or SIGTERM/SIGINT/SIGHUP to the server,
unmounts; if the mount is still in use it is detached (umount -l) and the
server exits when its last file is closed. SIGUSR1 logs request counts.

The mount is always ro,nosuid,nodev,default_permissions.

Options:
`

const usageOpts = `
Mount options (-o opt[,opt...], as squashfuse takes them):
  ro                    accepted (the mount is always read-only)
  allow_other           let other users use the mount (--allow-other)
  debug                 same as --debug
  fsname=NAME           same as --fsname
  subtype=NAME          same as --subtype
  offset=N              the image starts N bytes into IMAGE (--offset)
  max_read=N            largest READ request in bytes (--max-read-kb)
  noexec, noatime       passed to the kernel
  default_permissions, nosuid, nodev, kernel_cache, nonempty
                        accepted (always in effect, or meaningless here)
  rw, suid, dev and anything else are refused.

Node cache (--cache-dir): the image is read in chunks kept in DIR, a badger
database on node-local disk shared by every image, capped at --cache-size
with least-recently-used eviction; every chunk is checked against the sha256
in the image's chunk list before it is served or stored. The image file must
be named <id>.squashfs (or --image-id gives the id); its chunk list is
--chunks, else <dir of IMAGE>/<id>.chunks, else DIR/chunklists/<id>.chunks
(made by shifterd warm); without one the image is read through uncached.
With --source URL, IMAGE is the image id (64 hex digits): the image is
fetched from URL/<id>.squashfs with HTTP Range requests, its chunk list from
URL/<id>.chunks. Only one process may use DIR at a time; a second one fails
("cache DIR in use by PID N") unless --cache-optional is given: it then
serves the image file uncached (with --source, only when --image-id names
the image and IMAGE is a local copy of it; else it fails). --stats and
SIGUSR1 also log the cache's counters (hits, misses, source_bytes,
evicted_bytes, verify_failures). The cache is served by shifter-mount-cache,
installed beside shifter-mount, which runs it with the same arguments.

Environment:
  GOGC                  the server's garbage collection target (default 25,
                        after one second of serving)
  GOMEMLIMIT            the server's soft memory limit (default: twice
                        --data-cache-mb, plus twice the node cache's memory
                        with --cache-dir; 32 MiB at least)
  SHIFTER_MOUNT_NO_EARLY_FORK
                        when set, the daemon is made by re-executing the
                        command instead of forking before the Go runtime
                        starts (slower; for debugging)

Exit status: 0 once mounted (daemon) or after a clean unmount (-f); 1 when
the mount failed or the server ended on an error; 2 for usage errors.
`

func newFlags(cfg *config, out io.Writer) *pflag.FlagSet {
	fl := pflag.NewFlagSet("shifter-mount", pflag.ContinueOnError)
	fl.SetOutput(out)
	fl.SortFlags = false
	fl.BoolVarP(&cfg.foreground, "foreground", "f", false, "stay in the foreground; the mount is served until unmounted or signalled")
	fl.StringSliceVarP(&cfg.extraOpts, "options", "o", nil, "mount options, comma-separated (see below)")
	fl.BoolVarP(&cfg.debug, "debug", "d", false, "log every FUSE request and reply (implies --log-level=debug; use with -f)")
	fl.BoolVar(&cfg.allowOther, "allow-other", os.Geteuid() == 0, "let users other than the mounting one use the mount; default true when run as root")
	fl.StringVar(&cfg.fsName, "fsname", "", "mount source shown in /proc/mounts and df (default: the absolute image path)")
	fl.StringVar(&cfg.subtype, "subtype", "shifter-mount", "file system type shown as fuse.SUBTYPE")
	fl.Int64Var(&cfg.offset, "offset", 0, "byte offset of the squashfs image inside IMAGE (e.g. in a SIF file)")
	fl.StringVar(&cfg.logFile, "log-file", "", "after the mount is ready, the daemon logs to this file (default: nowhere; before, and with -f, logs go to stderr)")
	fl.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.IntVar(&cfg.readyFD, "ready-fd", -1, "write one byte (a newline) to this inherited file descriptor, then close it, once the mount is ready")
	fl.StringVar(&cfg.pidFile, "pid-file", "", "write the server's pid to this file once mounted; removed when it exits")
	fl.BoolVar(&cfg.stats, "stats", false, "log the number of FUSE requests served, by type, when the server exits")
	fl.StringVar(&cfg.cpuProf, "cpuprofile", "", "write a CPU profile of the server (pprof format) to this file, from mount to exit")
	fl.IntVar(&cfg.metadataCache, "metadata-cache", 1024, "decompressed metadata blocks (8 KiB each) kept in memory")
	fl.Int64Var(&cfg.dataCacheMiB, "data-cache-mb", 24, "MiB of decompressed data and fragment blocks kept in memory (the kernel's page cache holds what was read)")
	fl.IntVar(&cfg.readahead, "readahead", 0, "data blocks decompressed ahead of a sequential reader, in parallel (0: 2 x CPUs; on one CPU none, and whole blocks go straight into each READ reply; negative: off)")
	fl.IntVar(&cfg.inodeCache, "inode-cache", 65536, "decoded inodes kept in memory (negative: none)")
	fl.Int64Var(&cfg.prefetchMetaMiB, "prefetch-metadata-mb", 2, "MiB of the inode and directory tables read into the metadata cache once mounted, in the background, when more than one CPU may be used (0: none)")
	fl.IntVar(&cfg.kernelReadahead, "kernel-readahead-kb", 1024, "kernel readahead window on the mount in KiB, set through sysfs when run as root (negative: kernel default)")
	fl.IntVar(&cfg.maxReadKiB, "max-read-kb", 1024, "largest READ request in KiB (the kernel caps it at its max_pages_limit)")
	fl.IntVar(&cfg.maxBackground, "max-background", 64, "asynchronous (readahead) requests the kernel keeps in flight")
	fl.BoolVar(&cfg.noReaddirPlus, "no-readdirplus", false, "list directories without attributes (READDIR): cheaper for find, dearer for ls -l or stat of every entry")
	fl.DurationVar(&cfg.entryTimeout, "entry-timeout", fusefs.Forever, "how long the kernel caches names (the image never changes)")
	fl.DurationVar(&cfg.attrTimeout, "attr-timeout", fusefs.Forever, "how long the kernel caches attributes")
	fl.DurationVar(&cfg.negativeTimeout, "negative-timeout", fusefs.Forever, "how long the kernel caches the absence of a name")
	fl.StringVar(&cfg.cacheDir, "cache-dir", "", "serve the image through the node cache in this directory (created 0700; see Node cache below)")
	fl.StringVar(&cfg.cacheSizeArg, "cache-size", "10G", "cap of the node cache, bytes with an optional k, M, G or T suffix")
	fl.BoolVar(&cfg.cacheOptional, "cache-optional", false, "when the node cache cannot be opened (in use by another process, say), warn and serve the image file uncached")
	fl.StringVar(&cfg.chunks, "chunks", "", "the image's chunk list (default: <dir of IMAGE>/<id>.chunks, then DIR/chunklists/<id>.chunks)")
	fl.StringVar(&cfg.chunksSHA256, "chunks-sha256", "", "with --source: the sha256 the chunk list fetched from the source must have (the image metadata's chunksSHA256)")
	fl.StringVar(&cfg.source, "source", "", "fetch the image from this http(s) base URL (URL/<id>.squashfs, URL/<id>.chunks) through the cache; IMAGE is then the image id")
	fl.StringVar(&cfg.imageID, "image-id", "", "the image id, when IMAGE is not named <id>.squashfs (with --source: IMAGE is then a local copy of the image, served uncached when the cache is unavailable)")
	fl.Usage = func() {
		fmt.Fprint(out, usageHead)
		fl.PrintDefaults()
		fmt.Fprint(out, usageOpts)
	}
	return fl
}

// errUsage marks errors in the command line.
var errUsage = errors.New("usage")

// parseArgs parses the command line into a config.
func parseArgs(args []string, out io.Writer) (*config, error) {
	cfg := &config{}
	fl := newFlags(cfg, out)
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fl.NArg() != 2 {
		return nil, fmt.Errorf("%w: want IMAGE MOUNTPOINT, got %d arguments", errUsage, fl.NArg())
	}
	cfg.image, cfg.mountpoint = fl.Arg(0), fl.Arg(1)
	opts := cfg.extraOpts
	cfg.extraOpts = nil
	if err := cfg.applyMountOptions(opts); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if _, err := parseLevel(cfg.logLevel); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if cfg.offset < 0 {
		return nil, fmt.Errorf("%w: negative --offset %d", errUsage, cfg.offset)
	}
	if cfg.debug {
		cfg.logLevel = "debug"
	}
	if err := cfg.checkCache(); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return cfg, nil
}

// checkCache checks the node cache's flags.
func (cfg *config) checkCache() error {
	if cfg.cacheDir == "" {
		for _, f := range []struct{ name, v string }{{"--source", cfg.source}, {"--chunks", cfg.chunks}} {
			if f.v != "" {
				return fmt.Errorf("%s needs --cache-dir", f.name)
			}
		}
		return nil
	}
	n, err := udiroot.ParseBytes(cfg.cacheSizeArg)
	if err != nil {
		return fmt.Errorf("--cache-size: %v", err)
	}
	if n < 1<<20 {
		return fmt.Errorf("--cache-size %s: want at least 1M", cfg.cacheSizeArg)
	}
	cfg.cacheSize = n
	if cfg.imageID != "" && !isImageID(cfg.imageID) {
		return fmt.Errorf("--image-id %q is not an image id (64 lowercase hex digits)", cfg.imageID)
	}
	if cfg.chunksSHA256 != "" && !isImageID(cfg.chunksSHA256) {
		return fmt.Errorf("--chunks-sha256 %q is not a sha256 (64 lowercase hex digits)", cfg.chunksSHA256)
	}
	if cfg.source != "" {
		if cfg.chunks == "" && cfg.chunksSHA256 == "" {
			return fmt.Errorf("--source needs --chunks or --chunks-sha256: a chunk list fetched from the source must be pinned")
		}
		if cfg.imageID == "" && !isImageID(cfg.image) {
			return fmt.Errorf("with --source, IMAGE is the image id (64 lowercase hex digits), not %q", cfg.image)
		}
	}
	return nil
}

// isImageID reports whether s is an image id, 64 lowercase hex digits
// (imagestore.ValidID, which the plain build does not link).
func isImageID(s string) bool {
	return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
}

// applyMountOptions interprets squashfuse-style -o options.
func (cfg *config) applyMountOptions(opts []string) error {
	for _, o := range opts {
		name, val, hasVal := strings.Cut(strings.TrimSpace(o), "=")
		switch name {
		case "":
		case "ro", "default_permissions", "nosuid", "nodev", "kernel_cache", "nonempty":
		case "allow_other":
			cfg.allowOther = true
		case "debug":
			cfg.debug = true
		case "noexec", "noatime", "nodiratime", "relatime":
			cfg.extraOpts = append(cfg.extraOpts, name)
		case "fsname", "subtype", "offset", "max_read":
			if !hasVal || val == "" {
				return fmt.Errorf("mount option %s needs a value", name)
			}
			switch name {
			case "fsname":
				cfg.fsName = val
			case "subtype":
				cfg.subtype = val
			case "offset", "max_read":
				n, err := strconv.ParseInt(val, 0, 64)
				if err != nil || n < 0 {
					return fmt.Errorf("mount option %s=%s: not a byte count", name, val)
				}
				if name == "offset" {
					cfg.offset = n
				} else {
					cfg.maxReadKiB = int(max((n+1023)/1024, 4))
				}
			}
		case "rw":
			return fmt.Errorf("mount option rw: the image is mounted read-only")
		case "suid", "dev":
			return fmt.Errorf("mount option %s: refused, the mount is always nosuid,nodev", name)
		default:
			return fmt.Errorf("unknown mount option %q", o)
		}
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// The roles earlyFork reports (see early_linux.go).
const (
	earlyNone   = 0 // no early fork: this process does everything
	earlyParent = 1 // waits for the early child's report
	earlyChild  = 2 // the daemon, when the arguments ask for one
)

func run(args []string, stderr io.Writer) int {
	role, fd, pid, read := earlyFork()
	if role == earlyChild {
		return runEarlyChild(args, fd)
	}
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "shifter-mount: %v\n", strings.TrimPrefix(err.Error(), "usage: "))
		fmt.Fprintln(stderr, "Try 'shifter-mount --help'.")
		return 2
	}
	if role == earlyParent {
		if !cfg.foreground {
			return waitEarlyChild(cfg, fd, pid, read, stderr)
		}
		// The child parsed the same arguments and is leaving quietly.
		closeFD(fd)
	}
	return start(cfg, args, stderr)
}
