// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/shifterd"
	sdclient "github.com/shifter-go/shifter/shifterd/client"
)

// daemon is a shifterd started for one test on the installation's store.
type daemon struct {
	t      *testing.T
	in     *installation
	bin    string
	socket string
	mnt    string
	cmd    *exec.Cmd
	log    *lockedBuffer
}

// startShifterd writes udiRoot.conf for imageMount=auto with shifterd (and
// a node cache in cacheDir) and starts the daemon.
func startShifterd(t *testing.T, in *installation, idle, cacheDir string) *daemon {
	t.Helper()
	testutil.RequireFUSE(t)
	d := &daemon{t: t, in: in, bin: testutil.Binary(t, "shifterd"), log: &lockedBuffer{},
		socket: filepath.Join(in.h.dir, "shifterd.sock"), mnt: filepath.Join(in.h.dir, "sdmnt")}
	in.config("auto", fmt.Sprintf("shifterdSocket=%s\nshifterdIdleUnmount=%s\nnodeCacheDir=%s\nnodeCacheSize=256M\n",
		d.socket, idle, cacheDir))
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	d.cmd = exec.Command(d.bin, "--config", d.in.conf, "--log-level", "debug", "serve", "--mount-dir", d.mnt)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", d.socket); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("shifterd did not start:\n%s", d.log)
		}
	}
}

func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
}

func (d *daemon) status() (mounts, refs int, cacheSource int64) {
	d.t.Helper()
	st, err := sdclient.Status(context.Background(), d.socket)
	if err != nil {
		d.t.Fatal(err)
	}
	for _, m := range st.Mounts {
		mounts++
		refs += len(m.Refs)
	}
	if st.Cache != nil {
		cacheSource = st.Cache.SourceBytes
	}
	return
}

// hostMounts counts the host's mounts of image id made by shifterd.
func hostMounts(t *testing.T, id string) int {
	n := 0
	for _, m := range testutil.Mounts(t) {
		if m.Source == shifterd.MountSource(id) {
			n++
		}
	}
	return n
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// startAsNobody starts the setuid shifter as nobody without waiting.
func (in *installation) startAsNobody(args ...string) (*exec.Cmd, *lockedBuffer) {
	cmd := exec.Command(in.shifter, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID, Groups: []uint32{nobodyGID}}}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	return cmd, out
}

// TestShifterdSharedMount: two containers of one image share shifterd's
// one mount, each reference goes with its container (a SIGKILLed one
// too), and an unused mount is unmounted after the idle time.
func TestShifterdSharedMount(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	d := startShifterd(t, in, "0", filepath.Join(h.dir, "cache"))
	a, aout := in.startAsNobody("-v", "--image=id:"+in.id, "sh", "-c", "cat /etc/image-marker; sleep 3")
	b, _ := in.startAsNobody("--image=id:"+in.id, "sleep", "60")
	waitUntil(t, "two references", func() bool { _, refs, _ := d.status(); return refs == 2 })
	if n := hostMounts(t, in.id); n != 1 {
		t.Fatalf("%d host mounts of the image for two containers, want 1", n)
	}
	// A container whose runtime is killed releases its reference.
	syscall.Kill(-b.Process.Pid, syscall.SIGKILL)
	b.Wait()
	waitUntil(t, "the killed container's reference released", func() bool { _, refs, _ := d.status(); return refs == 1 })
	if err := a.Wait(); err != nil {
		t.Fatalf("container a: %v\n%s", err, aout)
	}
	if !strings.Contains(aout.String(), "from-the-image\n") {
		t.Errorf("the container did not see the image's files:\n%s", aout)
	}
	if !strings.Contains(aout.String(), "shifterd's shared mount") {
		t.Errorf("-v does not say the shared mount was used:\n%s", aout)
	}
	waitUntil(t, "idle unmount", func() bool { m, _, _ := d.status(); return m == 0 && hostMounts(t, in.id) == 0 })
}

