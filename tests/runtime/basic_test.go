// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"testing"
)

func TestSmoke(t *testing.T) {
	h := newHarness(t)
	for _, mode := range modes(t) {
		t.Run(mode, func(t *testing.T) {
			requireMode(t, mode)
			h.t = t
			r := h.run(h.spec(mode, "sh", "-c", "id; cat /etc/image-marker; ls /proc/self/fd; grep -E '^(Cap|NoNewPrivs)' /proc/self/status; cat /proc/self/mountinfo"), asUser)
			t.Logf("code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		})
	}
}
