// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/launcher"
)

// runAs runs argv (an absolute path first) as the installation's test user
// (nobody) with a deadline, and returns the result.
func (in *installation) runAs(ctx context.Context, env []string, argv ...string) result {
	in.t.Helper()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}, env...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID, Groups: []uint32{nobodyGID}}}
	cmd.WaitDelay = 10 * time.Second
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Run()
	return result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

// inRootNamespace runs script as root in a private mount namespace (sh -c,
// with the extra arguments as $1...), for tests that change /dev there
// before starting shifter as nobody through setpriv.
func inRootNamespace(t *testing.T, script string, args ...string) result {
	t.Helper()
	unshare := testutil.RequireTool(t, "unshare")
	cmd := exec.Command(unshare, append([]string{"-m", "--propagation", "private", "sh", "-c", script, "sh"}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Run()
	return result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

// asNobody is the setpriv prefix that makes the rest of a command line run
// as nobody, without capabilities.
func asNobody(t *testing.T) string {
	setpriv := testutil.RequireTool(t, "setpriv")
	return fmt.Sprintf("%s --reuid=%d --regid=%d --clear-groups --inh-caps=-all", setpriv, nobodyUID, nobodyGID)
}

// TestAutoFallsBackToFUSE: with imageMount=auto, a loop mount that fails
// for a reason of the loop devices (denied as in a container, not a loop
// device at all) is replaced by the FUSE mount, which --verbose reports;
// when FUSE cannot work either, one line names both reasons.
func TestAutoFallsBackToFUSE(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	requireMode(t, "fuse")
	in := install(t, h)
	in.config("auto", "")
	run := fmt.Sprintf("%s %s --verbose --image=id:%s cat /etc/image-marker", asNobody(t), in.shifter, in.id)
	// A nodev bind of a device node makes opening it fail with EACCES,
	// as a container's device rules do.
	denyLoop := "mount --bind /dev/loop-control /dev/loop-control && mount -o remount,bind,nodev /dev/loop-control"
	denyFUSE := "mount --bind /dev/fuse /dev/fuse && mount -o remount,bind,nodev /dev/fuse"
	for _, tc := range []struct {
		name, setup string
		loopErr     string // in the fallback message
	}{
		{"loop-control denied", denyLoop, "permission denied"},
		{"loop-control not a loop device", "mount --bind /dev/null /dev/loop-control", "inappropriate ioctl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in.t = t
			r := inRootNamespace(t, tc.setup+" && exec "+run)
			if r.code != 0 || r.stdout != "from-the-image\n" {
				t.Fatalf("exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
			}
			var fallback string
			for _, l := range lines(r.stderr) {
				if strings.Contains(l, "mode=fuse") && strings.Contains(l, "loop mount failed") {
					fallback = l
				}
			}
			if fallback == "" || !strings.Contains(strings.ToLower(fallback), tc.loopErr) {
				t.Errorf("--verbose does not report the fallback to fuse with %q:\n%s", tc.loopErr, r.stderr)
			}
		})
	}
	t.Run("fuse impossible too", func(t *testing.T) {
		in.t = t
		r := inRootNamespace(t, denyLoop+" && "+denyFUSE+" && exec "+strings.Replace(run, "--verbose ", "", 1))
		if r.code != launcher.ExitUnavailable || r.stdout != "" {
			t.Fatalf("exit %d (want %d), stdout %q\n%s", r.code, launcher.ExitUnavailable, r.stdout, r.stderr)
		}
		l := lines(r.stderr)
		if len(l) != 1 || !strings.HasPrefix(l[0], "shifter: ") ||
			!strings.Contains(l[0], "loop-control: permission denied") || !strings.Contains(l[0], "/dev/fuse: permission denied") {
			t.Errorf("want one line naming both reasons, got:\n%s", r.stderr)
		}
	})
	// Without obstacles auto mode mounts by loop.
	t.Run("loop works", func(t *testing.T) {
		in.t = t
		r := inRootNamespace(t, "exec "+run)
		if r.code != 0 || !strings.Contains(r.stderr, "mode=loop") || strings.Contains(r.stderr, "mode=fuse") {
			t.Errorf("exit %d\n%s", r.code, r.stderr)
		}
	})
}

// TestUsersToImport: usersToImport copies host users from NSS into the
// container's /etc/passwd (and their primary groups into /etc/group),
// exactly as getent shows them; an unknown name is left out with a
// warning, and the caller is not listed twice.
func TestUsersToImport(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	in := install(t, h)
	getent := testutil.RequireTool(t, "getent")
	host := func(db, key string) string {
		out, err := exec.Command(getent, db, key).Output()
		if err != nil {
			t.Skipf("getent %s %s: %v", db, key, err)
		}
		return strings.TrimSpace(string(out))
	}
	daemon, bin := host("passwd", "daemon"), host("passwd", "bin")
	daemonGroup := host("group", strings.Split(daemon, ":")[3])
	in.config("loop", "usersToImport=daemon no-such-user-xyz bin nobody\n")
	r := in.run(in.shifter, nil, "--image=id:"+in.id, "sh", "-c", "cat /etc/passwd; echo --; cat /etc/group")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	passwd, group, _ := strings.Cut(r.stdout, "--\n")
	pl := lines(passwd)
	for _, want := range []string{daemon, bin} {
		if !slices.Contains(pl, want) {
			t.Errorf("/etc/passwd lacks the host's %q:\n%s", want, passwd)
		}
	}
	if n := strings.Count("\n"+passwd, "\nnobody:"); n != 1 {
		t.Errorf("nobody is listed %d times:\n%s", n, passwd)
	}
	if strings.Contains(passwd, "no-such-user") || !strings.Contains(r.stderr, "no-such-user-xyz") {
		t.Errorf("unknown user: passwd\n%s\nstderr: %s", passwd, r.stderr)
	}
	// The group line without the host's member list.
	f := strings.Split(daemonGroup, ":")
	if want := strings.Join(f[:3], ":") + ":"; !slices.Contains(lines(group), want) {
		t.Errorf("/etc/group lacks %q:\n%s", want, group)
	}
	// Inside, the names resolve (busybox reads /etc/passwd).
	r = in.run(in.shifter, nil, "--image=id:"+in.id, "id", "-un", "daemon")
	if r.code != 0 || r.stdout != "daemon\n" {
		t.Errorf("id -un daemon: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
}

// TestConcurrentShifterStarts: many starts of one image on one node at the
// same time, through the installed setuid shifter as nobody, all succeed
// and leave no mount, loop device or shifter-mount process (security case:
// 128 concurrent starts).
func TestConcurrentShifterStarts(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	for _, tc := range []struct {
		mode      string
		n, nShort int
	}{
		{"loop", 128, 24},
		{"fuse", 32, 8},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			requireMode(t, tc.mode)
			in.t = t
			in.config(tc.mode, "")
			n := tc.n
			if testing.Short() {
				n = tc.nShort
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			start := time.Now()
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failed []string
			gate := make(chan struct{})
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					<-gate
					r := in.runAs(ctx, nil, in.shifter, "--image=id:"+in.id, "sh", "-c", "cat /etc/image-marker; sleep 0.5")
					if r.code != 0 || r.stdout != "from-the-image\n" {
						mu.Lock()
						failed = append(failed, fmt.Sprintf("start %d: exit %d, %q: %s", i, r.code, r.stdout, strings.TrimSpace(r.stderr)))
						mu.Unlock()
					}
				}(i)
			}
			// How many containers of the image were up at once (loop
			// devices bound to it, or helpers serving it).
			peak, stop := 0, make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					if k := len(h.leaks()); k > peak {
						peak = k
					}
				}
			}()
			close(gate)
			wg.Wait()
			close(stop)
			<-sampled
			t.Logf("%d concurrent %s starts in %v; at most %d loop devices or processes of the image seen at once",
				n, tc.mode, time.Since(start).Round(time.Millisecond), peak)
			if len(failed) > 0 {
				slices.Sort(failed)
				t.Errorf("%d of %d concurrent starts failed:\n%s", len(failed), n, strings.Join(failed[:min(len(failed), 10)], "\n"))
			}
			h.with(t).checkNoLeaks()
			in.checkNoHelpers()
		})
	}
}

