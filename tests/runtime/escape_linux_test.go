// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
)

// TestWorkdirCannotLeaveContainer is the runc CVE-2024-21626 attack on
// the working directory (#17 item 8): a working directory of
// /proc/self/fd/N names, while the command is being started, a descriptor
// of the namespace init, such as a volume source opened on the host. The
// command must start in the container (here in /, with a warning), never
// in the host directory behind the descriptor, in both modes, with one
// and two volumes.
func TestWorkdirCannotLeaveContainer(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		wv := h.mkdir("wv", 0o755, testUID, testGID)
		wv2 := h.mkdir("wv2", 0o755, testUID, testGID)
		os.WriteFile(filepath.Join(wv, "host-side-marker"), nil, 0o644)
		os.WriteFile(filepath.Join(wv2, "host-side-marker"), nil, 0o644)
		for _, vols := range []string{wv + ":/wv", wv + ":/wv;" + wv2 + ":/wv2"} {
			for fd := 3; fd <= 16; fd++ {
				ds := h.spec(mode, "sh", "-c", "pwd; ls -a; cd ../../..; echo ---; ls -a")
				ds.Volumes = vols
				ds.Workdir = fmt.Sprintf("/proc/self/fd/%d", fd)
				r := h.run(ds, asUser)
				if r.code != 0 {
					t.Fatalf("workdir %s: exit %d\n%s", ds.Workdir, r.code, r.stderr)
				}
				l := lines(r.stdout)
				if strings.Contains(r.stdout, "host-side-marker") || len(l) == 0 || l[0] != "/" || !strings.Contains(r.stdout, "data-to-etc") {
					t.Fatalf("workdir %s with volumes %s: the command started outside the container:\n%s", ds.Workdir, vols, r.stdout)
				}
			}
		}
	})
}

// TestInstalledWorkdirCannotLeave is #17 item 8's report as it was made:
// the setuid shifter with a volume and --workdir=/proc/self/fd/N, and an
// image whose WORKDIR is /proc/self/fd/8 run with a bare --workdir.
func TestInstalledWorkdirCannotLeave(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	wv := h.mkdir("wv", 0o755, nobodyUID, nobodyGID)
	os.WriteFile(filepath.Join(wv, "host-side-marker"), nil, 0o644)
	// The same image published with WORKDIR /proc/self/fd/8.
	sum := sha256.Sum256([]byte("workdir image " + h.dir))
	wdID := hex.EncodeToString(sum[:])
	tmp, err := imagestore.CreateTemp(in.store)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(h.img.squashfs)
	tmp.Write(b)
	tmp.Close()
	if err := imagestore.Publish(in.store, tmp.Name(), &imagestore.Metadata{
		ID: wdID, Env: []string{"PATH=/bin:/usr/bin"}, WorkDir: "/proc/self/fd/8",
	}); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"loop", "fuse"} {
		t.Run(mode, func(t *testing.T) {
			requireMode(t, mode)
			in.t = t
			in.config(mode, "")
			for _, args := range [][]string{
				{"--image=id:" + in.id, "-V", wv + ":/wv", "--workdir=/proc/self/fd/8"},
				{"--image=id:" + in.id, "-V", wv + ":/wv", "--workdir=/proc/self/fd/12"},
				{"--image=id:" + wdID, "-V", wv + ":/wv", "--workdir"},
			} {
				r := in.run(in.shifter, nil, append(args, "sh", "-c", "pwd; cd ../../..; ls -a")...)
				if r.code != 0 || strings.Contains(r.stdout, "host-side-marker") || !strings.HasPrefix(r.stdout, "/\n") || !strings.Contains(r.stdout, "data-to-etc") {
					t.Errorf("%q: exit %d, the command started outside the container:\n%s\n%s", args, r.code, r.stdout, r.stderr)
				}
			}
		})
	}
}

