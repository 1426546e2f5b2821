// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/shifter-go/shifter/internal/testutil"
)

// BenchmarkStart times a container start and /bin/true through the driver
// (one process exec, Run, the namespace init, the mounts, the command), in
// each mode, beside a floor: unshare -m, a loop mount and chroot by the
// util-linux tools.
//
//	go test -run '^$' -bench Start -benchtime 50x ./tests/runtime
func BenchmarkStart(b *testing.B) {
	for _, mode := range []string{"loop", "fuse"} {
		b.Run(mode, func(b *testing.B) {
			h := newBenchHarness(b)
			ds := h.spec(mode, "/bin/true")
			for i := 0; i < b.N; i++ {
				if r := h.run(ds, asRoot); r.code != 0 {
					b.Fatalf("exit %d: %s", r.code, r.stderr)
				}
			}
		})
	}
	b.Run("floor-unshare-mount-chroot", func(b *testing.B) {
		h := newBenchHarness(b)
		unshare := testutil.RequireTool(b, "unshare")
		mnt := filepath.Join(h.dir, "floor")
		h.mkdir("floor", 0o755, 0, 0)
		for i := 0; i < b.N; i++ {
			cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c",
				"mount -t squashfs -o loop,ro,nosuid,nodev "+h.img.squashfs+" "+mnt+" && exec chroot "+mnt+" /bin/true")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
}
