// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/launcher"
)

// Regression tests of issue #17 (items 12 and 13) on the real binary.

// asLimits are the RLIMIT_AS values of the address-space tests: all below
// what the Go runtime reserves when it starts (about 0.8 GB), under which
// shifter used to die in the runtime with status 2 before main.
var asLimits = []uint64{256 << 20, 512 << 20, 1 << 30}

// hasCap reports whether capability c is in the named set ("CapEff",
// "CapBnd") of this process.
func hasCap(t *testing.T, set string, c uint) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, set+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n&(1<<c) != 0
		}
	}
	t.Fatalf("no %s in /proc/self/status", set)
	return false
}

const capSysResource = 24

// checkLimitRun checks one run of `sh -c 'ulimit -S -v; ulimit -H -v'`
// under RLIMIT_AS soft:hard (hard 0 = unlimited). The command must see the
// caller's limits; when the hard limit is below what the runtime needs
// and cannot be raised (canRaise false), shifter must refuse with status
// 69 and a message naming the limit instead.
func checkLimitRun(t *testing.T, soft, hard uint64, canRaise bool, out, errOut string, code int) {
	t.Helper()
	hardS := "unlimited"
	if hard != 0 {
		hardS = strconv.FormatUint(hard/1024, 10)
	}
	if hard != 0 && hard < 2<<30 && !canRaise {
		want := fmt.Sprintf("ulimit -v %d", hard/1024)
		if code != launcher.ExitUnavailable || !strings.Contains(errOut, want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("as=%d:%d without CAP_SYS_RESOURCE: status %d stderr %q; want %d and one line naming %q",
				soft, hard, code, errOut, launcher.ExitUnavailable, want)
		}
		return
	}
	want := fmt.Sprintf("%d\n%s\n", soft/1024, hardS)
	if code != 0 || out != want {
		t.Errorf("as=%d:%d: status %d stdout %q stderr %q; want 0, %q", soft, hard, code, out, errOut, want)
	}
}

// TestAddressSpaceLimit runs shifter as root under low address-space
// limits (issue #17 item 12): the runtime starts, and the command runs
// under the caller's limits, not the runtime's raised ones.
func TestAddressSpaceLimit(t *testing.T) {
	f := setup(t)
	prlimit := testutil.RequireTool(t, "prlimit")
	canRaise := hasCap(t, "CapEff", capSysResource)
	for _, mode := range []string{"loop", "fuse"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "loop" {
				testutil.RequireLoop(t)
			} else {
				testutil.RequireFUSE(t)
			}
			cfg := f.config(t, "imageMount="+mode+"\n")
			for _, soft := range asLimits {
				for _, hard := range []uint64{0, soft} {
					hardArg := "unlimited"
					if hard != 0 {
						hardArg = strconv.FormatUint(hard, 10)
					}
					cmd := exec.Command(prlimit, fmt.Sprintf("--as=%d:%s", soft, hardArg),
						f.shifter, "-i", "busybox", "sh", "-c", "ulimit -S -v; ulimit -H -v")
					cmd.Env = append(os.Environ(), "SHIFTER_CONFIG="+cfg)
					out, errOut, code := run(t, cmd)
					checkLimitRun(t, soft, hard, canRaise, out, errOut, code)
				}
			}
		})
	}
}

// TestUntrustedImageFile: an image file in the store that an ordinary user
// could have written (issue #17 item 13) is not loop-mounted: in auto mode
// it is served through FUSE, which -v says, and imageMount=loop refuses it.
func TestUntrustedImageFile(t *testing.T) {
	f := setup(t)
	testutil.RequireLoop(t)
	testutil.RequireFUSE(t)
	sq, _ := imagestore.Paths(f.store, f.id)
	st, err := os.Stat(sq)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Chown(sq, 0, 0)
		os.Chmod(sq, st.Mode().Perm())
	})
	tests := []struct {
		name   string
		change func() error
		reason string
	}{
		{"trusted", func() error { return nil }, ""},
		{"world-writable", func() error { return os.Chmod(sq, 0o666) }, "writable by every user"},
		{"owned by a user", func() error { return os.Chown(sq, 65534, 65534) }, "owned by uid 65534"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			must(t, os.Chown(sq, 0, 0))
			must(t, os.Chmod(sq, st.Mode().Perm()))
			must(t, tc.change())
			for _, mode := range []string{"auto", "loop"} {
				cfg := f.config(t, "imageMount="+mode+"\n")
				cmd := exec.Command(f.shifter, "-v", "-i", "busybox", "echo", "ok")
				cmd.Env = append(os.Environ(), "SHIFTER_CONFIG="+cfg)
				out, errOut, code := run(t, cmd)
				mounted := ""
				for _, l := range strings.Split(errOut, "\n") {
					if strings.Contains(l, `msg="image mounted"`) {
						mounted = l
					}
				}
				switch {
				case tc.reason == "":
					if code != 0 || out != "ok\n" || !strings.Contains(mounted, "mode=loop") {
						t.Errorf("imageMount=%s: status %d stdout %q, image mounted %q; want a loop mount\n%s", mode, code, out, mounted, errOut)
					}
				case mode == "loop":
					if code != launcher.ExitNoPerm || !strings.Contains(errOut, tc.reason) || mounted != "" {
						t.Errorf("imageMount=loop: status %d, image mounted %q; want %d naming %q\n%s", code, mounted, launcher.ExitNoPerm, tc.reason, errOut)
					}
				default:
					if code != 0 || out != "ok\n" || !strings.Contains(mounted, "mode=fuse") || !strings.Contains(errOut, "served through FUSE") || !strings.Contains(errOut, tc.reason) {
						t.Errorf("imageMount=auto: status %d stdout %q, image mounted %q; want fuse, said with %q\n%s", code, out, mounted, tc.reason, errOut)
					}
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestAddressSpaceLimitUnprivileged runs a non-setuid shifter as nobody
// under low address-space limits (issue #17 item 12): with a soft limit
// below an unlimited hard one the runtime starts and the command gets the
// soft limit back; with a hard limit that low, which nobody may raise,
// shifter refuses with one line naming it.
func TestAddressSpaceLimitUnprivileged(t *testing.T) {
	f := setup(t)
	prlimit := testutil.RequireTool(t, "prlimit")
	testutil.RequireTool(t, "setpriv")
	if exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", "test -r /dev/fuse -a -w /dev/fuse").Run() != nil {
		testutil.Unavailable(t, "nobody cannot use /dev/fuse")
	}
	conf, _, _ := shifterStyleConfig(t, f, "auto")
	for _, soft := range asLimits {
		for _, hard := range []uint64{0, soft} {
			hardArg := "unlimited"
			if hard != 0 {
				hardArg = strconv.FormatUint(hard, 10)
			}
			cmd := exec.Command(prlimit, fmt.Sprintf("--as=%d:%s", soft, hardArg), "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
				f.shifter, "-i", "busybox", "sh", "-c", "ulimit -S -v; ulimit -H -v")
			cmd.Env = []string{"PATH=/usr/bin:/bin", "SHIFTER_CONFIG=" + conf}
			cmd.Dir = "/"
			out, errOut, code := run(t, cmd)
			if code == launcher.ExitUnavailable && strings.Contains(errOut, "user namespace") {
				testutil.Unavailable(t, "unprivileged containers: "+errOut)
			}
			checkLimitRun(t, soft, hard, false, out, errOut, code)
		}
	}
}
