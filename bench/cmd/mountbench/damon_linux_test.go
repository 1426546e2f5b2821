// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPauseDAMON runs pauseDAMON on a fake sysfs tree: only running
// kdamonds with an evicting scheme are turned off, and restore turns
// exactly those back on.
func TestPauseDAMON(t *testing.T) {
	type kd struct {
		state   string
		actions []string
		wantOff bool
	}
	tests := []struct {
		name     string
		kdamonds []kd
		wantNote bool
	}{
		{"none", nil, false},
		{"pageout on", []kd{{"on", []string{"pageout"}, true}}, true},
		{"pageout off", []kd{{"off", []string{"pageout"}, false}}, false},
		{"stat only", []kd{{"on", []string{"stat"}, false}}, false},
		{"mixed", []kd{{"on", []string{"stat", "lru_deprio"}, true}, {"on", []string{"hugepage"}, false}, {"on", nil, false}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for i, k := range tc.kdamonds {
				d := filepath.Join(root, string(rune('0'+i)))
				write(t, filepath.Join(d, "state"), k.state+"\n")
				for j, a := range k.actions {
					write(t, filepath.Join(d, "contexts", "0", "schemes", string(rune('0'+j)), "action"), a+"\n")
				}
			}
			write(t, filepath.Join(root, "nr_kdamonds"), "0\n")
			restore, note, err := pauseDAMON(root, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if (note != "") != tc.wantNote {
				t.Errorf("note %q, want one: %v", note, tc.wantNote)
			}
			for i, k := range tc.kdamonds {
				want := k.state
				if k.wantOff {
					want = "off"
				}
				if got := read(t, filepath.Join(root, string(rune('0'+i)), "state")); got != want {
					t.Errorf("kdamond %d paused: state %q, want %q", i, got, want)
				}
			}
			restore()
			for i, k := range tc.kdamonds {
				if got := read(t, filepath.Join(root, string(rune('0'+i)), "state")); got != k.state {
					t.Errorf("kdamond %d restored: state %q, want %q", i, got, k.state)
				}
			}
		})
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
