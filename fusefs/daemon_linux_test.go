// SPDX-License-Identifier: BSD-3-Clause

package fusefs_test

import (
	"errors"
	"os"
	"testing"

	"github.com/shifter-go/shifter/fusefs"
)

// TestReport: what a daemon writes on its report pipe is what WaitReport
// tells the command that started it, including after a first byte that
// the command read already (the early fork's constructor does).
func TestReport(t *testing.T) {
	for _, tc := range []struct {
		name    string
		write   func(*fusefs.Report)
		split   bool // the first byte read before WaitReport
		wantErr string
		noRep   bool
	}{
		{"ready", func(r *fusefs.Report) {
			if err := r.Ready(); err != nil {
				t.Errorf("Ready: %v", err)
			}
		}, false, "", false},
		{"ready, first byte read", func(r *fusefs.Report) { r.Ready() }, true, "", false},
		{"failed", func(r *fusefs.Report) { r.Fail(errors.New("open image: no such file")) }, false, "open image: no such file", false},
		{"failed, first byte read", func(r *fusefs.Report) { r.Fail(errors.New("mount: busy")) }, true, "mount: busy", false},
		{"no word", nil, false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if tc.write != nil {
				tc.write(fusefs.NewReport(w))
			} else {
				w.Close()
			}
			var read []byte
			if tc.split {
				read = make([]byte, 1)
				if _, err := r.Read(read); err != nil {
					t.Fatal(err)
				}
			}
			err = fusefs.WaitReport(r, read)
			switch {
			case tc.noRep:
				if !errors.Is(err, fusefs.ErrNoReport) {
					t.Errorf("WaitReport = %v, want ErrNoReport", err)
				}
			case tc.wantErr == "":
				if err != nil {
					t.Errorf("WaitReport = %v, want nil", err)
				}
			case err == nil || err.Error() != tc.wantErr:
				t.Errorf("WaitReport = %v, want %q", err, tc.wantErr)
			}
		})
	}
	// A starter that is gone: Ready fails.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := fusefs.NewReport(w).Ready(); err == nil {
		t.Error("Ready with nobody reading = nil, want an error")
	}
}
