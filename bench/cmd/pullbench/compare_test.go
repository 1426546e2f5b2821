// SPDX-License-Identifier: BSD-3-Clause

//go:build linux

package main

import (
	"strings"
	"testing"
)

func TestCompareListings(t *testing.T) {
	floor := []string{
		"drwxrwxrwx 0/0 257 2026-11-29 10:36 ",
		"drwxr-xr-x 0/0 191 2026-11-29 10:13 /dev",
		"crw-rw-rw- 0/0 5,  1 2026-11-29 10:13 /dev/console",
		"-rw-r--r-- 0/0 12 2026-11-29 10:13 /etc/hostname",
		"lrwxrwxrwx 0/0 7 2026-11-29 10:13 /bin -> usr/bin",
	}
	tests := []struct {
		name     string
		gateway  []string
		same     bool
		contains string
	}{
		{"devices dropped, root and dir sizes differ", []string{
			"drwxr-xr-x 0/0 257 2026-11-29 10:37 ",
			"drwxr-xr-x 0/0 88 2026-11-29 10:13 /dev",
			"-rw-r--r-- 0/0 12 2026-11-29 10:13 /etc/hostname",
			"lrwxrwxrwx 0/0 7 2026-11-29 10:13 /bin -> usr/bin",
		}, true, "1 device nodes"},
		{"file mode differs", []string{
			"drwxr-xr-x 0/0 257 2026-11-29 10:37 ",
			"drwxr-xr-x 0/0 88 2026-11-29 10:13 /dev",
			"-rw------- 0/0 12 2026-11-29 10:13 /etc/hostname",
			"lrwxrwxrwx 0/0 7 2026-11-29 10:13 /bin -> usr/bin",
		}, false, "1 only in the gateway's (first `-rw------- 0/0 12 2026-11-29 10:13 /etc/hostname`)"},
		{"entry missing", []string{
			"drwxr-xr-x 0/0 257 2026-11-29 10:37 ",
			"drwxr-xr-x 0/0 88 2026-11-29 10:13 /dev",
			"-rw-r--r-- 0/0 12 2026-11-29 10:13 /etc/hostname",
		}, false, "1 entries only in the floor's"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, same := compareListings(floor, tc.gateway)
			if same != tc.same || !strings.Contains(msg, tc.contains) {
				t.Errorf("compareListings() = %q, %v; want %v and a message containing %q", msg, same, tc.same, tc.contains)
			}
		})
	}
}
