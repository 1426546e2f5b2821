// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bytes"
	"encoding/json"
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

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/internal/testutil"
)

// openPty returns the master and slave ends of a new pseudo-terminal.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		testutil.Unavailable(t, "test needs /dev/ptmx: "+err.Error())
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// ptyOutput collects what the program writes to the terminal.
type ptyOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *ptyOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func (o *ptyOutput) read(m *os.File) {
	b := make([]byte, 4096)
	for {
		n, err := m.Read(b)
		o.mu.Lock()
		o.buf.Write(b[:n])
		o.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (o *ptyOutput) waitFor(t *testing.T, s string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if strings.Contains(o.String(), s) {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("terminal never showed %q; it shows %q", s, o.String())
}

// runOnPty starts the shifterimg binary with its standard streams on a
// new pseudo-terminal.
func runOnPty(t *testing.T, home string, args ...string) (*exec.Cmd, *os.File, *ptyOutput) {
	t.Helper()
	bin := testutil.Binary(t, "shifterimg")
	m, s := openPty(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	// Its own session with the pty as controlling terminal, so that ^C
	// typed on it sends SIGINT, as in a login shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) // harmless once it has exited
	s.Close()
	out := &ptyOutput{}
	go out.read(m)
	return cmd, m, out
}

// wait waits for cmd for at most 30 s, then kills it and fails.
func wait(t *testing.T, cmd *exec.Cmd, out *ptyOutput) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-errc
		t.Fatalf("shifterimg did not exit; terminal shows %q", out.String())
		return nil
	}
}

// TestLoginOnTerminal types a login on a real pseudo-terminal: the user
// name echoes, the password does not, and the terminal's echo is back on
// afterwards.
func TestLoginOnTerminal(t *testing.T) {
	const secret = "tty-Pa55word"
	home := t.TempDir()
	cmd, m, out := runOnPty(t, home, "login", "registry.example.org:5000")
	out.waitFor(t, "registry.example.org:5000 username: ")
	m.WriteString("alice\n")
	out.waitFor(t, "registry.example.org:5000 password: ")
	m.WriteString(secret + "\n")
	if err := wait(t, cmd, out); err != nil {
		t.Fatalf("login: %v; terminal: %q", err, out.String())
	}
	out.waitFor(t, "Stored credentials")
	got := out.String()
	if !strings.Contains(got, "alice") {
		t.Errorf("user name not echoed: %q", got)
	}
	if strings.Contains(got, secret) {
		t.Errorf("password echoed on the terminal: %q", got)
	}
	b, err := os.ReadFile(filepath.Join(home, ".shifter", "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	var store credStore
	if err := json.Unmarshal(b, &store); err != nil {
		t.Fatal(err)
	}
	if c := store.Registries["registry.example.org:5000"]; c.Username != "alice" || c.Password != secret {
		t.Errorf("stored login = %q/%d-char password, want alice and the typed password", c.Username, len(c.Password))
	}
	// Echo is restored: the slave's settings, seen through the master.
	tio, err := unix.IoctlGetTermios(int(m.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&unix.ECHO == 0 {
		t.Errorf("terminal echo left off after login")
	}
}

// TestLoginInterrupted: Ctrl-C at the password prompt ends login, stores
// nothing and leaves the terminal's echo on.
func TestLoginInterrupted(t *testing.T) {
	home := t.TempDir()
	cmd, m, out := runOnPty(t, home, "login", "--username", "bob", "registry.example.org")
	out.waitFor(t, "password: ")
	time.Sleep(100 * time.Millisecond) // let it turn echo off and block in read
	m.WriteString("par\x03")
	err := wait(t, cmd, out)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("login after Ctrl-C: %v, want exit status 130; terminal %q", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(home, ".shifter", "credentials.json")); err == nil {
		t.Errorf("interrupted login stored credentials")
	}
	tio, err := unix.IoctlGetTermios(int(m.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&unix.ECHO == 0 {
		t.Errorf("terminal echo left off after an interrupted login")
	}
}

// TestPullOnTerminal: on a terminal, pull draws a self-overwriting
// progress line with a bar and ends with the final state on its own line.
func TestPullOnTerminal(t *testing.T) {
	f := newFakeGateway()
	f.scripts["busybox:latest"] = []api.Image{img("PENDING", "", 0, 0), img("PULLING", "Pulling layer", 3<<20, 4<<20), img("READY", "", 0, 0)}
	u := f.start(t)
	cmd, _, out := runOnPty(t, t.TempDir(), "--gateway", u, "--system", "sys", "pull", "busybox:latest")
	if err := wait(t, cmd, out); err != nil {
		t.Fatalf("pull: %v; terminal: %q", err, out.String())
	}
	out.waitFor(t, "status: READY")
	got := out.String()
	for _, want := range []string{"\r\x1b[2Kdocker:busybox:latest  PENDING", "[###############.....] 3.0 MiB / 4.0 MiB", "\r\x1b[2K"} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal shows %q, want it to contain %q", got, want)
		}
	}
	if !strings.HasSuffix(strings.TrimRight(got, "\r\n"), "Pulling Image: docker:busybox:latest, status: READY, ") &&
		!strings.HasSuffix(strings.TrimRight(got, "\r\n"), "status: READY") {
		t.Errorf("terminal does not end with the final state: %q", got)
	}
}
