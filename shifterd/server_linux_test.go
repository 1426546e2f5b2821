// SPDX-License-Identifier: BSD-3-Clause

package shifterd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/shifterd/client"
	"github.com/shifter-go/shifter/shifterd/proto"
)

// The test binary doubles as a client run under other credentials:
// SHIFTERD_TEST_CHILD="mount|hold|status SOCKET ID [UID]".
func TestMain(m *testing.M) {
	if arg := os.Getenv("SHIFTERD_TEST_CHILD"); arg != "" {
		os.Exit(child(strings.Fields(arg)))
	}
	os.Exit(m.Run())
}

func child(a []string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var caller *client.Caller
	if len(a) > 3 {
		uid, _ := strconv.Atoi(a[3])
		caller = &client.Caller{UID: uint32(uid)}
	}
	switch a[0] {
	case "mount", "hold":
		ref, err := client.Mount(ctx, a[1], a[2], caller, 0)
		if err != nil {
			var e *client.Error
			if errors.As(err, &e) {
				fmt.Println("refused", e.Code, e.Msg)
				return 0
			}
			fmt.Println("error", err)
			return 1
		}
		fmt.Println("ok", ref.Source)
		if a[0] == "hold" {
			time.Sleep(time.Hour)
		}
	case "status":
		st, err := client.Status(ctx, a[1])
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		for _, m := range st.Mounts {
			fmt.Println("mount", m.ID, len(m.Refs))
		}
	}
	return 0
}

type testServer struct {
	socket string
	b      *fakeBackend
	m      *Manager
	pub    *imagestore.Metadata // public
	priv   *imagestore.Metadata // user 1000 only
	group  *imagestore.Metadata // group 4242 only
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	testutil.RequireRoot(t)
	dir, err := os.MkdirTemp("", "shifterd-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	images := filepath.Join(dir, "images")
	os.Mkdir(images, 0o755)
	ts := &testServer{socket: filepath.Join(dir, "shifterd.sock"), b: &fakeBackend{}}
	ts.pub, ts.priv, ts.group = testImage(1), testImage(2), testImage(3)
	ts.priv.UserACL = []uint32{1000}
	ts.group.GroupACL = []uint32{4242}
	for _, m := range []*imagestore.Metadata{ts.pub, ts.priv, ts.group} {
		m.Tags = []string{}
		if err := imagestore.WriteMetadata(images, m); err != nil {
			t.Fatal(err)
		}
	}
	ts.m, err = NewManager(filepath.Join(dir, "mnt"), time.Hour, ts.b, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: ts.socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(ts.socket, 0o666)
	srv := &Server{Manager: ts.m, Backend: ts.b, ImageDir: images, RequestTimeout: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		ts.m.Close()
		srv.Wait()
	})
	return ts
}

func (ts *testServer) refs(t *testing.T) int {
	_, _, n := ts.m.Stats()
	return n
}

var (
	selfOnce sync.Once
	selfPath string
	selfErr  error
)

// self is a copy of the test binary that every user may run (the go
// tool builds it in a directory only its owner can search).
func self(t *testing.T) string {
	t.Helper()
	selfOnce.Do(func() {
		var dir string
		dir, selfErr = os.MkdirTemp("", "shifterd-testbin-")
		if selfErr != nil {
			return
		}
		os.Chmod(dir, 0o755)
		var b []byte
		if b, selfErr = os.ReadFile(os.Args[0]); selfErr == nil {
			selfPath = filepath.Join(dir, "shifterd.test")
			selfErr = os.WriteFile(selfPath, b, 0o755)
		}
	})
	if selfErr != nil {
		t.Fatal(selfErr)
	}
	return selfPath
}

// runAs runs the test binary as a client under uid (with groups).
func runAs(t *testing.T, uid uint32, groups []uint32, args ...string) string {
	t.Helper()
	cmd := exec.Command(self(t))
	cmd.Env = []string{"SHIFTERD_TEST_CHILD=" + strings.Join(args, " ")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: groups}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as %d %v: %v\n%s", uid, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestServerMountAsRoot(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	ref, err := client.Mount(ctx, ts.socket, ts.pub.ID, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Source != "shifterd:"+ts.pub.ID {
		t.Errorf("source %q", ref.Source)
	}
	// The descriptor is the mount's root: the image is reached through it.
	fd, err := unix.Openat(int(ref.Root.Fd()), marker, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("open through the mount's descriptor: %v", err)
	}
	var buf [64]byte
	n, _ := unix.Read(fd, buf[:])
	unix.Close(fd)
	if string(buf[:n]) != ts.pub.ID {
		t.Fatalf("read %q through the descriptor", buf[:n])
	}
	if ts.refs(t) != 1 {
		t.Fatalf("%d refs", ts.refs(t))
	}
	// A duplicate of the connection keeps the reference.
	dup, err := ref.File()
	if err != nil {
		t.Fatal(err)
	}
	ref.Close()
	time.Sleep(50 * time.Millisecond)
	if ts.refs(t) != 1 {
		t.Fatalf("the reference went while a duplicate of its connection was open")
	}
	dup.Close()
	waitFor(t, "release", func() bool { return ts.refs(t) == 0 })
}

