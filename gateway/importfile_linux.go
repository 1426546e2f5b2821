// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// openAsUser opens the regular file at the absolute path p for reading
// with the rights of the user (uid, gid, groups), never the gateway's:
//
//   - a gateway running as root opens the file in a thread of its own
//     whose file-system identity is the user's (setgroups, setfsgid,
//     setfsuid are per thread; the kernel drops CAP_DAC_OVERRIDE and
//     CAP_DAC_READ_SEARCH with a non-zero fsuid). The kernel then checks
//     every directory searched, every symbolic link followed and the
//     file's own permissions (ACLs and LSMs included) as for the user.
//     That thread is never reused: it ends with its goroutine, locked.
//   - a gateway running as another account cannot take the user's
//     identity: it opens the file with its own rights and accepts only a
//     file the user owns (what the user owns, the user can read).
//
// Either way the path is first opened O_PATH (which reads nothing and has
// no side effects on devices or FIFOs) and refused unless it is a
// regular file; magic links (/proc/self/fd/...) are refused; the file is
// then opened for reading through that O_PATH descriptor, which checks
// read permission, and must still be the same file.
func openAsUser(p string, uid, gid uint32, groups []uint32) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	if os.Geteuid() != 0 {
		return openOwned(p, uid)
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, whose credentials are changed
		// below, ends with this goroutine and serves no other.
		runtime.LockOSThread()
		f, err := func() (*os.File, error) {
			gs := make([]int, 0, len(groups))
			for _, g := range groups {
				gs = append(gs, int(g))
			}
			if err := unix.Setgroups(gs); err != nil {
				return nil, fmt.Errorf("take the requester's groups: %w", err)
			}
			if _, err := unix.SetfsgidRetGid(int(gid)); err != nil {
				return nil, fmt.Errorf("take the requester's gid: %w", err)
			}
			if _, err := unix.SetfsuidRetUid(int(uid)); err != nil {
				return nil, fmt.Errorf("take the requester's uid: %w", err)
			}
			// setfsuid reports no failure: check (-1 changes nothing and
			// returns the current value).
			if cur, _ := unix.SetfsuidRetUid(-1); cur != int(uid) {
				return nil, fmt.Errorf("take the requester's uid %d: fsuid is %d", uid, cur)
			}
			if cur, _ := unix.SetfsgidRetGid(-1); cur != int(gid) {
				return nil, fmt.Errorf("take the requester's gid %d: fsgid is %d", gid, cur)
			}
			return openRegular(p)
		}()
		ch <- result{f, err}
	}()
	r := <-ch
	return r.f, r.err
}

// openOwned opens the regular file at p with the gateway's own rights
// and accepts it only if uid owns it (what the user owns, the user can
// read): the import of a gateway that cannot take the user's identity.
func openOwned(p string, uid uint32) (*os.File, error) {
	f, err := openRegular(p)
	if err != nil {
		return nil, err
	}
	st, err := fstat(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Uid != uid {
		f.Close()
		return nil, fmt.Errorf("%w: %s is owned by uid %d, not by the requester (uid %d); a gateway that does not run as root imports only the requester's own files",
			os.ErrPermission, p, st.Uid, uid)
	}
	return f, nil
}

// errNotRegular: the import path is not a regular file.
var errNotRegular = errors.New("not a regular file")

// openRegular opens the regular file at p for reading with the calling
// thread's file-system identity (see openAsUser).
func openRegular(p string) (*os.File, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_MAGICLINKS}
	pfd, err := unix.Openat2(unix.AT_FDCWD, p, how)
	if errors.Is(err, unix.ENOSYS) {
		pfd, err = unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: %w (%s)", p, errNotRegular, fileKind(st.Mode))
	}
	// Opening the O_PATH descriptor's magic link checks read permission
	// on the inode with the calling thread's identity.
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	var st2 unix.Stat_t
	if err := unix.Fstat(fd, &st2); err != nil || st2.Dev != st.Dev || st2.Ino != st.Ino || st2.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: the file changed while being opened", p)
	}
	return os.NewFile(uintptr(fd), p), nil
}

// fileStat is what the import checks of an open file.
type fileStat struct {
	Uid  uint32
	Size int64
}

func fstat(f *os.File) (fileStat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileStat{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return fileStat{Uid: st.Uid, Size: st.Size}, nil
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFLNK:
		return "a symbolic link"
	}
	return "not a regular file"
}