// checkNoHelpers fails the test when a process of the installation (a
// shifter or shifter-mount started from its directory) is still running.
func (in *installation) checkNoHelpers() {
	in.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			if _, err := strconv.Atoi(p.Name()); err != nil {
				continue
			}
			exe, _ := os.Readlink("/proc/" + p.Name() + "/exe")
			if strings.HasPrefix(exe, in.dir+"/") {
				left = append(left, p.Name()+": "+exe)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			in.t.Errorf("processes left running:\n%s", strings.Join(left, "\n"))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fileState is what must not change in a root-owned file.
type fileState struct {
	sum   [32]byte
	mtime time.Time
	size  int64
}

func stateOf(t *testing.T, p string) fileState {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fileState{sha256.Sum256(b), st.ModTime(), st.Size()}
}

// TestShifterClosedStdio: shifter started with fds 0, 1 and 2 closed (setuid as
// nobody, and as root without setuid) writes into none of the root-owned
// files it opens (configuration, image, metadata), and the command gets
// nothing but /dev/null on 0, 1 and 2 (security case CVE-2024-21626,
// CVE-2023-29403).
func TestShifterClosedStdio(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	in := install(t, h)
	in.config("loop", "")
	meta, _ := filepath.Glob(filepath.Join(in.store, "*.json"))
	watched := append([]string{in.conf, filepath.Join(in.store, in.id+".squashfs")}, meta...)
	before := map[string]fileState{}
	for _, p := range watched {
		before[p] = stateOf(t, p)
	}
	// The wrapper closes 0, 1, 2 and execs shifter with the rest.
	closing := []string{"/bin/sh", "-c", `exec "$0" "$@" <&- >&- 2>&-`}
	for _, tc := range []struct {
		name string
		root bool // the plain binary as root, else the setuid one as nobody
	}{{"setuid as nobody", false}, {"root", true}} {
		t.Run(tc.name, func(t *testing.T) {
			in.t = t
			bin := in.shifter
			if tc.root {
				bin = in.plain
			}
			runClosed := func(args ...string) int {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, closing[0], append(append(closing[1:], bin), args...)...)
				cmd.Env = []string{"PATH=/usr/bin:/bin", "SHIFTER_CONFIG=" + in.conf}
				cmd.Dir = "/"
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				if !tc.root {
					cmd.SysProcAttr.Credential = &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID, Groups: []uint32{nobodyGID}}
				}
				cmd.Run()
				return cmd.ProcessState.ExitCode()
			}
			// A command that runs long enough to look at its descriptors.
			marker := fmt.Sprintf("3.%d", time.Now().UnixNano()%1000000+1000000)
			done := make(chan int, 1)
			go func() { done <- runClosed("--verbose", "--image=id:"+in.id, "sleep", marker) }()
			pid := findProcess(t, "sleep\x00"+marker+"\x00", 20*time.Second)
			fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, fd := range fds {
				target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
				got = append(got, fd.Name()+" -> "+target)
			}
			// glibc, in a setuid program, opens /dev/full write-only on a
			// closed stdin (reads fail); the Go runtime and shifter itself
			// put /dev/null there.
			if len(got) == 3 && got[0] == "0 -> /dev/full" && !tc.root {
				got[0] = "0 -> /dev/null"
			}
			if want := []string{"0 -> /dev/null", "1 -> /dev/null", "2 -> /dev/null"}; !slices.Equal(got, want) {
				t.Errorf("the command's descriptors: %q, want %q", got, want)
			}
			if code := <-done; code != 0 {
				t.Errorf("exit %d", code)
			}
			// Failures with messages to write: unknown image, bad volume.
			if code := runClosed("--verbose", "--image=id:"+strings.Repeat("0", 64), "true"); code != launcher.ExitUnknownImage {
				t.Errorf("unknown image: exit %d, want %d", code, launcher.ExitUnknownImage)
			}
			if code := runClosed("--verbose", "--image=id:"+in.id, "--volume=/:/etc", "true"); code != launcher.ExitBadVolume {
				t.Errorf("bad volume: exit %d, want %d", code, launcher.ExitBadVolume)
			}
			for _, p := range watched {
				if after := stateOf(t, p); after != before[p] {
					t.Errorf("%s changed: %+v -> %+v", p, before[p], after)
				}
			}
		})
	}
}

