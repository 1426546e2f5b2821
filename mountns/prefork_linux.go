// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// The pre-forked namespace init (Spec.Prefork): cmd/shifter's C
// constructor forks it before the Go runtime starts, in a new mount
// namespace, with real uid and gid 0, no environment and argv[0]
// preinitArg0 followed by the number of its end of a socket pair. Its
// runtime starts while the launcher's does; it then waits on the socket
// for one message from Run carrying the init's descriptors (stdin,
// stdout, stderr, then fdConfig, fdStatus, fdLifeline and the image's),
// puts them in place and goes on as an init started by Run would. A
// closed socket (no container after all, or unprivileged mode) ends it.

// preinitArg0 is the pre-forked init's argv[0], before its socket's number.
const preinitArg0 = "shifter-mountns-preinit:"

// preforkMaxFiles bounds the descriptors one hand-over carries.
const preforkMaxFiles = 16

// preinitMain is the pre-forked init's entry: arg is its socket's number.
func preinitMain(arg string) int {
	// Real uid 0 means the constructor's child; a user exec'ing the
	// setuid binary with this argv[0] keeps theirs.
	if unix.Getuid() != 0 || unix.Geteuid() != 0 || unix.Getgid() != 0 {
		fmt.Fprintln(os.Stderr, "shifter: internal entry point, not for direct use")
		return 126
	}
	sock, err := strconv.Atoi(arg)
	if err != nil || sock < 0 {
		fmt.Fprintln(os.Stderr, "shifter: internal entry point, not for direct use")
		return 126
	}
	// Caught now, while there is nothing else to do; signals that come
	// before the hand-over (a ^C meant for the launcher) are dropped.
	sigs := catchForwarded()
	fds, err := receiveFiles(sock)
	unix.Close(sock)
	if err != nil || len(fds) == 0 {
		return 0 // not needed: Run closed the socket (or is gone)
	}
	if err := placeFiles(fds); err != nil {
		fmt.Fprintf(os.Stderr, "shifter: namespace init: %v\n", err)
		return 125
	}
	for len(sigs) > 0 {
		<-sigs
	}
	return initMain(sigs)
}

// receiveFiles reads the one hand-over message from the socket sock: nil
// at end of file.
func receiveFiles(sock int) ([]int, error) {
	buf := make([]byte, 8)
	oob := make([]byte, unix.CmsgSpace(preforkMaxFiles*4))
	for {
		n, oobn, flags, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 && oobn == 0 {
			return nil, nil
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		var fds []int
		for i := range msgs {
			f, err := unix.ParseUnixRights(&msgs[i])
			if err != nil {
				return nil, err
			}
			fds = append(fds, f...)
		}
		if flags&unix.MSG_CTRUNC != 0 || string(buf[:n]) != "init" {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, fmt.Errorf("bad hand-over message")
		}
		return fds, nil
	}
}

// placeFiles makes fds[0..2] the standard descriptors and takes the
// others where they arrived, in the order of Run's ExtraFiles (fdConfig,
// fdStatus, fdLifeline, then the image's or the shared mount's two).
// Moving them to fixed numbers raced with the runtime's own threads: a
// descriptor they opened at a number being freed and filled was closed
// under them, or theirs under us (EBUSY from dup3, EBADF from a loop
// device given the image, 1 start in 1,000 under load). The standard
// numbers are open when they are replaced, so nothing races for them.
func placeFiles(fds []int) error {
	if len(fds) < 6 {
		return fmt.Errorf("%d descriptors handed over, want at least 6", len(fds))
	}
	for i := range 3 {
		if err := unix.Dup3(fds[i], i, 0); err != nil {
			return fmt.Errorf("placing descriptor %d: %w", i, err)
		}
		unix.Close(fds[i])
	}
	fdConfig, fdStatus, fdLifeline = fds[3], fds[4], fds[5]
	if len(fds) > 6 {
		fdImage, fdSharedRoot = fds[6], fds[6]
	}
	if len(fds) > 7 {
		fdSharedHold = fds[7]
	}
	return nil
}

// hand gives the pre-forked init its descriptors (files[i] becomes its
// descriptor i) and returns its process.
func (p *Prefork) hand(files []*os.File) (*os.Process, error) {
	defer p.Sock.Close()
	if len(files) > preforkMaxFiles {
		return nil, fmt.Errorf("%d descriptors for the init, at most %d", len(files), preforkMaxFiles)
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	if err := unix.Sendmsg(int(p.Sock.Fd()), []byte("init"), unix.UnixRights(fds...), nil, 0); err != nil {
		return nil, fmt.Errorf("handing the descriptors over: %w", err)
	}
	return os.FindProcess(p.PID)
}

// discard ends an unused pre-forked init: it sees the socket close and
// exits; it is reaped in the background.
func (p *Prefork) discard() {
	p.Sock.Close()
	go func() {
		if proc, err := os.FindProcess(p.PID); err == nil {
			_, _ = proc.Wait()
		}
	}()
}

// sharedIn reports whether the mount namespace of process pid has the
// shared mount sh at its path: /proc/PID/root walks that namespace's
// tree. (The init checks it again before it binds.)
func sharedIn(pid int, sh *Shared) bool {
	var want, got unix.Stat_t
	if unix.Fstat(int(sh.Root.Fd()), &want) != nil {
		return false
	}
	if unix.Stat(fmt.Sprintf("/proc/%d/root%s", pid, sh.Path), &got) != nil {
		return false
	}
	return got.Dev == want.Dev && got.Ino == want.Ino
}
