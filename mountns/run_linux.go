// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"bufio"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// forwardedSignals are relayed from Run's process to the namespace init,
// and from there to the command. Job-control stops (SIGTSTP, SIGTTIN,
// SIGTTOU) are not caught: they stop the whole process group as usual.
var forwardedSignals = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1,
	unix.SIGUSR2, unix.SIGALRM, unix.SIGCONT, unix.SIGWINCH,
}

// unprivInitCaps are the capabilities (in its own user namespace) that
// the init needs in unprivileged mode.
var unprivInitCaps = []uintptr{
	unix.CAP_SYS_ADMIN, unix.CAP_SETUID, unix.CAP_SETGID, unix.CAP_SETPCAP, unix.CAP_SYS_CHROOT,
	unix.CAP_DAC_OVERRIDE, unix.CAP_DAC_READ_SEARCH, unix.CAP_FOWNER, unix.CAP_CHOWN, unix.CAP_KILL,
}

// initEnv is the whole environment of the namespace init and of the site
// hooks: nothing of the caller's reaches a privileged step.
var initEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}

// WarmSignals pays, off the start-up path, what the first signal.Notify
// of a process costs (the runtime's signal-handling thread and goroutine:
// about a millisecond on our VMs), so that Run's own Notify is cheap. A
// front end calls it first thing, in a goroutine. It catches only a
// real-time signal nobody sends; the signals Run forwards keep their
// default action until Run catches them.
func WarmSignals() {
	signal.Notify(make(chan os.Signal, 1), unix.Signal(64)) // SIGRTMAX
}

// Run builds the container described by spec and runs spec.Argv in it. It
// returns the command's exit status (128+N when it died of signal N, 127
// when it could not be executed) and a nil error; or an error wrapping one
// of ErrSpec, ErrBadVolume, ErrAccess, ErrMount, ErrHook, ErrUserNS,
// ErrFUSE, ErrSetup when the container could not be built, in which case
// the command did not run and exitCode is -1.
//
// The calling process must be root (or setuid root) unless
// spec.Unprivileged is set. Signals listed in forwardedSignals that reach
// the calling process while Run runs are forwarded to the command; Run
// installs its own handlers for them meanwhile. When ctx is done, the
// command gets SIGTERM, then SIGKILL 5 seconds later.
func Run(ctx context.Context, spec *Spec) (exitCode int, err error) {
	log := spec.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := spec.validate(); err != nil {
		return -1, err
	}
	if spec.Image != nil && spec.Image.Fd() <= 2 {
		// The process started with stdin, stdout or stderr closed and the
		// image took its number: the command would get the image as that
		// stream. (A setuid Go program gets /dev/null there from the
		// runtime; front ends should also open it before anything else.)
		return -1, fmt.Errorf("%w: the image was opened as fd %d: start with fds 0, 1 and 2 open", ErrSpec, spec.Image.Fd())
	}
	cfg, err := prepare(spec, log)
	if err != nil {
		return -1, err
	}
	if cfg.tempUDIMount {
		defer os.Remove(cfg.UDIMount)
	}

	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return -1, fmt.Errorf("%w: creating pipe: %v", ErrSetup, err)
	}
	defer cfgR.Close()
	defer cfgW.Close()
	stR, stW, err := os.Pipe()
	if err != nil {
		return -1, fmt.Errorf("%w: creating pipe: %v", ErrSetup, err)
	}
	defer stR.Close()
	defer stW.Close()

	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	cmd.Args = []string{initArg0}
	cmd.Env = initEnv
	cmd.Stdin, cmd.Stdout, cmd.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	if cmd.Stdin == nil {
		cmd.Stdin = os.Stdin
	}
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		return -1, fmt.Errorf("%w: creating pipe: %v", ErrSetup, err)
	}
	defer lifeR.Close()
	// Held open until Run returns, and by nothing else (close-on-exec):
	// its end tells the init that this process is gone.
	defer lifeW.Close()
	// Pdeathsig follows the thread that forks: keep it alive until the init
	// (and the FUSE helper) are gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	early := startEarlyFUSE(cfg, spec.Image, log)
	if early != nil {
		cfg.EarlyHelperPID = early.cmd.Process.Pid
		defer early.stop()
		defer early.mnt.Close()
	}
	cmd.ExtraFiles = []*os.File{cfgR, stW, lifeR}
	switch {
	case spec.Shared != nil:
		cmd.ExtraFiles = append(cmd.ExtraFiles, spec.Shared.Root, spec.Shared.Hold)
	case early != nil:
		cmd.ExtraFiles = append(cmd.ExtraFiles, early.mnt)
	case spec.Image != nil:
		cmd.ExtraFiles = append(cmd.ExtraFiles, spec.Image)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(unix.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	// When this process dies (even of SIGKILL) the init sees the lifeline
	// end and takes the container down: the command, what it left in the
	// background, the FUSE helper. SIGCONT as parent-death signal wakes
	// it for that if a job-control stop holds it.
	sys := &syscall.SysProcAttr{Pdeathsig: unix.SIGCONT}
	if spec.Unprivileged {
		uid, gid := os.Getuid(), os.Getgid()
		sys.Cloneflags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS
		sys.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		sys.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		sys.GidMappingsEnableSetgroups = false
		// The init keeps the caller's uid inside (uid -> uid), so exec
		// would drop the capabilities the new namespace gives it: carry
		// the ones it needs as ambient capabilities. The init clears the
		// ambient set again before it starts anything.
		sys.AmbientCaps = unprivInitCaps
	} else {
		// Full root for the init: real uid 0 is also what tells the init
		// that it was started by Run and not by a user through the setuid
		// bit.
		sys.Cloneflags = unix.CLONE_NEWNS
		sys.Credential = &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}}
	}
	cmd.SysProcAttr = sys

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)

	// The init: the pre-forked one when there is one and it can serve,
	// else a re-executed one.
	var proc *os.Process
	var wait func() (*os.ProcessState, error)
	if pf := spec.Prefork; pf != nil {
		spec.Prefork = nil
		// For shifterd's shared mount only when the pre-forked init's
		// mount namespace (a copy of the host's from the moment shifter
		// started) has it: not when this start made shifterd mount it.
		files, ok := preforkFiles(cmd)
		if ok && !spec.Unprivileged && (spec.Shared == nil || sharedIn(pf.PID, spec.Shared)) {
			p, err := pf.hand(files)
			if err == nil {
				proc = p
				wait = waitCancelled(ctx, p)
				log.Debug("namespace init: pre-forked", "pid", p.Pid)
			} else {
				log.Debug("namespace init: pre-forked one unusable, re-executing", "err", err)
				pf.discard()
			}
		} else {
			pf.discard()
		}
	}
	if proc != nil {
		// started
	} else if err := cmd.Start(); err != nil {
		if spec.Unprivileged && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EACCES)) {
			return -1, fmt.Errorf("%w: creating a user namespace: %v (see /proc/sys/user/max_user_namespaces and kernel.unprivileged_userns_clone)", ErrUserNS, err)
		}
		return -1, fmt.Errorf("%w: starting namespace init: %v", ErrSetup, err)
	} else {
		proc = cmd.Process
		wait = func() (*os.ProcessState, error) { err := cmd.Wait(); return cmd.ProcessState, err }
	}
	cfgR.Close()
	stW.Close()
	lifeR.Close()
	if early != nil {
		early.mnt.Close()
	}

	// The init reads the whole config before it writes anything; a failed
	// write means it died, which Wait reports.
	go func() {
		_ = gob.NewEncoder(cfgW).Encode(cfg)
		cfgW.Close()
	}()

	done := make(chan struct{})
	var remote error
	var exit *int
	go func() {
		defer close(done)
		exit, remote = readStatus(stR, log)
	}()

	waitErr := make(chan error, 1)
	var state *os.ProcessState
	go func() {
		var err error
		state, err = wait()
		waitErr <- err
	}()
	var werr error
