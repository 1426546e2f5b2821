// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenStoreLock: a database locked by another user is waited for a
// moment (a killed gateway's child can hold the lock between fork and
// exec), then refused with badger's message.
func TestOpenStoreLock(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name     string
		releases bool // the first user lets go during the wait
	}{
		{"released during the wait", true},
		{"held", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			first, err := OpenStore(dir, log)
			if err != nil {
				t.Fatal(err)
			}
			if tc.releases {
				time.AfterFunc(300*time.Millisecond, func() { first.Close() })
			} else {
				defer first.Close()
			}
			second, err := OpenStore(dir, log)
			if tc.releases {
				if err != nil {
					t.Fatalf("open after the lock was released: %v", err)
				}
				second.Close()
				return
			}
			if err == nil {
				second.Close()
				t.Fatal("opened a database another Store holds")
			}
			if !strings.Contains(err.Error(), "Cannot acquire directory lock") {
				t.Errorf("error %q does not say the database is locked", err)
			}
		})
	}
}
