// SPDX-License-Identifier: BSD-3-Clause

//go:build cgo && !shiftercache

package main

// The plain build's constructor execs shifter-mount-cache for a command
// line naming --cache-dir (early_linux.go, early_exec_cache).

// #cgo CFLAGS: -DSHIFTER_MOUNT_PLAIN
import "C"