// imageWith builds a variant of the test image: the tree copied, edit
// applied to the copy, squashed into the test's directory.
func (h *harness) imageWith(name string, edit func(tree string) error) string {
	h.t.Helper()
	mksquashfs := testutil.RequireTool(h.t, "mksquashfs")
	tree := filepath.Join(h.dir, name+"-tree")
	if out, err := exec.Command("cp", "-a", h.img.tree, tree).CombinedOutput(); err != nil {
		h.t.Fatalf("cp: %v\n%s", err, out)
	}
	if err := edit(tree); err != nil {
		h.t.Fatal(err)
	}
	img := filepath.Join(h.dir, name+".squashfs")
	if out, err := exec.Command(mksquashfs, tree, img, "-noappend", "-quiet", "-no-progress").CombinedOutput(); err != nil {
		h.t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	os.Chmod(img, 0o644)
	return img
}

// TestImageSymlinksMakeNothingOnHost is #17 item 10: an image whose /var
// leads into a host directory bound in the container (/var -> /dev, /var
// -> /dev/shm, absolute or relative) must not make the runtime create the
// mount point of /var/tmp on the host; the container starts without that
// mount, with a warning.
func TestImageSymlinksMakeNothingOnHost(t *testing.T) {
	for _, tc := range []struct{ link, host string }{
		{"/dev", "/dev/tmp"},
		{"/dev/shm", "/dev/shm/tmp"},
		{"dev/shm", "/dev/shm/tmp"},
		{"../../../../../../../../dev/shm", "/dev/shm/tmp"},
	} {
		t.Run(strings.ReplaceAll(tc.link, "/", "_"), func(t *testing.T) {
			if _, err := os.Lstat(tc.host); err == nil {
				t.Skipf("%s exists on the host already", tc.host)
			}
			defer os.Remove(tc.host)
			forModes(t, func(t *testing.T, h *harness, mode string) {
				ds := h.spec(mode, "sh", "-c", "echo ran")
				ds.Image = h.imageWith("var-link", func(tree string) error { return os.Symlink(tc.link, filepath.Join(tree, "var")) })
				r := h.run(ds, asUser)
				if _, err := os.Lstat(tc.host); err == nil {
					t.Fatalf("/var -> %s: the runtime created %s on the host", tc.link, tc.host)
				}
				if r.code != 0 || r.stdout != "ran\n" {
					t.Fatalf("/var -> %s: exit %d %q\n%s", tc.link, r.code, r.stdout, r.stderr)
				}
				if !strings.Contains(r.stderr, "/var/tmp") {
					t.Errorf("/var -> %s: no warning about the skipped /var/tmp:\n%s", tc.link, r.stderr)
				}
			})
		})
	}
}

// TestHooksNotSteeredByImage is the hook half of #17 item 10: a site hook
// making a directory through the image's /var (a symlink into the host's
// /dev/shm, absolute, relative inside the root, or relative out of it)
// must not create it on the host. The hook may fail (the container then
// does not start); it must never write outside the container root.
func TestHooksNotSteeredByImage(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	const made = "/dev/shm/spool"
	if _, err := os.Lstat(made); err == nil {
		t.Skipf("%s exists on the host already", made)
	}
	defer os.RemoveAll(made)
	for _, link := range []string{"/dev/shm", "dev/shm", "../../../../../../../../dev/shm"} {
		img := h.imageWith("hook-"+strings.ReplaceAll(link, "/", "_"), func(tree string) error { return os.Symlink(link, filepath.Join(tree, "var")) })
		for _, which := range []string{"pre", "post"} {
			ds := h.spec("loop", "true")
			ds.Image = img
			hook := "mkdir -p var/spool/slurmd"
			if which == "pre" {
				ds.PreMountHook = hook
			} else {
				ds.PostMountHook = hook
			}
			r := h.run(ds, asUser)
			if _, err := os.Lstat(made); err == nil {
				t.Fatalf("%s hook, /var -> %s: the hook created %s on the host (exit %d)", which, link, made, r.code)
			}
			t.Logf("%s hook, /var -> %s: exit %d: %s", which, link, r.code, strings.TrimSpace(r.stderr))
			if r.code != 0 && r.code != 205 {
				t.Errorf("%s hook, /var -> %s: exit %d, want 0 or 205 (ErrHook)\n%s", which, link, r.code, r.stderr)
			}
		}
	}
}

// TestKilledRuntimeTakesContainerAlong is #17 item 11: SIGKILL of the
// runtime's process (the setuid driver, killed by its user) while the
// command has a process in the background must end that process too, and
// release the loop device (the harness's leak check), in both modes; also
// when the whole job was stopped (^Z) first.
func TestKilledRuntimeTakesContainerAlong(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		for _, stopped := range []bool{false, true} {
			t.Run(fmt.Sprintf("stopped=%v", stopped), func(t *testing.T) { killedRuntime(t, h.with(t), mode, stopped) })
		}
	})
}

