// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// source is an opened volume source.
type source struct {
	f     *os.File // O_PATH
	isDir bool
}

// openSourcesAsUser opens the sources of the user volumes with the user's
// credentials (asUser). A source the user cannot read is refused with
// ErrAccess.
func openSourcesAsUser(paths []string, cred Credential, setGroups bool) ([]source, error) {
	var srcs []source
	err := asUser(cred, setGroups, func() error {
		for _, p := range paths {
			s, err := openSourceAsUser(p, cred.UID)
			if err != nil {
				closeSources(srcs)
				srcs = nil
				return err
			}
			srcs = append(srcs, s)
		}
		return nil
	})
	return srcs, err
}

// asUser runs fn on an OS thread of its own that has the user's
// supplementary groups (when setGroups: privileged mode), fsgid and fsuid,
// and no effective capabilities, so that the kernel checks file access as
// for the user (no DAC override). The thread is never returned to the Go
// scheduler: it exits with its goroutine. fn must not start goroutines
// that do file system work.
func asUser(cred Credential, setGroups bool, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		ch <- asUserOnThread(cred, setGroups, fn)
	}()
	return <-ch
}

func asUserOnThread(cred Credential, setGroups bool, fn func() error) error {
	if setGroups {
		groups := append([]uint32{cred.GID}, cred.Groups...)
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(unsafe.Pointer(&groups[0])), 0); e != 0 {
			return fmt.Errorf("%w: taking the user's groups: %v", ErrSetup, e)
		}
	}
	if err := unix.Setfsgid(int(cred.GID)); err != nil {
		return fmt.Errorf("%w: setfsgid: %v", ErrSetup, err)
	}
	if err := unix.Setfsuid(int(cred.UID)); err != nil {
		return fmt.Errorf("%w: setfsuid: %v", ErrSetup, err)
	}
	if err := dropEffectiveCaps(); err != nil {
		return fmt.Errorf("%w: dropping effective capabilities: %v", ErrSetup, err)
	}
	return fn()
}

// openSourceAsUser opens p with O_PATH (symlinks followed, as the user),
// accepts only directories and regular files, and proves the user can read
// it by reopening it for reading.
func openSourceAsUser(p string, uid uint32) (source, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return source{}, fmt.Errorf("%w: volume source %s: not accessible to uid %d: %v", ErrAccess, p, uid, err)
		}
		return source{}, fmt.Errorf("%w: volume source %s: %v", ErrBadVolume, p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return source{}, fmt.Errorf("%w: volume source %s: %v", ErrBadVolume, p, err)
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if !isDir && st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return source{}, fmt.Errorf("%w: volume source %s: not a directory or regular file", ErrBadVolume, p)
	}
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	if isDir {
		flags |= unix.O_DIRECTORY
	}
	rfd, err := unix.Open(fmt.Sprintf("/proc/thread-self/fd/%d", fd), flags, 0)
	if err != nil {
		f.Close()
		return source{}, fmt.Errorf("%w: volume source %s: not readable by uid %d: %v", ErrAccess, p, uid, err)
	}
	unix.Close(rfd)
	return source{f: f, isDir: isDir}, nil
}

// dropEffectiveCaps clears the calling thread's effective capabilities,
// keeping the permitted ones.
func dropEffectiveCaps() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[0].Effective, data[1].Effective = 0, 0
	return unix.Capset(&hdr, &data[0])
}
