// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux || !cgo

package main

import "os"

// earlyFork: without cgo there is no constructor; the daemon is made by
// re-executing the command (see daemonize).
func earlyFork() (role, fd, pid int, read []byte) { return earlyNone, -1, 0, nil }

func holdSignals([]os.Signal) bool { return false }

func takeHeld([]os.Signal) []os.Signal { return nil }
