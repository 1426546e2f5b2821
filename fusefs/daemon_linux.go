// SPDX-License-Identifier: BSD-3-Clause

package fusefs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The daemon protocol of a command that mounts in the background, as
// squashfuse and shifter-mount do: the command starts its server as a
// daemon in a new session, with the write end of a pipe, and waits on the
// read end for the daemon's report: one zero byte once the mount answers,
// or an error message. The daemon closes the pipe either way, so a daemon
// that dies leaves the command an EOF. shifter-mount's early fork (a C
// constructor that forks before the Go runtime starts) speaks the same
// protocol; StartDaemon is the way without it.

// Report is a daemon's end of the report pipe.
type Report struct{ f *os.File }

// NewReport returns the Report that writes to f.
func NewReport(f *os.File) *Report { return &Report{f: f} }

// Ready reports the mount ready and closes the pipe. An error means the
// command that started the daemon is gone: nobody knows of the mount.
func (r *Report) Ready() error {
	_, err := r.f.Write([]byte{0})
	r.f.Close()
	return err
}

// Fail reports err (its message) and closes the pipe.
func (r *Report) Fail(err error) {
	fmt.Fprint(r.f, err.Error())
	r.f.Close()
}

// ErrNoReport is returned by WaitReport when the daemon closed the pipe
// without a word: it ended before the mount was ready.
var ErrNoReport = errors.New("no report from the server")

// WaitReport reads a daemon's report from r (at most 64 KiB), after read,
// the part of it read already. It returns nil when the daemon reported
// its mount ready, ErrNoReport when it said nothing, else its message as
// an error.
func WaitReport(r io.Reader, read []byte) error {
	rest, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	msg := append(read, rest...)
	switch {
	case len(msg) == 0:
		return ErrNoReport
	case msg[0] == 0:
		return nil
	}
	return errors.New(string(msg))
}

// DaemonEnv names, in a daemon started by StartDaemon, the descriptor of
// its report pipe. (shifter-mount's early fork does not fork in a process
// that has it.)
const DaemonEnv = "_SHIFTER_MOUNT_READY_PIPE"

// StartDaemon re-executes this program with args as a daemon: in a new
// session (so that a SIGINT to the terminal's process group does not
// reach it), holding the report pipe and the descriptors keep (at their
// numbers) and no other inherited descriptor. Until it detaches, the
// daemon's stderr is stderr. It returns the read end of the report pipe,
// for WaitReport, and the started command.
func StartDaemon(args []string, keep []int, stderr io.Writer) (*os.File, *exec.Cmd, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("create pipe: %w", err)
	}
	defer w.Close()
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	// Descriptors leaked to us stay out of the daemon: mark every one
	// close-on-exec, then pass explicitly the pipe and the descriptors
	// asked for, at their numbers.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintf(stderr, "shifter-mount: warning: close_range: %v\n", err)
	}
	kept := map[int]bool{}
	for _, n := range keep {
		if n >= 3 {
			kept[n] = true
		}
	}
	pipeFD := 3
	for kept[pipeFD] {
		pipeFD++
	}
	last := pipeFD
	for n := range kept {
		last = max(last, n)
	}
	extra := make([]*os.File, last-2)
	extra[pipeFD-3] = w
	for n := range kept {
		extra[n-3] = os.NewFile(uintptr(n), "inherited-"+strconv.Itoa(n))
	}
	cmd := exec.Command(exe, args...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), DaemonEnv+"="+strconv.Itoa(pipeFD))
	cmd.ExtraFiles = extra
	cmd.Stderr = stderr // logs before the mount is ready
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		return nil, nil, fmt.Errorf("start server: %w", err)
	}
	return r, cmd, nil
}

// DaemonReport returns, in a daemon started by StartDaemon, the Report to
// the command that started it, and removes DaemonEnv from the
// environment; nil, nil in any other process.
func DaemonReport() (*Report, error) {
	v, ok := os.LookupEnv(DaemonEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(DaemonEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("bad %s=%q", DaemonEnv, v)
	}
	unix.CloseOnExec(fd)
	return NewReport(os.NewFile(uintptr(fd), "report-pipe")), nil
}

// DetachStdio points descriptors 0, 1 and 2 at /dev/null, so that a
// daemon holds no pipe or terminal of the process that started it.
func DetachStdio() error {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open /dev/null: %w", err)
	}
	defer null.Close()
	var errs []error
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(int(null.Fd()), fd, 0); err != nil {
			errs = append(errs, fmt.Errorf("redirect fd %d: %w", fd, err))
		}
	}
	return errors.Join(errs...)
}
