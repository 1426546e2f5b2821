// SPDX-License-Identifier: BSD-3-Clause

package benchutil

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// PinToCPU0 re-executes the running driver under `taskset -c 0`, so that
// it and every process it starts (the tools, the runtimes, the FUSE
// servers they start) inherit the affinity and share CPU 0. env names the
// variable that marks the re-executed process: when it is set PinToCPU0
// unsets it (children do not see it) and returns nil. Otherwise it
// returns only on error.
func PinToCPU0(env string) error {
	if os.Getenv(env) == "1" {
		return os.Unsetenv(env)
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("find taskset (util-linux): %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	return unix.Exec(ts, append([]string{ts, "-c", "0", self}, os.Args[1:]...), append(os.Environ(), env+"=1"))
}

// CPUsAllowed is this process's Cpus_allowed_list (/proc/self/status),
// e.g. "0" when pinned, "0-1" on a two-CPU machine; "" when unknown.
func CPUsAllowed() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// CPUsOnline is the machine's online CPUs (/sys/devices/system/cpu/online,
// e.g. "0-1"), whatever this process's affinity; "" when unknown.
func CPUsOnline() string {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
