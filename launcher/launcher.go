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
	// Early is what cmd/shifter did before the Go runtime started.
	Early Early
}

// Early reports what a front end did before the Go runtime started
// (cmd/shifter does it in a C constructor), so that the command still gets
// what the caller gave.
type Early struct {
	// CallerEnv is the caller's environment as it was before the Go
	// runtime's variables (GO*, TZ, ZONEINFO) were taken out of a setuid
	// process's environment; nil when nothing was taken out, and then
	// os.Environ() is the caller's. The command's environment is built
	// from it.
	CallerEnv []string
	// Scrubbed is how many variables were taken out.
	Scrubbed int
	// AddressSpace is the caller's RLIMIT_AS when it was raised for the
	// runtime's processes (the Go runtime cannot start under a few
	// hundred MB); nil when it was not. The command gets it back (see
	// wrapAddressSpace).
	AddressSpace *Limit
	// Prefork is the namespace init forked before the runtime started,
	// if any (mountns.Spec.Prefork).
	Prefork *mountns.Prefork
}

// Limit is a resource limit in bytes; Unlimited is RLIM_INFINITY.
type Limit struct{ Cur, Max uint64 }

// Unlimited is the value of an unlimited Limit.
const Unlimited = ^uint64(0)
