// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux

package launcher

import (
	"context"
	"fmt"
	"os"
)

// Main reports that the runtime needs Linux.
func Main(ctx context.Context, args []string, deps Deps) int {
	if deps.Stderr == nil {
		deps.Stderr = os.Stderr
	}
	fmt.Fprintln(deps.Stderr, "shifter: containers need Linux (mount namespaces)")
	return ExitUnavailable
}
