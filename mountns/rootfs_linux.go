// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// The container root: resolving destinations inside it, binds and new
// mounts on them.

// rootfs is the container root being assembled at path (UDIMount's real
// path), an overlay of the image (lower) and a tmpfs (upper).
type rootfs struct {
	path   string
	dir    *os.File // O_PATH handle of the overlay root
	unpriv bool
	cred   Credential
	log    *initLogger
}

func fdPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }

// inRoot reports whether the real path p is root or below it (lexically).
func inRoot(root, p string) bool {
	return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/")
}

// containerPath turns the real path p (in root) into the path the
// container sees.
func (r *rootfs) containerPath(p string) string {
	return "/" + strings.TrimPrefix(strings.TrimPrefix(p, r.path), "/")
}

// openInRoot opens unsafePath (O_PATH) inside root: openat2 with
// RESOLVE_IN_ROOT and RESOLVE_NO_MAGICLINKS, so that every step, ".."
// and symlinks included, stays inside root; filepath-securejoin's
// emulation where openat2 is missing (Linux before 5.6, a seccomp filter)
// or keeps failing with EAGAIN (a rename or mount racing the lookup).
// (The library, called first, would mount a private procfs to name its
// handle: about a millisecond of every container start.)
func openInRoot(root *os.File, unsafePath string) (*os.File, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for try := 0; try < 8; try++ {
		fd, err := unix.Openat2(int(root.Fd()), unsafePath, how)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), unsafePath), nil
		case errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN):
			continue
		case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
			return pathrs.OpenatInRoot(root, unsafePath)
		default:
			return nil, &os.PathError{Op: "openat2", Path: unsafePath, Err: err}
		}
	}
	return pathrs.OpenatInRoot(root, unsafePath)
}

// errOffRoot: a mount point that is not a user volume's is missing and
// would have to be made on a mount other than the container's own file
// system.
var errOffRoot = errors.New("missing, and it would have to be made outside the container's own file system (through a symlink of the image?)")

// openDest resolves unsafePath inside the root, symlinks included, never
// leaving it, and creates it (directory, or empty file when !isDir) when
// missing (as the user for a user volume whose mount point would be made
// on another mount than the root's own file system; never as root there).
// It returns the O_PATH handle and the real path, which is
// checked to be inside the root and, for user volumes, against the user
// destination rules.
func (r *rootfs) openDest(unsafePath string, isDir, user bool) (*os.File, string, error) {
	f, err := openInRoot(r.dir, unsafePath)
	if errors.Is(err, fs.ErrNotExist) {
		create := func() (err error) {
			if isDir {
				f, err = pathrs.MkdirAllHandle(r.dir, unsafePath, 0o755)
			} else {
				f, err = r.createFile(unsafePath)
			}
			return err
		}
		var onRoot bool
		if onRoot, err = r.ancestorOnRoot(unsafePath); err == nil {
			switch {
			case onRoot:
				err = create()
			case user:
				// The mount point would be made on a host file system
				// (a volume, /tmp): only as the user may.
				err = asUser(r.cred, !r.unpriv, create)
			default:
				// Never as root on a host file system (an image's
				// symlink such as /var -> /dev leads there).
				err = errOffRoot
			}
		}
	}
	if errors.Is(err, errOffRoot) {
		return nil, "", fmt.Errorf("%w: destination %s: %w", ErrBadVolume, unsafePath, err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w: destination %s: %v", ErrBadVolume, unsafePath, err)
	}
	real, err := os.Readlink(fdPath(f))
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("%w: destination %s: %v", ErrMount, unsafePath, err)
	}
	if !inRoot(r.path, real) || real == r.path {
		f.Close()
		return nil, "", fmt.Errorf("%w: destination %s resolves to %s, outside the container", ErrBadVolume, unsafePath, real)
	}
	if user {
		if err := CheckUserDest(r.containerPath(real)); err != nil {
			f.Close()
			return nil, "", fmt.Errorf("%w: destination %s resolves to %s: %v", ErrBadVolume, unsafePath, r.containerPath(real), err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("%w: destination %s: %v", ErrMount, unsafePath, err)
	}
	if (st.Mode&unix.S_IFMT == unix.S_IFDIR) != isDir {
		f.Close()
		kind := "a directory"
		if !isDir {
			kind = "a file"
		}
		return nil, "", fmt.Errorf("%w: destination %s is not %s like its source", ErrBadVolume, unsafePath, kind)
	}
	return f, real, nil
}

// ancestorOnRoot reports whether the deepest existing ancestor of
// unsafePath (resolved in the root) is on the container's own file system,
// the overlay, rather than on a mount on top of it.
func (r *rootfs) ancestorOnRoot(unsafePath string) (bool, error) {
	var root unix.Stat_t
	if err := unix.Fstat(int(r.dir.Fd()), &root); err != nil {
		return false, fmt.Errorf("%w: %v", ErrMount, err)
	}
	comps := strings.Split(strings.Trim(path.Clean("/"+unsafePath), "/"), "/")
	for i := len(comps) - 1; i >= 0; i-- {
		f, err := openInRoot(r.dir, "/"+strings.Join(comps[:i], "/"))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return false, err
		}
		var st unix.Stat_t
		err = unix.Fstat(int(f.Fd()), &st)
		f.Close()
		if err != nil {
			return false, err
		}
		return st.Dev == root.Dev, nil
	}
	return true, nil
}

// createFile creates the empty file unsafePath in the root (its parents
// too) and opens it O_PATH.
func (r *rootfs) createFile(unsafePath string) (*os.File, error) {
	parent, err := pathrs.MkdirAllHandle(r.dir, path.Dir(unsafePath), 0o755)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), path.Base(unsafePath), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, err
	}
	if err == nil {
		unix.Close(fd)
	}
	return openInRoot(r.dir, unsafePath)
}

