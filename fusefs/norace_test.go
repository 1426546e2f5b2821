// SPDX-License-Identifier: BSD-3-Clause

//go:build !race

package fusefs_test

const raceEnabled = false