// TestShifterdPreforkedInit: the init that shifter forks before its Go
// runtime starts has a copy of the host's mount namespace from that
// moment: a start that makes shifterd mount the image re-executes its
// init (the copy lacks the mount), the next start, which finds the
// mount, uses the pre-forked one; both see the image.
func TestShifterdPreforkedInit(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	startShifterd(t, in, "1m", filepath.Join(h.dir, "cache"))
	for i, wantPrefork := range []bool{false, true} {
		r := in.run(in.shifter, nil, "-v", "--image=id:"+in.id, "cat", "/etc/image-marker")
		if r.code != 0 || r.stdout != "from-the-image\n" || !strings.Contains(r.stderr, "shifterd's shared mount") {
			t.Fatalf("start %d: exit %d\n%s%s", i+1, r.code, r.stdout, r.stderr)
		}
		if got := strings.Contains(r.stderr, "namespace init: pre-forked"); got != wantPrefork {
			t.Errorf("start %d: pre-forked init used = %v, want %v\n%s", i+1, got, wantPrefork, r.stderr)
		}
	}
}

// TestShifterdFallback: without shifterd (stopped, or a stale socket file)
// shifter mounts the image itself and says why under -v.
func TestShifterdFallback(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	d := startShifterd(t, in, "0", filepath.Join(h.dir, "cache"))
	d.stop()
	r := in.run(in.shifter, nil, "-v", "--image=id:"+in.id, "cat", "/etc/image-marker")
	if r.code != 0 || !strings.Contains(r.stderr, "not through shifterd") || !strings.Contains(r.stderr, "not running") {
		t.Fatalf("stopped shifterd: exit %d\n%s", r.code, r.stderr)
	}
	// A stale socket: the file is there, nobody listens.
	l, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	r = in.run(in.shifter, nil, "-v", "--image=id:"+in.id, "cat", "/etc/image-marker")
	if r.code != 0 || !strings.Contains(r.stderr, "not through shifterd") || !strings.Contains(r.stderr, "connection refused") {
		t.Fatalf("stale socket: exit %d\n%s", r.code, r.stderr)
	}
	// imageMount=shifterd makes it an error.
	in.config("shifterd", "shifterdSocket="+d.socket+"\n")
	r = in.run(in.shifter, nil, "--image=id:"+in.id, "true")
	if r.code == 0 || !strings.Contains(r.stderr, "imageMount=shifterd") {
		t.Fatalf("imageMount=shifterd without shifterd: exit %d\n%s", r.code, r.stderr)
	}
}

