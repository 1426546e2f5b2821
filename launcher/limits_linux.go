// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// minOpenFiles is the open-file limit (hard) that the runtime needs: its
// own descriptors (configuration, image, pipes, /dev/fuse) and one per
// volume source, opened all at once.
const minOpenFiles = 64

// checkLimits fails, before anything privileged happens, when the
// caller's resource limits leave the runtime or the command no chance:
// an open-file hard limit below minOpenFiles (ulimit -n), or a process
// limit (ulimit -u) that this process's threads already use up, so the
// command could not start. The command gets the caller's limits
// unchanged: the Go runtime raises its own soft open-file limit and puts
// it back for the processes it starts, and the namespace init lifts the
// file size limit (ulimit -f) only for itself.
func checkLimits() error {
	var nofile unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err != nil {
		return fail(ExitSoftware, fmt.Errorf("read the open-file limit: %w", err))
	}
	if nofile.Max < minOpenFiles {
		return failf(ExitUnavailable, "the open-file limit (ulimit -n %d) is below the %d that shifter needs", nofile.Max, minOpenFiles)
	}
	if unix.Getuid() == 0 {
		return nil // root is not held to RLIMIT_NPROC
	}
	var nproc unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &nproc); err != nil {
		return fail(ExitSoftware, fmt.Errorf("read the process limit: %w", err))
	}
	if nproc.Cur == unix.RLIM_INFINITY {
		return nil
	}
	// The kernel counts every thread of the caller's uid, this process's
	// included; the command needs one more.
	threads := ownThreads()
	if nproc.Cur < uint64(threads)+1 {
		return failf(ExitUnavailable, "the process limit (ulimit -u %d) leaves no room for the command: shifter itself runs %d threads", nproc.Cur, threads)
	}
	return nil
}

// ownThreads returns the number of threads of this process (1 if
// unknown).
func ownThreads() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 1
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("Threads:")); ok {
			if n, err := strconv.Atoi(string(bytes.TrimSpace(v))); err == nil && n > 0 {
				return n
			}
		}
	}
	return 1
}
