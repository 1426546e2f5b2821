// SPDX-License-Identifier: BSD-3-Clause

package udiroot

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps udiroot, which shifterimg and the setuid runtime both
// link, down to the standard library and x/sys.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/shifter-go/shifter/udiroot" && !strings.HasPrefix(p, "golang.org/x/sys/") {
			t.Errorf("udiroot depends on %s", p)
		}
	}
}