// TestShifterdWarmAndTrace: the first start on a node records a trace;
// a warm-up on a fresh cache then fetches what the trace lists, and a
// start after a full warm-up, with the page cache dropped, reads nothing
// from the image file.
func TestShifterdWarmAndTrace(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	// Published with a chunk list, as the gateway does.
	sq, _ := imagestore.Paths(in.store, in.id)
	cl, err := imagestore.ComputeChunkListFile(sq, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if err := imagestore.WriteChunkList(in.store, in.id, cl); err != nil {
		t.Fatal(err)
	}
	d := startShifterd(t, in, "0", filepath.Join(h.dir, "cache1"))
	if r := in.run(in.shifter, nil, "-v", "--image=id:"+in.id, "cat", "/etc/image-marker"); r.code != 0 || r.stdout != "from-the-image\n" || !strings.Contains(r.stderr, "shifterd's shared mount") {
		t.Fatalf("first start: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	meta, _ := imagestore.Load(in.store, in.id)
	var tr *imagestore.Trace
	waitUntil(t, "the start-up trace", func() bool { tr, err = imagestore.LoadTrace(in.store, meta); return err == nil })
	d.stop()

	// Another node (a fresh cache): warm from the trace only.
	d = startShifterd(t, in, "0", filepath.Join(h.dir, "cache2"))
	out, err := exec.Command(d.bin, "--config", in.conf, "warm", "--trace-only", "id:"+in.id).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("warmed %d chunks", len(tr.Chunks))) {
		t.Fatalf("trace warm-up of %d chunks: %v\n%s", len(tr.Chunks), err, out)
	}
	// Then everything; a start reads nothing from the image file.
	if out, err := exec.Command(d.bin, "--config", in.conf, "warm", "id:"+in.id).CombinedOutput(); err != nil {
		t.Fatalf("warm-up: %v\n%s", err, out)
	}
	_, _, before := d.status()
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
	r := in.run(in.shifter, nil, "--image=id:"+in.id, "sh", "-c", "cat /etc/image-marker; ls -R / >/dev/null 2>&1; true")
	if r.code != 0 || r.stdout != "from-the-image\n" {
		t.Fatalf("warm start: %d\n%s", r.code, r.stderr)
	}
	if _, _, after := d.status(); after != before {
		t.Fatalf("a start after a full warm-up read %d bytes from the image file", after-before)
	}
}

// TestShifterdManyStarts: 64 concurrent starts of one image make one
// mount, and nothing is left once shifterd stops.
func TestShifterdManyStarts(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	d := startShifterd(t, in, "1m", filepath.Join(h.dir, "cache"))
	var wg sync.WaitGroup
	codes := make([]int, 64)
	for i := range codes {
		wg.Go(func() {
			r := in.run(in.shifter, nil, "--image=id:"+in.id, "cat", "/etc/image-marker")
			codes[i] = r.code
			if r.code != 0 || r.stdout != "from-the-image\n" {
				t.Errorf("start %d: exit %d\n%s", i, r.code, r.stderr)
			}
		})
	}
	wg.Wait()
	if n := strings.Count(d.log.String(), "msg=mounted"); n != 1 {
		t.Errorf("64 starts made %d mounts, want 1\n%s", n, d.log)
	}
	// A reference ends when shifterd reads its connection's close, which
	// can come a moment after the container's exit.
	var m, refs int
	waitUntil(t, "the references to end", func() bool { m, refs, _ = d.status(); return refs == 0 })
	if m != 1 {
		t.Errorf("after the starts: %d mounts, want 1 (idle timeout 1m)", m)
	}
	d.stop()
	if n := hostMounts(t, in.id); n != 0 {
		t.Fatalf("%d mounts left after shifterd stopped", n)
	}
	ents, _ := os.ReadDir(d.mnt)
	if len(ents) != 0 {
		t.Fatalf("mount directories left: %v", ents)
	}
}

// TestShifterdPrivateImage: a private image (files 0600, root's) is
// mounted by shifterd for a user on its ACL; a user not on it gets
// nothing, from the runtime or from shifterd.
func TestShifterdPrivateImage(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	mine := publishPrivate(t, in, "mine", []uint32{nobodyUID})
	other := publishPrivate(t, in, "other", []uint32{nobodyUID + 1})
	d := startShifterd(t, in, "0", filepath.Join(h.dir, "cache"))
	r := in.run(in.shifter, nil, "-v", "--image=id:"+mine, "cat", "/etc/image-marker")
	if r.code != 0 || r.stdout != "from-the-image\n" || !strings.Contains(r.stderr, "shifterd's shared mount") {
		t.Fatalf("private image on the ACL: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := in.run(in.shifter, nil, "--image=id:"+other, "true"); r.code == 0 {
		t.Fatal("a user off the ACL ran a private image")
	}
	// Asked directly, shifterd refuses too.
	out, err := exec.Command("setpriv", fmt.Sprintf("--reuid=%d", nobodyUID), fmt.Sprintf("--regid=%d", nobodyGID), "--clear-groups",
		d.bin, "--config", in.conf, "warm", "id:"+other).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not found or access denied") {
		t.Fatalf("shifterd warm of another user's private image: %v\n%s", err, out)
	}
}
