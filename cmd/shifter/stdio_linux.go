// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// openStdio puts /dev/null on whichever of fds 0, 1 and 2 the caller
// closed, before anything else opens a file: otherwise the configuration,
// the image or a pipe to the namespace init would take that number, and
// messages for stderr would be written into it, or the command would get
// it as a stream (CVE-2024-21626, CVE-2023-29403). The Go runtime does
// this by itself only when the binary runs setuid.
func openStdio() {
	for fd := 0; fd <= 2; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			continue
		}
		n, err := unix.Open("/dev/null", unix.O_RDWR, 0)
		if err != nil {
			os.Exit(125) // nowhere to say it
		}
		if n != fd {
			if err := unix.Dup3(n, fd, 0); err != nil {
				os.Exit(125)
			}
			unix.Close(n)
		}
	}
}
