// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"os"
	"strings"
	"testing"
	"time"
)

// processesWith lists host processes whose command line contains s.
func processesWith(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// TestBackgroundProcessEnds: a process the command leaves running in the
// background would keep the mounts and the loop device; it is ended with
// the command.
func TestBackgroundProcessEnds(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		r := h.run(h.spec(mode, "sh", "-c", "sleep 3031 </dev/null >/dev/null 2>&1 & echo started"), asUser)
		if r.code != 0 || r.stdout != "started\n" {
			t.Fatalf("exit %d %q\n%s", r.code, r.stdout, r.stderr)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(processesWith("sleep 3031")) > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if p := processesWith("sleep 3031"); len(p) > 0 {
			t.Errorf("background process still running: %v", p)
		}
	})
}

// TestContextCancel: cancelling Run's context ends the command (SIGTERM).
func TestContextCancel(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		ds := h.spec(mode, "sleep", "3032")
		ds.CancelAfterMs = 500
		start := time.Now()
		r := h.run(ds, asUser)
		if r.code != 128+15 {
			t.Errorf("cancelled run: exit %d, want 143\n%s", r.code, r.stderr)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("cancelled run took %v", d)
		}
		if p := processesWith("sleep 3032"); len(p) > 0 {
			t.Errorf("command still running: %v", p)
		}
	})
}

// TestAutoMode: auto picks loop as root with loop devices, and says why.
func TestAutoMode(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	ds := h.spec("auto", "true")
	ds.Verbose = true
	r := h.run(ds, asUser)
	if r.code != 0 || !strings.Contains(r.stderr, "mode=loop") || !strings.Contains(r.stderr, "reason=") {
		t.Errorf("auto mode: exit %d, log:\n%s", r.code, r.stderr)
	}
}
