// SPDX-License-Identifier: BSD-3-Clause

// Command shifter runs a command inside a container image, as the
// calling user: shifter [options] [--] [command [args...]]. See
// shifter --help, docs/udiRoot.conf.md and package launcher.
package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/shifter-go/shifter/launcher"
	"github.com/shifter-go/shifter/mountns"
)

// version is set at build time with -ldflags "-X main.version=...";
// otherwise the module version from the build information is used.
var version = ""

func init() { openStdio() }

func main() {
	go mountns.WarmSignals()
	if version == "" {
		version = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			version = bi.Main.Version
		}
	}
	// No signal.NotifyContext: while the command runs, mountns.Run
	// forwards signals to it, and the command decides how to end.
	os.Exit(launcher.Main(context.Background(), os.Args[1:], launcher.Deps{
		Run:          mountns.Run,
		ParseVolumes: mountns.ParseVolumes,
		Version:      version,
		Early:        earlyState(),
	}))
}
