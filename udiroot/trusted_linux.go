// SPDX-License-Identifier: BSD-3-Clause

package udiroot

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUntrusted is wrapped by OpenTrusted's refusals.
var ErrUntrusted = errors.New("not trusted")

// OpenTrusted opens the regular file at the absolute path for reading,
// refusing it unless the file and every directory on the way to it,
// from /, are owned by root, not writable by group or others, and not
// symlinks. The walk uses openat with O_NOFOLLOW from one directory fd to
// the next, so the checked objects are the ones opened.
func OpenTrusted(name string) (*os.File, error) {
	if !path.IsAbs(name) || path.Clean(name) != name || name == "/" {
		return nil, fmt.Errorf("open %s: %w: not a clean absolute file path", name, ErrUntrusted)
	}
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	defer unix.Close(root)
	if err := checkTrusted(root, name, "/", true); err != nil {
		return nil, err
	}
	return openTrustedAt(root, "/", strings.TrimPrefix(name, "/"))
}

// openTrustedAt walks rel (a clean relative path) from the directory
// dirfd, named base in messages, checking every component.
func openTrustedAt(dirfd int, base, rel string) (*os.File, error) {
	parts := strings.Split(rel, "/")
	cur := dirfd
	name := base
	full := path.Join(base, rel)
	defer func() {
		if cur != dirfd {
			unix.Close(cur)
		}
	}()
	for i, p := range parts {
		if p == "" || p == "." || p == ".." {
			return nil, fmt.Errorf("open %s: %w: bad path component %q", full, ErrUntrusted, p)
		}
		name = path.Join(name, p)
		last := i == len(parts)-1
		flags := unix.O_NOFOLLOW | unix.O_CLOEXEC
		if last {
			flags |= unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY
		} else {
			flags |= unix.O_PATH | unix.O_DIRECTORY
		}
		fd, err := unix.Openat(cur, p, flags, 0)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) && !last {
			var st unix.Stat_t
			if unix.Fstatat(cur, p, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				return nil, fmt.Errorf("open %s: %s%w: it is a symlink", full, what(full, name), ErrUntrusted)
			}
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: full, Err: err}
		}
		if cur != dirfd {
			unix.Close(cur)
		}
		cur = fd
		if err := checkTrusted(cur, full, name, !last); err != nil {
			return nil, err
		}
	}
	if err := unix.SetNonblock(cur, false); err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(cur), name)
	cur = dirfd // ownership moved to f
	return f, nil
}

// what names the component of full that a message is about, when it is
// not full itself.
func what(full, component string) string {
	if component == full {
		return ""
	}
	return component + " "
}

// checkTrusted checks the object open at fd: component of the path full.
func checkTrusted(fd int, full, component string, dir bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: component, Err: err}
	}
	w := what(full, component)
	typ := st.Mode & unix.S_IFMT
	switch {
	case dir && typ != unix.S_IFDIR:
		return fmt.Errorf("open %s: %s%w: not a directory", full, w, ErrUntrusted)
	case !dir && typ != unix.S_IFREG:
		return fmt.Errorf("open %s: %s%w: not a regular file", full, w, ErrUntrusted)
	case st.Uid != 0:
		return fmt.Errorf("open %s: %s%w: owned by uid %d, not root", full, w, ErrUntrusted, st.Uid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("open %s: %s%w: writable by group or others (mode %#o)", full, w, ErrUntrusted, st.Mode&0o7777)
	}
	return nil
}