func TestServerACL(t *testing.T) {
	ts := startServer(t)
	for _, tc := range []struct {
		name   string
		uid    uint32
		groups []uint32
		args   []string
		want   string
	}{
		{"public, any user", 2000, nil, []string{"mount", ts.socket, ts.pub.ID}, "ok"},
		{"private, on the ACL", 1000, nil, []string{"mount", ts.socket, ts.priv.ID}, "ok"},
		{"private, not on the ACL", 2000, nil, []string{"mount", ts.socket, ts.priv.ID}, "refused denied"},
		{"group image, supplementary group", 2000, []uint32{4242}, []string{"mount", ts.socket, ts.group.ID}, "ok"},
		{"group image, no group", 2000, []uint32{7}, []string{"mount", ts.socket, ts.group.ID}, "refused denied"},
		{"missing image", 1000, nil, []string{"mount", ts.socket, testImage(9).ID}, "refused denied"},
		{"non-root on behalf of another", 2000, nil, []string{"mount", ts.socket, ts.priv.ID, "1000"}, "refused denied only root"},
		{"non-root naming itself", 2000, nil, []string{"mount", ts.socket, ts.pub.ID, "2000"}, "refused denied only root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runAs(t, tc.uid, tc.groups, tc.args...)
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	// The refusals name no detail that tells a private image from a missing one.
	a := runAs(t, 2000, nil, "mount", ts.socket, ts.priv.ID)
	b := runAs(t, 2000, nil, "mount", ts.socket, testImage(9).ID)
	if strings.ReplaceAll(a, ts.priv.ID, "X") != strings.ReplaceAll(b, testImage(9).ID, "X") {
		t.Errorf("private and missing images answered differently: %q vs %q", a, b)
	}
	// Root on behalf of users.
	ctx := context.Background()
	if _, err := client.Mount(ctx, ts.socket, ts.priv.ID, &client.Caller{UID: 2000, GIDs: []uint32{2000}}, 0); err == nil {
		t.Error("root on behalf of uid 2000 got a private image of uid 1000")
	}
	ref, err := client.Mount(ctx, ts.socket, ts.group.ID, &client.Caller{UID: 2000, GIDs: []uint32{2000, 4242}}, 0)
	if err != nil {
		t.Fatalf("root on behalf of a group member: %v", err)
	}
	ref.Close()
}

func TestServerHolderKilled(t *testing.T) {
	ts := startServer(t)
	cmd := exec.Command(self(t))
	cmd.Env = []string{"SHIFTERD_TEST_CHILD=hold " + ts.socket + " " + ts.pub.ID}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "ok") {
		t.Fatalf("holder said %q", line)
	}
	st := ts.m.Status(nil, nil)
	if len(st) != 1 || len(st[0].Refs) != 1 || st[0].Refs[0].PID != cmd.Process.Pid || st[0].Refs[0].UID != 1000 {
		t.Fatalf("status %+v, want one reference held by pid %d uid 1000", st, cmd.Process.Pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	waitFor(t, "release by a killed holder", func() bool { return ts.refs(t) == 0 })
}

// rawRequest sends b on a fresh connection and returns the answer line.
func rawRequest(t *testing.T, socket string, b []byte) string {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if len(b) > 0 {
		c.Write(b)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line
}

func TestServerBadRequests(t *testing.T) {
	ts := startServer(t)
	for _, tc := range []struct {
		name string
		req  []byte
	}{
		{"garbage", []byte("\x00\xff{{{\n")},
		{"unknown op", []byte(`{"op":"rm","id":"` + ts.pub.ID + "\"}\n")},
		{"path as id", []byte(`{"op":"mount","id":"../../../etc/shadow"}` + "\n")},
		{"unknown field", []byte(`{"op":"status","x":1}` + "\n")},
		{"two values", []byte(`{"op":"status"}{"op":"status"}` + "\n")},
		{"oversized", append([]byte(`{"op":"status","pad":"`), make([]byte, proto.MaxRequest+10)...)},
		{"cut short", []byte(`{"op":"status"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rawRequest(t, ts.socket, tc.req)
			if tc.name == "cut short" {
				// The client stops without a newline and keeps the
				// connection open: the request times out.
				if !strings.Contains(got, `"code":"invalid"`) {
					t.Fatalf("answer %q", got)
				}
				return
			}
			p, err := proto.ParseResponse([]byte(strings.TrimSuffix(got, "\n")))
			if err != nil || p.OK || p.Code != proto.CodeInvalid {
				t.Fatalf("answer %q (%v), want an invalid-request error", got, err)
			}
		})
	}
	// A client that connects and sends nothing is cut off.
	if got := rawRequest(t, ts.socket, nil); !strings.Contains(got, "timeout") {
		t.Errorf("silent client got %q", got)
	}
	// The server still serves.
	if _, err := client.Status(context.Background(), ts.socket); err != nil {
		t.Fatal(err)
	}
	if ts.b.mounts.Load() != 0 {
		t.Fatal("a bad request mounted something")
	}
}

func TestServerDataOnReferenceReleases(t *testing.T) {
	ts := startServer(t)
	c, err := net.Dial("unix", ts.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(`{"op":"mount","id":"` + ts.pub.ID + "\"}\n"))
	buf := make([]byte, 4096)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reference", func() bool { return ts.refs(t) == 1 })
	c.Write([]byte("more\n"))
	waitFor(t, "release after data on the reference", func() bool { return ts.refs(t) == 0 })
}

func TestServerStatusAndWarm(t *testing.T) {
	ts := startServer(t)
	ctx := context.Background()
	ref, err := client.Mount(ctx, ts.socket, ts.priv.ID, &client.Caller{UID: 1000, GIDs: []uint32{1000}}, 4321)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	st, err := client.Status(ctx, ts.socket)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Mounts) != 1 || st.Mounts[0].Refs[0].PID != 4321 || st.Cache == nil || st.Cache.Hits != 3 {
		t.Fatalf("root's status %+v", st)
	}
	// Another user does not see a private image's mount.
	if got := runAs(t, 2000, nil, "status", ts.socket); got != "" {
		t.Fatalf("uid 2000 sees %q", got)
	}
	if got := runAs(t, 1000, nil, "status", ts.socket); got != "mount "+ts.priv.ID+" 1" {
		t.Fatalf("uid 1000 sees %q", got)
	}
	var last proto.Progress
	if err := client.Warm(ctx, ts.socket, ts.pub.ID, false, nil, func(p proto.Progress) { last = p }); err != nil {
		t.Fatal(err)
	}
	if last.Done != 40 || last.Total != 40 {
		t.Fatalf("last progress %+v", last)
	}
	err = client.Warm(ctx, ts.socket, ts.priv.ID, true, &client.Caller{UID: 2000}, nil)
	var e *client.Error
	if !errors.As(err, &e) || e.Code != proto.CodeDenied {
		t.Fatalf("warm of a private image for another user: %v", err)
	}
}

func TestServerStaleSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nobody listens
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := client.Mount(ctx, sock, testImage(1).ID, nil, 0); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("stale socket: %v, want ECONNREFUSED", err)
	}
	if _, err := client.Mount(ctx, filepath.Join(dir, "none"), testImage(1).ID, nil, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing socket: %v", err)
	}
}
