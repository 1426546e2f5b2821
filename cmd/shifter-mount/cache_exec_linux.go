// SPDX-License-Identifier: BSD-3-Clause

//go:build !shiftercache

package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/fusefs"
)

// The plain build links nothing of the node cache: its packages (badger,
// net/http) would double the binary and cost every mount about 2 ms of
// start-up (bench/README.md, "cache"). With --cache-dir it execs
// shifter-mount-cache, the same command built with -tags shiftercache,
// from its own directory: the C constructor does, before this build's Go
// runtime starts (early_exec_cache); execCacheBuild does it when the
// constructor could not, and says why.
const cacheBuild = false

// cacheBinary is the name of the build with the node cache.
const cacheBinary = "shifter-mount-cache"

// nodeCache is only in the build with the cache.
type nodeCache struct{ src string }

func (*nodeCache) logStats(*slog.Logger) {}

func (*nodeCache) heapBudget() int64 { return 0 }

func openCached(string, *config, *slog.Logger) (io.ReaderAt, int64, *nodeCache, func(), error) {
	return nil, 0, nil, nil, errors.New("the node cache is served by " + cacheBinary)
}

// execCacheBuild replaces this process with shifter-mount-cache, run with
// the same arguments. reportFD >= 0 is the early child's report pipe,
// handed on as a re-executed daemon's (fusefs.DaemonEnv). It returns only
// on failure.
func execCacheBuild(args []string, reportFD int) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--cache-dir: find %s: %w", cacheBinary, err)
	}
	bin := filepath.Join(filepath.Dir(exe), cacheBinary)
	// It runs as root for the runtime: it must be as trusted as this
	// binary's directory, which the runtime checked (root-owned, not
	// writable by others).
	var st unix.Stat_t
	if err := unix.Lstat(bin, &st); err != nil {
		return fmt.Errorf("--cache-dir: the node cache is served by %s, next to shifter-mount: %w", bin, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o022 != 0 || (st.Uid != 0 && int(st.Uid) != os.Geteuid()) {
		return fmt.Errorf("--cache-dir: %s is not a regular file owned by root (or this user) and writable only by its owner", bin)
	}
	env := os.Environ()
	if reportFD >= 0 {
		if _, err := unix.FcntlInt(uintptr(reportFD), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("--cache-dir: pass the report pipe on: %w", err)
		}
		env = append(env, fusefs.DaemonEnv+"="+strconv.Itoa(reportFD))
	}
	err = unix.Exec(bin, append([]string{bin}, args...), env)
	return fmt.Errorf("--cache-dir: exec %s: %w", bin, err)
}
