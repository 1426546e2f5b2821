// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/launcher"
)

// pncReport is what the container says of its perNodeCache volume at
// /scratch: a file written and read back, the owner and mode of its root,
// the file system's type and size, and its mount options.
const pncReport = `echo data > /scratch/f && cat /scratch/f && stat -c "%u %g %a" /scratch && ` +
	`stat -f -c "%t %b %S" /scratch && grep " /scratch " /proc/self/mounts`

// pncLeftovers lists what perNodeCache volumes left on the host: files in
// dir, and loop devices whose backing file was there.
func pncLeftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		out = append(out, "file "+e.Name())
	}
	for _, l := range pncLoops(dir) {
		out = append(out, "loop device "+l)
	}
	return out
}

// TestPerNodeCache runs the setuid shifter as nobody with perNodeCache
// volumes: an xfs and an ext4 file system of the size asked for, mounted
// read-write, nosuid, nodev at the destination and owned by the user;
// its source is ignored (here a directory nobody cannot enter); and once
// the container has ended nothing is left in perNodeCachePath nor on a
// loop device.
func TestPerNodeCache(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	testutil.RequireTool(t, "mkfs.xfs")
	testutil.RequireTool(t, "mke2fs")
	in := install(t, h)
	cache := h.mkdir("pnc", 0o755, 0, 0)
	closed := h.mkdir("closed", 0o700, 0, 0)
	in.config("loop", "perNodeCachePath="+cache+"\nperNodeCacheSizeLimit=1G\nperNodeCacheAllowedFsType=xfs\nperNodeCacheAllowedFsType=ext4\n")
	for _, tc := range []struct {
		flag  string
		size  int64
		magic string
	}{
		{"perNodeCache=size=400M", 400 << 20, "58465342"},
		{"PERNODECACHE=Size=64m,bs=4k,method=loop,FsType=EXT4", 64 << 20, "ef53"},
	} {
		t.Run(tc.magic, func(t *testing.T) {
			in.t = t
			r := in.run(in.shifter, nil, "--image=id:"+in.id, "--volume="+closed+":/scratch:"+tc.flag, "sh", "-c", pncReport)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			l := lines(r.stdout)
			if len(l) != 4 {
				t.Fatalf("output %q", r.stdout)
			}
			if l[0] != "data" || l[1] != "65534 65534 755" {
				t.Errorf("file read back %q, owner and mode %q; want data, 65534 65534 755", l[0], l[1])
			}
			var magic string
			var blocks, bsize int64
			if _, err := fmt.Sscan(l[2], &magic, &blocks, &bsize); err != nil {
				t.Fatalf("statfs %q: %v", l[2], err)
			}
			// The file system's own metadata (xfs's log, 64 MiB at
			// least; ext4's inode tables) is not counted.
			if got := blocks * bsize; magic != tc.magic || got > tc.size || got < tc.size*3/4 {
				t.Errorf("statfs type %s, %d bytes; want %s, about %d bytes", magic, got, tc.magic, tc.size)
			}
			opts := strings.Split(strings.Fields(l[3])[3], ",")
			for _, want := range []string{"rw", "nosuid", "nodev"} {
				if !slices.Contains(opts, want) {
					t.Errorf("mount options %q lack %s", l[3], want)
				}
			}
			if left := pncLeftovers(t, cache); len(left) > 0 {
				t.Errorf("left behind: %q", left)
			}
		})
	}

	// A site's siteFs entry with the flag: made as for a user, owned by
	// the user.
	t.Run("siteFs", func(t *testing.T) {
		in.t = t
		in.config("loop", "perNodeCachePath="+cache+"\nsiteFs=/tmp:/site-cache:perNodeCache=size=350M\n")
		r := in.run(in.shifter, nil, "--image=id:"+in.id, "sh", "-c", "touch /site-cache/x && stat -c '%u %a' /site-cache && stat -f -c %t /site-cache")
		if r.code != 0 || r.stdout != "65534 755\n58465342\n" {
			t.Errorf("exit %d stdout %q, want 65534 755 and xfs\n%s", r.code, r.stdout, r.stderr)
		}
		if left := pncLeftovers(t, cache); len(left) > 0 {
			t.Errorf("left behind: %q", left)
		}
	})
}

