// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shifter-go/shifter/internal/testutil"
)

// leaks lists what a finished container left on the host: mounts whose
// mount point or source lies in the test's directory or names the image,
// loop devices backed by the image, and processes running from or naming
// the test's files.
func (h *harness) leaks() []string {
	var out []string
	mounts, err := testutil.ReadMounts()
	if err != nil {
		out = append(out, err.Error())
	}
	for _, m := range mounts {
		if strings.Contains(m.MountPoint, h.img.dir) || strings.Contains(m.Source, h.img.dir) || strings.Contains(m.Root, h.img.dir) {
			out = append(out, "mount: "+m.Line)
		}
	}
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), h.img.dir) {
			out = append(out, "loop device: "+f+" -> "+strings.TrimSpace(string(b)))
		}
	}
	procs, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, p := range procs {
		name := p.Name()
		if name == "" || name[0] < '0' || name[0] > '9' || name == itoa(self) {
			continue
		}
		exe, _ := os.Readlink("/proc/" + name + "/exe")
		cmdline, _ := os.ReadFile("/proc/" + name + "/cmdline")
		cl := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.HasPrefix(exe, h.img.dir) || strings.Contains(cl, h.img.dir) {
			out = append(out, "process "+name+": "+exe+": "+cl)
		}
	}
	return out
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for n > 0 || i == len(b) {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// checkNoLeaks fails the test if anything is left after a short grace
// period (autoclear and namespace teardown are asynchronous).
func (h *harness) checkNoLeaks() {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := h.leaks()
		if len(l) == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Errorf("left behind on the host:\n%s", strings.Join(l, "\n"))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
