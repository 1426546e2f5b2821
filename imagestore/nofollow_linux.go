// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import (
	"os"
	"syscall"
)

// openNoFollow opens p for reading without following a final symbolic
// link.
func openNoFollow(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
}
