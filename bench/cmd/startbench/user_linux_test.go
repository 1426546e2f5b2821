// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestTarget(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name                 string
		ours, against, limit float64
		want                 string
	}{
		{"below", 0.9, 1, 1, "0.90× (target ≤ 1×): met"},
		{"equal", 1.2, 1, 1.2, "1.20× (target ≤ 1.2×): met"},
		{"above", 0.13, 0.1, 1.2, "1.30× (target ≤ 1.2×): **not met**"},
		{"rounds to the limit but above", 0.1504, 0.1, 1.5, "1.50× (target ≤ 1.5×): **not met**"},
		{"ours missing", nan, 1, 1, "n/a (not measured)"},
		{"reference missing", 1, nan, 1, "n/a (not measured)"},
		{"reference zero", 1, 0, 1, "n/a (not measured)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := target(tc.ours, tc.against, tc.limit); got != tc.want {
				t.Errorf("target(%v, %v, %v) = %q, want %q", tc.ours, tc.against, tc.limit, got, tc.want)
			}
		})
	}
}

func TestUserEnv(t *testing.T) {
	u := &runAs{Name: "alice", UID: 1000, GID: 1000, Home: "/home/alice"}
	got := u.env([]string{"PATH=/usr/bin:/bin", "USER=root", "HOME=/root", "LOGNAME=root", "SHIFTER_CONFIG=/tmp/x.conf", "LANG=C.UTF-8"})
	want := []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "USER=alice", "LOGNAME=alice", "HOME=/home/alice"}
	if !slices.Equal(got, want) {
		t.Errorf("env = %q, want %q", got, want)
	}
}

func TestLookupUser(t *testing.T) {
	if _, err := lookupUser("root"); err == nil || !strings.Contains(err.Error(), "--as-root") {
		t.Errorf("lookupUser(root) = %v, want an error pointing at --as-root", err)
	}
	if _, err := lookupUser("no-such-user-startbench"); err == nil {
		t.Error("lookupUser of a missing user: no error")
	}
	u, err := lookupUser("nobody")
	if err != nil {
		t.Skipf("no nobody here: %v", err)
	}
	if u.UID == 0 || !slices.Contains(u.Groups, u.GID) {
		t.Errorf("nobody = %+v: want a non-zero uid and its primary group among its groups", u)
	}
}

func TestCheckTrustedPath(t *testing.T) {
	if err := checkTrustedPath("/"); err != nil {
		t.Errorf("/: %v", err)
	}
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := checkTrustedPath(open); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("a 0777 directory: %v, want writable by group or others", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("/", link); err != nil {
		t.Fatal(err)
	}
	if err := checkTrustedPath(link); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a symlink: %v, want not a directory", err)
	}
}

func TestShifterMode(t *testing.T) {
	for m, want := range map[string]string{"shifter-loop": "loop", "shifter-fuse": "fuse", "shifterd": "shifterd", "floor": "", "ch-run": ""} {
		if got := shifterMode(m); got != want {
			t.Errorf("shifterMode(%s) = %q, want %q", m, got, want)
		}
	}
	asUser := map[string]bool{"floor": false, "floor-fuse": false, "shifter-loop": true, "shifter-fuse": true,
		"shifterd": true, "ch-run": true, "ch-run-dir": true, "host": true}
	for _, m := range allMethods {
		if got := userMethod(m); got != asUser[m] {
			t.Errorf("userMethod(%s) = %v, want %v", m, got, asUser[m])
		}
	}
}
