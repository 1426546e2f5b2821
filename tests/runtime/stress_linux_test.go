// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestManyRunsLeaveNothing runs 100 containers in a row, alternating loop
// and fuse mode when both work, and checks after each one that no mount,
// loop device or process is left.
func TestManyRunsLeaveNothing(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	runs := 100
	if testing.Short() {
		runs = 10
	}
	modes := []string{"loop"}
	if h.fuseWorks() {
		modes = append(modes, "fuse")
	}
	for i := 0; i < runs; i++ {
		mode := modes[i%len(modes)]
		r := h.run(h.spec(mode, "sh", "-c", "cat /etc/image-marker"), asUser)
		if r.code != 0 || r.stdout != "from-the-image\n" {
			t.Fatalf("run %d (%s): exit %d, %q\n%s", i, mode, r.code, r.stdout, r.stderr)
		}
		if l := h.leaks(); len(l) > 0 {
			// Teardown is asynchronous: give it its grace period.
			h.checkNoLeaks()
			if t.Failed() {
				t.Fatalf("after run %d (%s)", i, mode)
			}
		}
	}
	// (Other tests may bind loop devices meanwhile: leaks() counts only
	// the ones backed by this image.)
	h.checkNoLeaks()
}

// TestConcurrentStarts starts containers of one image at the same time,
// all on the same udiMount:
// every start finds its own loop device (or shares nothing it should not),
// and nothing is left.
func TestConcurrentStarts(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	n := 16
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// One udiMount for all, as on a node.
			ds := h.spec("loop", "sh", "-c", "cat /etc/image-marker; sleep 0.2")
			r := h.run(ds, asUser)
			if r.code != 0 || r.stdout != "from-the-image\n" {
				errs <- fmt.Sprintf("start %d: exit %d, %q\n%s", i, r.code, r.stdout, r.stderr)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	var all []string
	for e := range errs {
		all = append(all, e)
	}
	if len(all) > 0 {
		t.Errorf("%d of %d concurrent starts failed:\n%s", len(all), n, strings.Join(all, "\n"))
	}
}

// fuseWorks reports whether fuse mode can be tested here.
func (h *harness) fuseWorks() bool {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	r := h.run(h.spec("fuse", "true"), asRoot)
	return r.code == 0
}