// TestPerNodeCacheRefused: what the site does not allow, or the node
// cannot do, fails with a status and a message naming the reason, and
// leaves nothing in perNodeCachePath; a destination that is an image
// symlink pointing out of the root is resolved inside it, and refused
// when it leads to /etc or dangles.
func TestPerNodeCacheRefused(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	testutil.RequireTool(t, "mkfs.xfs")
	testutil.RequireTool(t, "mke2fs")
	in := install(t, h)
	cache := h.mkdir("pnc", 0o755, 0, 0)
	conf := "perNodeCachePath=" + cache + "\nperNodeCacheSizeLimit=1G\n"
	for _, tc := range []struct {
		name, mode, conf, volume string
		code                     int
		msg                      string
	}{
		{"over the limit", "loop", conf, "/x:/scratch:perNodeCache=size=1025M", launcher.ExitBadVolume,
			"size 1074790400 bytes is above the site's limit, perNodeCacheSizeLimit, of 1073741824 bytes"},
		{"absurd size", "loop", conf, "/x:/scratch:perNodeCache=size=9e", launcher.ExitBadVolume, `"9e" is too large`},
		{"zero size", "loop", conf, "/x:/scratch:perNodeCache=size=0", launcher.ExitBadVolume, `"0" is not a size above 0`},
		{"negative size", "loop", conf, "/x:/scratch:perNodeCache=size=-1G", launcher.ExitBadVolume, `"-1G" is not a size`},
		{"file system not allowed", "loop", conf, "/x:/scratch:perNodeCache=size=64M,fs=ext4", launcher.ExitBadVolume,
			"file system ext4 is not allowed here (perNodeCacheAllowedFsType: xfs)"},
		{"unknown file system", "loop", conf, "/x:/scratch:perNodeCache=size=64M,fs=btrfs", launcher.ExitBadVolume, `file system "btrfs" is not supported`},
		{"no perNodeCachePath", "loop", "", "/x:/scratch:perNodeCache=size=400M", launcher.ExitUnavailable, "perNodeCachePath is not set in udiRoot.conf"},
		{"destination through an image symlink to /etc", "loop", conf, "/x:/escape-abs:perNodeCache=size=400M", launcher.ExitBadVolume, "resolves to /etc"},
		{"destination through an image symlink climbing out to /etc", "loop", conf, "/x:/escape-rel/sub:perNodeCache=size=400M", launcher.ExitBadVolume, "resolves to /etc/sub"},
		// A dangling symlink climbing out of the root, as for other
		// volumes: refused, nothing made (checked below).
		{"destination through a dangling image symlink out of the root", "loop", conf, "/x:/escape-new:perNodeCache=size=400M", launcher.ExitBadVolume, "destination /escape-new"},
		{"mkfs refuses", "loop", conf, "/x:/scratch:perNodeCache=size=100M", launcher.ExitSetup, "Filesystem must be larger than 300MB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in.t = t
			in.config(tc.mode, tc.conf)
			r := in.run(in.shifter, nil, "--image=id:"+in.id, "--volume="+tc.volume, "true")
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("exit %d stderr %q; want %d and %q", r.code, r.stderr, tc.code, tc.msg)
			}
			if left := pncLeftovers(t, cache); len(left) > 0 {
				t.Errorf("left behind: %q", left)
			}
			if _, err := os.Lstat("/shifter-escape-test"); err == nil {
				os.RemoveAll("/shifter-escape-test")
				t.Errorf("/shifter-escape-test was made on the host")
			}
		})
	}

	t.Run("unprivileged mode", func(t *testing.T) {
		in.t = t
		in.config("fuse", conf)
		r := in.run(in.plain, nil, "--image=id:"+in.id, "--volume=/x:/scratch:perNodeCache=size=400M", "true")
		if r.code != launcher.ExitUnavailable || !strings.Contains(r.stderr, "not unprivileged mode") {
			t.Errorf("exit %d stderr %q; want %d naming unprivileged mode", r.code, r.stderr, launcher.ExitUnavailable)
		}
	})

	// Loop devices denied (as a container's device rules do): the image
	// through FUSE, the perNodeCache volume refused, nothing left.
	t.Run("no loop devices", func(t *testing.T) {
		requireMode(t, "fuse")
		in.t = t
		in.config("fuse", conf)
		deny := "mount --bind /dev/loop-control /dev/loop-control && mount -o remount,bind,nodev /dev/loop-control"
		r := inRootNamespace(t, deny+" && exec "+asNobody(t)+" \"$@\"", in.shifter, "--image=id:"+in.id,
			"--volume=/x:/scratch:perNodeCache=size=400M", "true")
		if r.code != launcher.ExitUnavailable || !strings.Contains(r.stderr, "no usable loop device on this node") {
			t.Errorf("exit %d stderr %q; want %d naming the loop devices", r.code, r.stderr, launcher.ExitUnavailable)
		}
		if left := pncLeftovers(t, cache); len(left) > 0 {
			t.Errorf("left behind: %q", left)
		}
	})
}

// TestPerNodeCacheKilledRuntime: while the container runs, its backing
// file is already unlinked (only the loop device holds it); the setuid
// shifter killed (SIGKILL, by its user) leaves nothing: no file in
// perNodeCachePath, no loop device on its file.
func TestPerNodeCacheKilledRuntime(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	testutil.RequireTool(t, "mkfs.xfs")
	in := install(t, h)
	cache := h.mkdir("pnc", 0o755, 0, 0)
	in.config("loop", "perNodeCachePath="+cache+"\n")
	cmd := exec.Command(in.shifter, "--image=id:"+in.id, "--volume=/x:/scratch:perNodeCache=size=400M",
		"sh", "-c", "echo x > /scratch/f && echo started && sleep 4021")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID, Groups: []uint32{nobodyGID}}}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "started") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "started") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the container did not start: %s", out.String())
	}
	if l := pncLoops(cache); len(l) != 1 || !strings.HasSuffix(l[0], " (deleted)") {
		t.Errorf("loop devices on perNodeCachePath's files while the container runs: %q, want 1, on a deleted file", l)
	}
	if ents, _ := os.ReadDir(cache); len(ents) > 0 {
		t.Errorf("perNodeCachePath holds %d files while the container runs; the backing file should be unlinked", len(ents))
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	deadline = time.Now().Add(10 * time.Second)
	for len(pncLeftovers(t, cache)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if left := pncLeftovers(t, cache); len(left) > 0 {
		t.Errorf("left behind after SIGKILL: %q", left)
	}
}

// pncLoops lists the loop devices whose backing file was in dir.
func pncLoops(dir string) []string {
	var out []string
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(b), dir+"/") {
			out = append(out, f+" -> "+strings.TrimSpace(string(b)))
		}
	}
	return out
}
