// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"os"
	"path/filepath"
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
	// The init finds stragglers from its children (it is a child
	// subreaper): each shape of leftover must end, reparented or not.
	for _, tc := range []struct{ name, script, marker string }{
		{"background", "sleep 3031 </dev/null >/dev/null 2>&1 & echo started", "sleep 3031"},
		{"daemon forked twice in a new session", "setsid sh -c 'sleep 3033 </dev/null >/dev/null 2>&1 &' & wait; echo started", "sleep 3033"},
		{"grandchild of a live child", "sh -c 'sleep 3034 </dev/null >/dev/null 2>&1 & sleep 3035' </dev/null >/dev/null 2>&1 & echo started", "sleep 3034"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forModes(t, func(t *testing.T, h *harness, mode string) {
				r := h.run(h.spec(mode, "sh", "-c", tc.script), asUser)
				if r.code != 0 || r.stdout != "started\n" {
					t.Fatalf("exit %d %q\n%s", r.code, r.stdout, r.stderr)
				}
				deadline := time.Now().Add(5 * time.Second)
				for len(processesWith(tc.marker)) > 0 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if p := processesWith(tc.marker); len(p) > 0 {
					t.Errorf("background process still running: %v", p)
				}
			})
		})
	}
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

// TestFUSEHelperIdentity: the FUSE helper, which parses the image, runs as
// the user when the user may read the image file, and as root only for a
// root-only image (Shifter's store mode).
func TestFUSEHelperIdentity(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "fuse")
	rootOnly := filepath.Join(h.dir, "root-only.squashfs")
	b, err := os.ReadFile(h.img.squashfs)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(rootOnly, b, 0o600)
	for _, tc := range []struct {
		name, image, uid string
	}{
		{"readable-image", h.img.squashfs, "4242"},
		{"root-only-image", rootOnly, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			ds := h.spec("fuse", "sh", "-c", `cat /etc/image-marker; for d in /proc/[0-9]*; do
				case "$(tr '\0' ' ' < $d/cmdline 2>/dev/null)" in *"--fsname=`+tc.image+` "*) grep -E '^(Uid|CapEff)' $d/status;; esac; done`)
			ds.Image = tc.image
			out := h.must(ds, asUser)
			if !strings.HasPrefix(out, "from-the-image\n") {
				t.Fatalf("output %q", out)
			}
			f := strings.Fields(out)
			// from-the-image Uid: r e s f CapEff: x
			if len(f) < 8 || f[1] != "Uid:" || f[2] != tc.uid || f[3] != tc.uid {
				t.Fatalf("helper status %q, want uid %s", out, tc.uid)
			}
			if tc.uid != "0" && f[7] != "0000000000000000" {
				t.Errorf("helper running as the user has capabilities %s", f[7])
			}
		})
	}
}
