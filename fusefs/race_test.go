// SPDX-License-Identifier: BSD-3-Clause

//go:build race

package fusefs_test

// raceEnabled: the race detector slows everything down; the tests that
// only compare big trees (no concurrency to check) skip under it.
const raceEnabled = true
