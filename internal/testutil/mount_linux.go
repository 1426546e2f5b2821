// SPDX-License-Identifier: BSD-3-Clause

package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/internal/mountinfo"
)

// Mount is one line of /proc/self/mountinfo, its path fields unescaped.
type Mount struct {
	ID, Parent int
	Dev        string // major:minor
	Root       string // the mount's root within its file system
	MountPoint string // resolved, from this process's root
	Options    string // per-mount options
	FSType     string
	Source     string
	SuperOpts  string // per-superblock options
	Line       string // the line as the kernel wrote it
}

// Mounts parses this process's /proc/self/mountinfo, failing t on error.
func Mounts(t testing.TB) []Mount {
	t.Helper()
	ms, err := ReadMounts()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// ReadMounts parses this process's /proc/self/mountinfo (for goroutines
// other than the test's, which must not call t.Fatal).
func ReadMounts() ([]Mount, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []Mount
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" {
			continue
		}
		m, ok := parseMountinfo(l)
		if !ok {
			return nil, fmt.Errorf("mountinfo: bad line %q", l)
		}
		out = append(out, m)
	}
	return out, nil
}

// parseMountinfo parses a mountinfo line (proc(5)): id, parent id,
// major:minor, root, mount point, options, optional fields up to "-",
// file system type, source, super options.
func parseMountinfo(l string) (Mount, bool) {
	f := strings.Split(l, " ")
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || len(f) != sep+4 {
		return Mount{}, false
	}
	id, err1 := strconv.Atoi(f[0])
	parent, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return Mount{}, false
	}
	return Mount{
		ID: id, Parent: parent, Dev: f[2],
		Root: mountinfo.Unescape(f[3]), MountPoint: mountinfo.Unescape(f[4]), Options: f[5],
		FSType: mountinfo.Unescape(f[sep+1]), Source: mountinfo.Unescape(f[sep+2]), SuperOpts: f[sep+3],
		Line: l,
	}, true
}

// MountAt returns the mount whose mount point is path (the topmost when
// several are stacked there), false when nothing is mounted on path.
//
// mountinfo names mount points by their resolved path, so path's
// directory is resolved (a symlink in TMPDIR) before comparing; its last
// element is taken as it is. Only mountinfo and path's parent directories
// are looked at, never path itself: a stat of the mount point would ask a
// FUSE server that may be dead or stopped, and would hold a reference to
// the mount that can make a concurrent umount(2) fail with EBUSY.
func MountAt(t testing.TB, path string) (Mount, bool) {
	t.Helper()
	if !filepath.IsAbs(path) {
		t.Fatalf("MountAt(%q): want an absolute path", path)
	}
	path = filepath.Clean(path)
	if path != "/" {
		dir, err := filepath.EvalSymlinks(filepath.Dir(path))
		if err != nil {
			t.Fatalf("MountAt: %v", err)
		}
		path = filepath.Join(dir, filepath.Base(path))
	}
	var at []Mount
	for _, m := range Mounts(t) {
		if m.MountPoint == path {
			at = append(at, m)
		}
	}
	// Of mounts stacked on one point, the top one is no other's parent.
	for _, m := range at {
		top := true
		for _, o := range at {
			if o.Parent == m.ID {
				top = false
				break
			}
		}
		if top {
			return m, true
		}
	}
	if len(at) > 0 {
		t.Fatalf("MountAt(%s): no topmost of the mounts stacked there: %v", path, at)
	}
	return Mount{}, false
}
