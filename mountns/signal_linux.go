// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"os"

	"golang.org/x/sys/unix"
)

// terminalSignals are the signals a terminal sends to its whole
// foreground process group (^C, ^\, hangup, resize).
var terminalSignals = map[os.Signal]bool{
	unix.SIGINT: true, unix.SIGQUIT: true, unix.SIGHUP: true, unix.SIGWINCH: true,
}

// shouldForward reports whether the signal s, received by the caller of
// Run or by the namespace init, is to be passed on to the command. The
// three share a process group; when it is the foreground group of the
// controlling terminal, a terminal signal has reached the command already,
// and passing it on would deliver it twice. (A kill(1) of one of these
// signals aimed at shifter alone is then not passed on; kill the process
// group, or the command.)
func shouldForward(s os.Signal) bool {
	return !terminalSignals[s] || !inForeground()
}

// inForeground reports whether the process group is the foreground group
// of its controlling terminal.
func inForeground() bool {
	fd, err := unix.Open("/dev/tty", unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false // no controlling terminal
	}
	defer unix.Close(fd)
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}
