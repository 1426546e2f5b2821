// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"context"
	"io"

	"github.com/shifter-go/shifter/mountns"
)

// DefaultMountHelper is where shifter-mount is looked for when it is not
// next to the shifter binary. Set at build time with
// -ldflags "-X github.com/shifter-go/shifter/launcher.DefaultMountHelper=/path".
var DefaultMountHelper = "/usr/local/bin/shifter-mount"

// MungeCommand is the munge(1) a setuid shifter runs (as the caller) to
// authenticate gateway lookups over TCP; never looked up in PATH.
var MungeCommand = "/usr/bin/munge"

// Deps are the functions Main needs from the packages that build the
// container.
type Deps struct {
	// Run builds the container described by spec, runs its command and
	// returns the command's exit status (mountns.Run).
	Run func(ctx context.Context, spec *mountns.Spec) (int, error)
	// ParseVolumes parses the user's volume list (mountns.ParseVolumes).
	ParseVolumes func(s string) ([]mountns.Volume, error)
	// Version is printed by --version.
	Version string
	// Stdout and Stderr default to os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
}