loop:
	for {
		select {
		case s := <-sigs:
			if shouldForward(s) {
				_ = proc.Signal(s)
			}
		case werr = <-waitErr:
			break loop
		}
	}
	<-done
	if early != nil && (exit == nil && remote == nil || errors.Is(remote, ErrMount) || errors.Is(remote, ErrFUSE) || errors.Is(remote, ErrSetup)) {
		// The init failed on the mount, or died: because the helper did?
		// (A container that fails for another reason takes the mount down
		// before the helper served it; its error stands.)
		if msg := early.failure(time.Second); msg != "" {
			return -1, fmt.Errorf("%w: %s %s: %s", ErrFUSE, cfg.MountHelper, strconv.Quote(cfg.ImagePath), msg)
		}
	}
	switch {
	case remote != nil:
		return -1, remote
	case exit != nil:
		return *exit, nil
	}
	// The init died without a word.
	if state == nil {
		return -1, fmt.Errorf("%w: namespace init: %v", ErrSetup, werr)
	}
	if st, ok := state.Sys().(syscall.WaitStatus); ok && st.Signaled() {
		return 128 + int(st.Signal()), fmt.Errorf("%w: namespace init killed by %v", ErrSetup, st.Signal())
	}
	if werr != nil {
		return -1, fmt.Errorf("%w: namespace init: %v", ErrSetup, werr)
	}
	return -1, fmt.Errorf("%w: namespace init exited %d without a status", ErrSetup, state.ExitCode())
}

// preforkFiles returns the descriptors a pre-forked init needs, in their
// order (stdin, stdout, stderr, then cmd's ExtraFiles), or false when a
// stream is not a file (exec.Cmd would copy it through a pipe).
func preforkFiles(cmd *exec.Cmd) ([]*os.File, bool) {
	var files []*os.File
	for _, s := range []any{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		f, ok := s.(*os.File)
		if !ok {
			return nil, false
		}
		files = append(files, f)
	}
	return append(files, cmd.ExtraFiles...), true
}

// waitCancelled waits for p, a pre-forked init, as exec.CommandContext
// with Cancel and WaitDelay would: SIGTERM when ctx ends, SIGKILL five
// seconds later.
func waitCancelled(ctx context.Context, p *os.Process) func() (*os.ProcessState, error) {
	return func() (*os.ProcessState, error) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
				return
			case <-ctx.Done():
			}
			_ = p.Signal(unix.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = p.Kill()
			}
		}()
		return p.Wait()
	}
}

// readStatus reads the init's status lines until EOF: log records go to
// log, and the last error or exit status is returned.
func readStatus(r io.Reader, log *slog.Logger) (exit *int, remote error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var m statusMsg
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch {
		case m.Log != nil:
			args := make([]any, 0, 2*len(m.Log.Attrs))
			for k, v := range m.Log.Attrs {
				args = append(args, k, v)
			}
			log.Log(context.Background(), slog.Level(m.Log.Level), m.Log.Msg, args...)
		case m.Err != nil:
			kind, ok := errorKinds[m.Err.Kind]
			if !ok {
				kind = ErrSetup
			}
			remote = &remoteError{kind: kind, msg: m.Err.Msg}
		case m.Exit != nil:
			exit = m.Exit
		}
	}
	return exit, remote
}