// mountNew mounts the new file system of o (opMount) on o.dest.
func (r *rootfs) mountNew(o op) error {
	dst, _, err := r.openDest(o.dest, true, false)
	if err != nil {
		return err
	}
	defer dst.Close()
	return mount(o.source, fdPath(dst), o.fstype, o.flags, o.data)
}

// bindSource is the opened source of a bind.
type bindSource struct {
	f     *os.File // O_PATH
	name  string   // for messages: the host path
	isDir bool
}

// openHostSource opens the host path p as the init (which is trusted for
// site paths).
func openHostSource(p string) (bindSource, error) {
	f, err := os.OpenFile(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return bindSource{}, fmt.Errorf("%w: opening %s: %v", ErrMount, p, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return bindSource{}, fmt.Errorf("%w: %s: %v", ErrMount, p, err)
	}
	return bindSource{f: f, name: p, isDir: st.IsDir()}, nil
}

// bind carries out b with the opened source src: it binds src on b.dest in
// the root (recursively when b.recursive), then adds b.attrs to every mount
// of the new tree and sets its propagation.
func (r *rootfs) bind(b bindReq, src bindSource) error {
	err := r.bindOnce(b, src)
	if b.optional && errors.Is(err, errOffRoot) {
		r.log.warn("not mounted: the mount point is missing and would have to be made outside the container's own file system", "path", b.dest, "source", src.name)
		return nil
	}
	if errors.Is(err, unix.EINVAL) && !b.recursive && b.recursiveInUserNS && r.unpriv {
		// In a user namespace the kernel refuses to bind a mount
		// without its (locked) submounts.
		b.recursive = true
		if err = r.bindOnce(b, src); err == nil && under(r.path, src.name) {
			// The copy of the container itself that came along.
			copyPath := path.Join(r.path, r.path)
			for unix.Unmount(copyPath, unix.MNT_DETACH) == nil {
			}
		}
	}
	return err
}

func (r *rootfs) bindOnce(b bindReq, src bindSource) error {
	dst, real, err := r.openDest(b.dest, src.isDir, b.user)
	if err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND)
	if b.recursive {
		flags |= unix.MS_REC
	}
	err = mount(fdPath(src.f), fdPath(dst), "", flags, "")
	dst.Close()
	if err != nil {
		return fmt.Errorf("binding %s on %s: %w", src.name, b.dest, err)
	}
	// Reopen: the path now crosses into the new mount.
	top, real2, err := r.openDest(b.dest, src.isDir, b.user)
	if err != nil {
		return err
	}
	defer top.Close()
	if real2 != real {
		return fmt.Errorf("%w: destination %s moved from %s to %s while mounting", ErrMount, b.dest, real, real2)
	}
	if err := setAttrsRecursive(int(top.Fd()), real, b.attrs); err != nil {
		return err
	}
	prop := uintptr(unix.MS_PRIVATE)
	if b.propagation == "slave" {
		prop = unix.MS_SLAVE
	}
	if err := mount("", fdPath(top), "", prop|unix.MS_REC, ""); err != nil {
		return err
	}
	r.log.debug("bound", "source", src.name, "path", r.containerPath(real), "ro", fmt.Sprint(b.attrs.rdonly))
	return nil
}