// findProcess waits for a process whose command line starts with prefix
// (NUL-separated) and returns its pid.
func findProcess(t *testing.T, prefix string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			pid, err := strconv.Atoi(p.Name())
			if err != nil {
				continue
			}
			if cl, err := os.ReadFile("/proc/" + p.Name() + "/cmdline"); err == nil && strings.HasPrefix(string(cl), prefix) {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no process %q within %v", strings.ReplaceAll(prefix, "\x00", " "), timeout)
	return 0
}

// TestCallerLimits: the caller's umask and resource limits (set with sh and
// prlimit as nobody, for the setuid shifter) do not change the modes of
// what the runtime creates; limits under which shifter cannot work end in
// one clear line before anything is mounted; otherwise the command gets
// the caller's limits exactly (security case: umask 000/077, ulimit -n 5,
// -f 1, -u 1).
func TestCallerLimits(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	prlimit := testutil.RequireTool(t, "prlimit")
	in := install(t, h)
	in.config("loop", "")
	data := h.mkdir("ldata", 0o755, nobodyUID, nobodyGID)
	other := h.mkdir("lother", 0o755, nobodyUID, nobodyGID)

	// sh runs as nobody: umask, then prlimit (lowering only), then shifter.
	run := func(t *testing.T, umask string, limits []string, args ...string) result {
		t.Helper()
		in.t = t
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		argv := append([]string{"/bin/sh", "-c", `umask "$0"; exec "$@"`, umask, prlimit}, limits...)
		argv = append(append(argv, "--", in.shifter), args...)
		return in.runAs(ctx, nil, argv...)
	}
	limit := func(limits, name string) string {
		for _, l := range lines(limits) {
			if strings.HasPrefix(l, name) {
				return strings.Join(strings.Fields(strings.TrimPrefix(l, name))[:2], " ")
			}
		}
		return ""
	}

	for _, umask := range []string{"000", "077"} {
		t.Run("umask "+umask, func(t *testing.T) {
			os.RemoveAll(filepath.Join(data, "new"))
			r := run(t, umask, nil, "--image=id:"+in.id, "--volume="+data+":/data;"+other+":/data/new/deep",
				"sh", "-c", "umask; stat -c '%a %n' /etc/passwd /etc/group /data/new /data/new/deep")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			want := []string{"0" + umask, "644 /etc/passwd", "644 /etc/group", "755 /data/new", "755 /data/new/deep"}
			if got := lines(r.stdout); !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
			// The mount point made in the user's volume: the user's, 0755.
			st, err := os.Stat(filepath.Join(data, "new"))
			if err != nil || st.Mode().Perm() != 0o755 || st.Sys().(*syscall.Stat_t).Uid != nobodyUID {
				t.Errorf("mount point created in the volume: %v %v", st, err)
			}
		})
	}

	// Without CAP_SYS_RESOURCE (some container hosts drop it from the
	// bounding set), a hard file size limit of 1 byte cannot be lifted.
	fsizeFailure := ""
	if !boundingHas(t, unix.CAP_SYS_RESOURCE) {
		fsizeFailure = "file size limit"
	}
	for _, tc := range []struct {
		name   string
		limits []string
		fail   string // "" = runs; else a word of the one-line error
		// the command's limits from /proc/self/limits: name -> "soft hard"
		want map[string]string
	}{
		{"nofile 5", []string{"--nofile=5"}, "open-file limit", nil},
		{"nproc 1", []string{"--nproc=1"}, "process limit", nil},
		// The init lifts the limit for the files it writes (with
		// CAP_SYS_RESOURCE, else the soft limit up to the hard one).
		{"fsize 1", []string{"--fsize=1"}, fsizeFailure, map[string]string{"Max file size": "1 1"}},
		{"fsize 1024", []string{"--fsize=1024:4096"}, "", map[string]string{"Max file size": "1024 4096"}},
		{"nofile soft 70", []string{"--nofile=70:4096"}, "", map[string]string{"Max open files": "70 4096"}},
		{"nproc 1000", []string{"--nproc=1000:2000"}, "", map[string]string{"Max processes": "1000 2000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, "022", tc.limits, "--image=id:"+in.id, "--volume="+data+":/data", "sh", "-c", "cat /proc/self/limits; echo; cat /etc/passwd")
			if tc.fail != "" {
				l := lines(r.stderr)
				want := launcher.ExitUnavailable
				if tc.fail == fsizeFailure {
					want = launcher.ExitSetup
				}
				if r.code != want || r.stdout != "" || len(l) != 1 || !strings.HasPrefix(l[0], "shifter: ") || !strings.Contains(l[0], tc.fail) {
					t.Errorf("want exit %d and one line about the %s, got exit %d\nstdout: %s\nstderr:\n%s", want, tc.fail, r.code, r.stdout, r.stderr)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			limits, passwd, _ := strings.Cut(r.stdout, "\n\n")
			for name, want := range tc.want {
				if got := limit(limits, name); got != want {
					t.Errorf("%s inside = %q, want %q", name, got, want)
				}
			}
			if !strings.Contains(passwd, "root:x:0:0:") || !strings.Contains(passwd, "nobody:x:65534:65534:") {
				t.Errorf("/etc/passwd written short:\n%s", passwd)
			}
		})
	}
	h.checkNoLeaks()
}

// boundingHas reports whether capability c is in this process's bounding
// set (and so in a setuid-root program's).
func boundingHas(t *testing.T, c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return m&(1<<uint(c)) != 0
		}
	}
	t.Fatal("no CapBnd in /proc/self/status")
	return false
}

// TestInternalEntryPoints: the namespace init's entry points (argv[0]
// "shifter-mountns-init", or "shifter-mountns-preinit:N" for the init
// cmd/shifter forks before its runtime starts) are refused to a user who
// execs the setuid binary with that argv[0] by hand, even one who hands
// it a socket with a config of their own on it.
func TestInternalEntryPoints(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	in.config("loop", "")
	for _, arg0 := range []string{"shifter-mountns-init", "shifter-mountns-preinit:3", "shifter-mountns-preinit:x"} {
		t.Run(arg0, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			mine, theirs := os.NewFile(uintptr(fds[0]), "mine"), os.NewFile(uintptr(fds[1]), "theirs")
			defer mine.Close()
			// What the attacker would hand over: a config pipe of theirs
			// (fd 3 onwards as Run's), on the socket before the exec.
			cfgR, cfgW, _ := os.Pipe()
			defer cfgR.Close()
			defer cfgW.Close()
			rights := unix.UnixRights(0, 1, 2, int(cfgR.Fd()), int(cfgW.Fd()), int(cfgR.Fd()))
			if err := unix.Sendmsg(fds[0], []byte("init"), rights, nil, 0); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, in.shifter)
			cmd.Args = []string{arg0}
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			cmd.Dir = "/"
			cmd.ExtraFiles = []*os.File{theirs} // 3
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID, Groups: []uint32{nobodyGID}}}
			out, _ := cmd.CombinedOutput()
			theirs.Close()
			if code := cmd.ProcessState.ExitCode(); code != 126 || !strings.Contains(string(out), "internal entry point") {
				t.Fatalf("argv[0] %q as nobody: exit %d, want 126 and a refusal\n%s", arg0, code, out)
			}
		})
	}
}

