// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux || !cgo

package main

import "github.com/shifter-go/shifter/launcher"

// earlyState: without cgo nothing runs before the Go runtime. A setuid
// shifter built so keeps only the runtime's own GOTRACEBACK=none and
// cannot start under a low ulimit -v (see early_linux.go).
func earlyState() launcher.Early { return launcher.Early{} }
