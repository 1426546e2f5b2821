// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
)

// runHook runs a site hook as root with the container root as working
// directory and a fixed environment. A hook naming an existing file is run
// as "/bin/sh FILE" (Shifter's way) or, when the file is an ELF program,
// directly; anything else as "/bin/sh -c HOOK".
func (r *rootfs) runHook(which, hook string) error {
	if hook == "" {
		return nil
	}
	args := []string{"/bin/sh", "-c", hook}
	if st, err := os.Stat(hook); err == nil && path.IsAbs(hook) && st.Mode().IsRegular() {
		args = []string{"/bin/sh", hook}
		if isELF(hook) {
			args = []string{hook}
		}
	}
	cmd := &exec.Cmd{Path: args[0], Args: args, Env: initEnv, Dir: r.path, Stdout: os.Stderr, Stderr: os.Stderr}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %s %q: %v", ErrHook, which, hook, err)
	}
	return nil
}

// isELF reports whether the file p starts with the ELF magic.
func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	_, err = io.ReadFull(f, b[:])
	return err == nil && string(b[:]) == "\x7fELF"
}
