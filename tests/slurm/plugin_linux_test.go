// SPDX-License-Identifier: BSD-3-Clause

package slurm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/internal/testutil"
)

// TestPluginUnit builds contrib/slurm/spank_test.c (the plugin with
// stand-ins for Slurm's functions, under AddressSanitizer and UBSan) and
// runs its cases: plugstack.conf arguments, option validation, pinning
// through fake shifterimg programs (unknown image, garbage, a hang that
// must time out, a missing program), keeping the pin inside a job.
// No root and no Slurm daemons needed.
func TestPluginUnit(t *testing.T) {
	testutil.RequireTool(t, "cc")
	if _, err := os.Stat("/usr/include/slurm/spank.h"); err != nil {
		testutil.Unavailable(t, "no /usr/include/slurm/spank.h (libslurm-dev)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "spank_test")
	src := filepath.Join(testutil.ModuleRoot(t), "contrib/slurm/spank_test.c")
	cc := exec.Command("cc", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-std=gnu11",
		"-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-o", bin, src)
	if out, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, dir)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "ASAN_OPTIONS=detect_leaks=0"}
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "ok ") {
			t.Log(l)
		} else {
			t.Error(l)
		}
	}
	if err != nil {
		t.Fatalf("spank_test: %v", err)
	}
	if !strings.Contains(string(out), "ok pin: a hanging lookup times out") {
		t.Fatal("spank_test did not run its cases")
	}
}
