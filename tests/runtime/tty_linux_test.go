// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestTerminalInterruptOnce: a ^C on the terminal reaches the command
// once. The caller of Run and the init, in the same foreground process
// group, get it too, and must not pass it on: a SIGINT sent to the caller
// alone is not forwarded while it is in the foreground (the ^C count alone
// could not show a double delivery, since the kernel merges a second
// SIGINT that arrives while the first is pending).
func TestTerminalInterruptOnce(t *testing.T) {
	forModes(t, func(t *testing.T, h *harness, mode string) {
		if !h.img.sigcount {
			t.Skip("no C compiler for the signal counting program")
		}
		for _, tc := range []struct {
			name string
			send func(master *os.File, p *os.Process)
			want string
		}{
			{"ctrl-c", func(m *os.File, _ *os.Process) { m.Write([]byte{3}) }, "count=1\r\n"},
			{"kill-caller", func(_ *os.File, p *os.Process) { p.Signal(unix.SIGINT) }, "count=0\r\n"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := ttyRun(t, h, mode, tc.send); !strings.Contains(got, tc.want) {
					t.Errorf("command output %q, want %q", got, tc.want)
				}
			})
		}
	})
}

// ttyRun runs /bin/sigcount through the setuid driver as the session
// leader on a new terminal, calls send once the command is ready, and
// returns the terminal output.
func ttyRun(t *testing.T, h *harness, mode string, send func(master *os.File, p *os.Process)) string {
	{
		master, slave := openPTY(t)
		spec := writeSpec(t, h, h.spec(mode, "/bin/sigcount"))
		cmd := exec.Command(h.suid)
		cmd.Env = []string{driverEnv + "=" + spec}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Setsid: true, Setctty: true, Ctty: 0,
			Credential: &syscall.Credential{Uid: testUID, Gid: testGID},
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Only the child holds the terminal now: once it and its
		// descendants are gone, reads on the master end with EIO, so the
		// reader below sees everything the command wrote.
		slave.Close()
		out := &lockedBuffer{}
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			b := make([]byte, 4096)
			for {
				n, err := master.Read(b)
				out.Write(b[:n])
				if err != nil {
					return
				}
			}
		}()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), "ready") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		send(master, cmd.Process)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("no exit; output %q", out.String())
		}
		select {
		case <-readDone:
		case <-time.After(20 * time.Second):
			t.Errorf("terminal still open 20 s after the command exited")
		}
		return out.String()
	}
}