func killedRuntime(t *testing.T, h *harness, mode string, stopped bool) {
	{
		keepers := make(chan *exec.Cmd, 1)
		defer func() {
			select {
			case keeper := <-keepers:
				keeper.Process.Kill()
				keeper.Wait()
			default:
			}
		}()
		c := asUser
		c.onStart = func(p *os.Process, stdout *lockedBuffer) {
			go func() {
				deadline := time.Now().Add(20 * time.Second)
				for !strings.Contains(stdout.String(), "started") && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				time.Sleep(500 * time.Millisecond)
				if stopped {
					// A member of the job whose parent is outside it (the
					// other end of a pipeline) keeps the group from being
					// orphaned when the driver dies, so the kernel does not
					// continue the stopped group by itself.
					keeper := exec.Command("sleep", "30")
					keeper.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: p.Pid}
					if keeper.Start() == nil {
						keepers <- keeper
					}
					// The terminal's ^Z: SIGTSTP to the job's process group.
					syscall.Kill(-p.Pid, syscall.SIGTSTP)
					time.Sleep(300 * time.Millisecond)
				}
				p.Signal(syscall.SIGKILL)
			}()
		}
		r := h.run(h.spec(mode, "sh", "-c", "sleep 4011 </dev/null >/dev/null 2>&1 & echo started; sleep 4012"), c)
		if r.code != -1 {
			t.Fatalf("the driver was not killed: exit %d\n%s", r.code, r.stderr)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(processesWith("sleep 401")) > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if p := processesWith("sleep 401"); len(p) > 0 {
			for _, l := range p {
				if pid, err := strconv.Atoi(strings.SplitN(l, ":", 2)[0]); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			t.Fatalf("the container's processes outlived the killed runtime: %v", p)
		}
	}
}

// TestStartWhileLoopLockHeldByStoppedProcess is #17 item 9 end to end: a
// stopped process holds the flock on /dev/loop-control (as a user's ^Z
// once left the root-owned init holding it); another user's loop-mode
// start must not hang: it passes the lock over after a bounded wait and
// runs (the harness fails a run that takes a minute).
func TestStartWhileLoopLockHeldByStoppedProcess(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	flock := testutil.RequireTool(t, "flock")
	holder := exec.Command(flock, "/dev/loop-control", "sleep", "120")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-holder.Process.Pid, syscall.SIGKILL)
		syscall.Kill(-holder.Process.Pid, syscall.SIGCONT)
		holder.Wait()
	}()
	ctl, err := os.Open("/dev/loop-control")
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	for i := 0; unix.Flock(int(ctl.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil; i++ {
		unix.Flock(int(ctl.Fd()), unix.LOCK_UN)
		if i > 500 {
			t.Fatal("flock(1) did not take the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(-holder.Process.Pid, syscall.SIGSTOP)
	start := time.Now()
	r := h.run(h.spec("loop", "cat", "/etc/image-marker"), asUser)
	if r.code != 0 || r.stdout != "from-the-image\n" {
		t.Fatalf("start with the loop lock held by a stopped process: exit %d %q\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("started in %v with the lock held by a stopped process", time.Since(start).Round(time.Millisecond))
}

// TestBytesReachTheCommand is #17 item 13's first half: arguments,
// environment values and volume sources that are not valid UTF-8 reach
// the container byte for byte (they were replaced with U+FFFD on their way
// to the namespace init).
func TestBytesReachTheCommand(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	const raw = "ab\377\376cd"
	want := fmt.Sprintf("%x  -\n", md5.Sum([]byte(raw)))
	src := h.mkdir("vol-\377\376", 0o755, nobodyUID, nobodyGID)
	os.WriteFile(filepath.Join(src, "f"), []byte(raw), 0o644)
	for _, mode := range []string{"loop", "fuse"} {
		t.Run(mode, func(t *testing.T) {
			requireMode(t, mode)
			in.t = t
			in.config(mode, "")
			for _, tc := range []struct {
				name string
				args []string
			}{
				{"argument", []string{"sh", "-c", `printf %s "$1" | md5sum`, "x", raw}},
				{"environment", []string{"--env=RAW=" + raw, "sh", "-c", `printf %s "$RAW" | md5sum`}},
				{"volume source", []string{"--volume=" + src + ":/v", "sh", "-c", `cat /v/f | md5sum`}},
			} {
				r := in.run(in.shifter, nil, append([]string{"--image=id:" + in.id}, tc.args...)...)
				if r.code != 0 || r.stdout != want {
					t.Errorf("%s: exit %d, md5 %q, want %q (the bytes were changed)\n%s", tc.name, r.code, r.stdout, want, r.stderr)
				}
			}
		})
	}
}

// TestCommandLookedUpAsUser is #17 item 13's second half: the command is
// looked up in the container's PATH with the user's rights, so that a
// directory on PATH the user cannot read (a 0700 root-owned site volume)
// does not tell them whether a file exists in it: an existing program
// there and a missing one give the same answer.
func TestCommandLookedUpAsUser(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	closed := h.mkdir("closed-path", 0o700, 0, 0)
	os.WriteFile(filepath.Join(closed, "hidden-cmd"), []byte("#!/bin/sh\necho ran\n"), 0o755)
	answer := func(cmd string) result {
		ds := h.spec("loop", cmd)
		ds.Env = []string{"PATH=/closed:/bin"}
		ds.SiteVolumes = closed + ":/closed"
		return h.run(ds, asUser)
	}
	hidden, missing := answer("hidden-cmd"), answer("missing-cmd")
	if hidden.code != 127 || missing.code != 127 {
		t.Fatalf("exit %d and %d, want 127 for both\n%s\n%s", hidden.code, missing.code, hidden.stderr, missing.stderr)
	}
	if h, m := strings.ReplaceAll(hidden.stderr, "hidden-cmd", "X"), strings.ReplaceAll(missing.stderr, "missing-cmd", "X"); stripTimes(h) != stripTimes(m) {
		t.Errorf("a file in a directory the user cannot read is told apart from a missing one:\n%s\n--\n%s", hidden.stderr, missing.stderr)
	}
}

// stripTimes drops slog's time= fields.
func stripTimes(s string) string {
	var out []string
	for _, l := range lines(s) {
		var keep []string
		for _, f := range strings.Fields(l) {
			if !strings.HasPrefix(f, "time=") {
				keep = append(keep, f)
			}
		}
		out = append(out, strings.Join(keep, " "))
	}
	return strings.Join(out, "\n")
}
