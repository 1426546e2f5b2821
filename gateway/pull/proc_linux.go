// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill cmd when the gateway dies (kill -9
// included), so no orphaned mksquashfs keeps converting for nobody.
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
