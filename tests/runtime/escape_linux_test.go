// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWorkdirCannotLeaveContainer is the runc CVE-2024-21626 attack on
// the working directory (#17 item 8): a working directory of
// /proc/self/fd/N names, while the command is being started, a descriptor
// of the namespace init, such as a volume source opened on the host. The
// command must start in the container (here in /, with a warning), never
// in the host directory behind the descriptor, in both modes, with one
// and two volumes.
func TestWorkdirCannotLeaveContainer(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		wv := h.mkdir("wv", 0o755, testUID, testGID)
		wv2 := h.mkdir("wv2", 0o755, testUID, testGID)
		os.WriteFile(filepath.Join(wv, "host-side-marker"), nil, 0o644)
		os.WriteFile(filepath.Join(wv2, "host-side-marker"), nil, 0o644)
		for _, vols := range []string{wv + ":/wv", wv + ":/wv;" + wv2 + ":/wv2"} {
			for fd := 3; fd <= 16; fd++ {
				ds := h.spec(mode, "sh", "-c", "pwd; ls -a; cd ../../..; echo ---; ls -a")
				ds.Volumes = vols
				ds.Workdir = fmt.Sprintf("/proc/self/fd/%d", fd)
				r := h.run(ds, asUser)
				if r.code != 0 {
					t.Fatalf("workdir %s: exit %d\n%s", ds.Workdir, r.code, r.stderr)
				}
				l := lines(r.stdout)
				if strings.Contains(r.stdout, "host-side-marker") || len(l) == 0 || l[0] != "/" || !strings.Contains(r.stdout, "data-to-etc") {
					t.Fatalf("workdir %s with volumes %s: the command started outside the container:\n%s", ds.Workdir, vols, r.stdout)
				}
			}
		}
	})
}

// TestInstalledWorkdirCannotLeave is #17 item 8's report as it was made:
// the setuid shifter with a volume and --workdir=/proc/self/fd/N. (An
// image's WORKDIR with a bare --workdir reaches mountns as the same
// Spec.Workdir.)
func TestInstalledWorkdirCannotLeave(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	wv := h.mkdir("wv", 0o755, nobodyUID, nobodyGID)
	os.WriteFile(filepath.Join(wv, "host-side-marker"), nil, 0o644)
	for _, mode := range []string{"loop", "fuse"} {
		t.Run(mode, func(t *testing.T) {
			requireMode(t, mode)
			in.t = t
			in.config(mode, "")
			for _, fd := range []int{8, 12} {
				r := in.run(in.shifter, nil, "--image=id:"+in.id, "-V", wv+":/wv", fmt.Sprintf("--workdir=/proc/self/fd/%d", fd),
					"sh", "-c", "pwd; cd ../../..; ls -a")
				if r.code != 0 || strings.Contains(r.stdout, "host-side-marker") || !strings.HasPrefix(r.stdout, "/\n") || !strings.Contains(r.stdout, "data-to-etc") {
					t.Errorf("--workdir=/proc/self/fd/%d: exit %d, the command started outside the container:\n%s\n%s", fd, r.code, r.stdout, r.stderr)
				}
			}
		})
	}
}
