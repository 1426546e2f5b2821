// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps: mountns imports only the standard library, x/sys,
// filepath-securejoin and internal/mountinfo (whose own imports this
// list also covers), never fusefs, squashreader or the gateway.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if !strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
			continue // standard library
		}
		switch {
		case p == "github.com/shifter-go/shifter/mountns",
			p == "github.com/shifter-go/shifter/internal/mountinfo",
			strings.HasPrefix(p, "golang.org/x/sys/"),
			strings.HasPrefix(p, "github.com/cyphar/filepath-securejoin"):
		default:
			t.Errorf("mountns depends on %s", p)
		}
	}
}