// TestPreforkedInit: the setuid shifter forks its namespace init before
// its Go runtime starts and hands it the container; when there is no
// container to run (help, an unknown image, a bad option) the child
// ends by itself, and none is left waiting.
func TestPreforkedInit(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	in := install(t, h)
	in.config("loop", "")
	r := in.run(in.shifter, nil, "-v", "--image=id:"+in.id, "cat", "/etc/image-marker")
	if r.code != 0 || !strings.Contains(r.stderr, "namespace init: pre-forked") {
		t.Fatalf("exit %d, want a start through the pre-forked init\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The child keeps the rest of the command line: a marker tells its
	// children from the inits of other tests' containers.
	marker := fmt.Sprintf("preinit-marker-%d", os.Getpid())
	for _, args := range [][]string{
		{"--help", marker},
		{"--image=id:" + strings.Repeat("0", 64), "true", marker},
		{"--no-such-option", marker},
	} {
		r := in.run(in.shifter, nil, args...)
		if args[0] != "--help" && r.code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
	left := func() (out []string) {
		for _, p := range processesWith(marker) {
			if strings.Contains(p, "shifter-mountns-preinit") {
				out = append(out, p)
			}
		}
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(left()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if p := left(); len(p) > 0 {
		t.Errorf("pre-forked inits left waiting: %v", p)
	}
}
