// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"math"
	"runtime/debug"
	"testing"
	"time"
)

// TestGCAfterReady checks the collector settings serve leaves: off with
// a memory limit for gcSettleDelay, then 25% with the limit kept; GOGC
// or GOMEMLIMIT win.
func TestGCAfterReady(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	oldDelay := gcSettleDelay
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
		gcSettleDelay = oldDelay
	})
	gcSettleDelay = 50 * time.Millisecond
	for _, tc := range []struct {
		name, gogc, gomemlimit string
		dataCache              int64
		wantLimit              int64 // during the settling delay and after it
		wantPercent            int   // after it
	}{
		{"defaults", "", "", 24 << 20, 48 << 20, 25},
		{"tiny cache", "", "", 4 << 20, 32 << 20, 25},
		{"big cache", "", "", 1 << 30, 2 << 30, 25},
		{"GOGC", "80", "", 32 << 20, math.MaxInt64, 80},
		{"GOMEMLIMIT", "", "1GiB", 32 << 20, math.MaxInt64, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.gogc)
			t.Setenv("GOMEMLIMIT", tc.gomemlimit)
			debug.SetMemoryLimit(math.MaxInt64)
			// serve turned the collector off at start and kept the
			// percentage it found (GOGC's, when set).
			found := 100
			if tc.gogc == "80" {
				found = 80
			}
			debug.SetGCPercent(-1)
			gcAfterReady(found, tc.dataCache)
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("memory limit while settling = %d, want %d", got, tc.wantLimit)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				p := debug.SetGCPercent(-1)
				debug.SetGCPercent(p)
				if p == tc.wantPercent && debug.SetMemoryLimit(-1) == tc.wantLimit {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("GC percent %d, memory limit %d; want %d and %d", p, debug.SetMemoryLimit(-1), tc.wantPercent, tc.wantLimit)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
