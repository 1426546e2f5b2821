// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// rootfs is the container root being assembled at path (UDIMount's real
// path), an overlay of the image (lower) and a tmpfs (upper).
type rootfs struct {
	path   string
	dir    *os.File // O_PATH handle of the overlay root
	unpriv bool
	cred   Credential
	log    *initLogger
}

// stage mounts the staging tmpfs on udi, the image on udi/lower, and the
// overlay on udi, and returns the root. fuse is the FUSE helper, if any.
func stage(cfg *initConfig, image *os.File, log *initLogger, mps []mountPoint) (r *rootfs, fuse *exec.Cmd, err error) {
	udi := cfg.UDIMount
	if !cfg.Unprivileged {
		if err := os.MkdirAll(udi, 0o755); err != nil {
			return nil, nil, fmt.Errorf("%w: creating udiMount: %v", ErrMount, err)
		}
	}
	if err := mount("shifter", udi, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return nil, nil, err
	}
	if err := mount("", udi, "", unix.MS_PRIVATE, ""); err != nil {
		return nil, nil, err
	}
	log.step("staging tmpfs mounted")
	for _, d := range []string{"lower", "upper", "work"} {
		if err := os.Mkdir(path.Join(udi, d), 0o755); err != nil {
			return nil, nil, fmt.Errorf("%w: creating staging directory: %v", ErrMount, err)
		}
	}
	lower := path.Join(udi, "lower")
	switch {
	case cfg.LocalRoot != "":
		if err := bindReadOnly(cfg.LocalRoot, lower); err != nil {
			return nil, nil, err
		}
	case cfg.Mode == MountLoop:
		dev, err := mountLoop(image, cfg.ImagePath, lower)
		var unusable *loopUnusableError
		switch {
		case err == nil:
			log.debug("image mounted", "mode", "loop", "device", dev, "mountpoint", lower)
		case !cfg.FallbackFUSE || !errors.As(err, &unusable):
			return nil, nil, err
		case cfg.NoFUSE != "":
			return nil, nil, fmt.Errorf("%w: cannot mount the image: loop mode failed (%s) and fuse mode is impossible (%s)", ErrFUSE,
				strings.TrimPrefix(err.Error(), ErrMount.Error()+": "), strings.TrimPrefix(cfg.NoFUSE, ErrFUSE.Error()+": "))
		default:
			log.info("image mount mode", "mode", string(MountFUSE), "reason", "auto: loop mount failed: "+err.Error())
			if fuse, err = startFUSE(cfg, log, image, lower); err != nil {
				return nil, nil, fmt.Errorf("%w (falling back after the loop mount failed: %v)", err, unusable)
			}
			log.debug("image mounted", "mode", "fuse", "pid", fmt.Sprint(fuse.Process.Pid), "mountpoint", lower)
		}
	case cfg.Mode == MountFUSE:
		if fuse, err = startFUSE(cfg, log, image, lower); err != nil {
			return nil, nil, err
		}
		log.debug("image mounted", "mode", "fuse", "pid", fmt.Sprint(fuse.Process.Pid), "mountpoint", lower)
	default:
		return nil, nil, fmt.Errorf("%w: mount mode %q", ErrSpec, cfg.Mode)
	}
	defer func() {
		if err != nil {
			stopFUSE(fuse)
		}
	}()

	log.step("image mounted", "mode", string(cfg.Mode))
	if cfg.Unprivileged {
		if err := prepareUpper(cfg, lower, path.Join(udi, "upper"), mps); err != nil {
			return nil, nil, err
		}
		log.step("upper layer prepared")
	}
	// Relative layer paths keep udiMount out of the option string (commas
	// and colons in it would be misparsed).
	if err := os.Chdir(udi); err != nil {
		return nil, nil, fmt.Errorf("%w: entering udiMount: %v", ErrMount, err)
	}
	opts := "lowerdir=lower,upperdir=upper,workdir=work"
	err = errors.ErrUnsupported
	if cfg.Unprivileged {
		// userxattr (Linux 5.11) keeps overlay's own xattrs in user.*,
		// which is what a user namespace may write.
		err = mount("overlay", udi, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts+",userxattr")
	}
	if err != nil {
		err = mount("overlay", udi, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w (the container root needs overlayfs)", err)
	}
	log.step("overlay mounted")
	if err := os.Chdir("/"); err != nil {
		return nil, nil, fmt.Errorf("%w: chdir /: %v", ErrMount, err)
	}
	dir, err := os.OpenFile(udi, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: opening the container root: %v", ErrMount, err)
	}
	// The root's real path: udiMount may go through a symlink, and the
	// destination checks compare it with the real paths of what is opened
	// below it.
	real, err := os.Readlink(fdPath(dir))
	if err != nil {
		dir.Close()
		return nil, nil, fmt.Errorf("%w: resolving the container root: %v", ErrMount, err)
	}
	return &rootfs{path: real, dir: dir, unpriv: cfg.Unprivileged, cred: cfg.Cred, log: log}, fuse, nil
}

// bindReadOnly binds the host directory src recursively on target, every
// mount read-only, nosuid, nodev.
func bindReadOnly(src, target string) error {
	if err := mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	f, err := os.OpenFile(target, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: opening %s: %v", ErrMount, target, err)
	}
	defer f.Close()
	return setAttrsRecursive(int(f.Fd()), target, mountAttrs{rdonly: true, nosuid: true, nodev: true})
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

// openDest resolves unsafePath inside the root, symlinks included, never
// leaving it, and creates it (directory, or empty file when !isDir) when
// missing. It returns the O_PATH handle and the real path, which is
// checked to be inside the root and, for user volumes, against the user
// destination rules.
func (r *rootfs) openDest(unsafePath string, isDir, user bool) (*os.File, string, error) {
	f, err := pathrs.OpenatInRoot(r.dir, unsafePath)
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
			if user && !onRoot {
				// The mount point would be made on a host file system
				// (a volume, /tmp): only as the user may.
				err = asUser(r.cred, !r.unpriv, create)
			} else {
				err = create()
			}
		}
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
		f, err := pathrs.OpenatInRoot(r.dir, "/"+strings.Join(comps[:i], "/"))
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
	return pathrs.OpenatInRoot(r.dir, unsafePath)
}

// bind binds src (an open handle) on unsafeDest in the root, recursively,
// then adds attrs to every mount of the new tree and sets its propagation.
func (r *rootfs) bind(src *os.File, srcName string, isDir bool, unsafeDest string, attrs mountAttrs, propagation string, user bool) error {
	return r.bindFlags(src, srcName, isDir, unsafeDest, attrs, propagation, user, unix.MS_REC)
}

// bindFlags is bind, recursive when rec is MS_REC.
func (r *rootfs) bindFlags(src *os.File, srcName string, isDir bool, unsafeDest string, attrs mountAttrs, propagation string, user bool, rec uintptr) error {
	dst, real, err := r.openDest(unsafeDest, isDir, user)
	if err != nil {
		return err
	}
	err = mount(fdPath(src), fdPath(dst), "", unix.MS_BIND|rec, "")
	dst.Close()
	if err != nil {
		return fmt.Errorf("binding %s on %s: %w", srcName, unsafeDest, err)
	}
	// Reopen: the path now crosses into the new mount.
	top, real2, err := r.openDest(unsafeDest, isDir, user)
	if err != nil {
		return err
	}
	defer top.Close()
	if real2 != real {
		return fmt.Errorf("%w: destination %s moved from %s to %s while mounting", ErrMount, unsafeDest, real, real2)
	}
	if err := setAttrsRecursive(int(top.Fd()), real, attrs); err != nil {
		return err
	}
	prop := uintptr(unix.MS_PRIVATE)
	if propagation == "slave" {
		prop = unix.MS_SLAVE
	}
	if err := mount("", fdPath(top), "", prop|unix.MS_REC, ""); err != nil {
		return err
	}
	r.log.debug("bound", "source", srcName, "path", r.containerPath(real), "ro", fmt.Sprint(attrs.rdonly))
	return nil
}

// bindHost binds the host path src (opened as the init, which is trusted
// for site paths) on unsafeDest.
func (r *rootfs) bindHost(src, unsafeDest string, attrs mountAttrs, propagation string) error {
	return r.bindHostFlags(src, unsafeDest, attrs, propagation, unix.MS_REC)
}

func (r *rootfs) bindHostFlags(src, unsafeDest string, attrs mountAttrs, propagation string, rec uintptr) error {
	f, err := os.OpenFile(src, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: opening %s: %v", ErrMount, src, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMount, src, err)
	}
	return r.bindFlags(f, src, st.IsDir(), unsafeDest, attrs, propagation, false, rec)
}

// mountNew mounts a new file system of type fstype on unsafeDest.
func (r *rootfs) mountNew(source, fstype, unsafeDest string, flags uintptr, data string) error {
	dst, _, err := r.openDest(unsafeDest, true, false)
	if err != nil {
		return err
	}
	defer dst.Close()
	return mount(source, fdPath(dst), fstype, flags, data)
}

// systemMounts mounts /proc, /sys, /dev, /tmp and /var/tmp.
func (r *rootfs) systemMounts() error {
	if r.unpriv {
		// A fresh proc needs the PID namespace's owner; bind the host's.
		if err := r.bindHost("/proc", "/proc", mountAttrs{nosuid: true, nodev: true, noexec: true}, ""); err != nil {
			return err
		}
	} else if err := r.mountNew("proc", "proc", "/proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	if err := r.bindHost("/sys", "/sys", mountAttrs{nosuid: true, nodev: true, noexec: true}, ""); err != nil {
		return err
	}
	// /dev as the host has it: GPUs, InfiniBand, /dev/shm for MPI.
	if err := r.bindHost("/dev", "/dev", mountAttrs{nosuid: true}, ""); err != nil {
		return err
	}
	// The host's /tmp and /var/tmp, without what is mounted below them
	// (like Shifter; a recursive bind would also copy udiMount when it
	// lies under /tmp).
	for _, t := range []string{"/tmp", "/var/tmp"} {
		if _, err := os.Stat(t); err != nil {
			continue
		}
		err := r.bindHostFlags(t, t, mountAttrs{nosuid: true, nodev: true}, "", 0)
		if errors.Is(err, unix.EINVAL) && r.unpriv {
			// In a user namespace the kernel refuses to bind a mount
			// without its (locked) submounts.
			err = r.bindHostFlags(t, t, mountAttrs{nosuid: true, nodev: true}, "", unix.MS_REC)
			if err == nil && under(r.path, t) {
				// The copy of the container itself that came along.
				copyPath := path.Join(r.path, r.path)
				for unix.Unmount(copyPath, unix.MNT_DETACH) == nil {
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeEtc writes the site files of /etc: passwd, group, the copied ones,
// and the mtab link. An existing entry of the image is replaced, never
// written through.
func (r *rootfs) writeEtc(cfg *initConfig) error {
	root, err := os.OpenRoot(r.path)
	if err != nil {
		return fmt.Errorf("%w: opening the container root: %v", ErrSetup, err)
	}
	defer root.Close()
	if err := root.MkdirAll("etc", 0o755); err != nil {
		return fmt.Errorf("%w: creating /etc: %v", ErrSetup, err)
	}
	files, err := etcFiles(cfg)
	if err != nil {
		return err
	}
	for name, b := range files {
		p := "etc/" + name
		if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: replacing /%s: %v", ErrSetup, p, err)
		}
		f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("%w: writing /%s: %v", ErrSetup, p, err)
		}
		_, werr := f.Write(b)
		cerr := f.Chmod(0o644)
		if err := errors.Join(werr, cerr, f.Close()); err != nil {
			return fmt.Errorf("%w: writing /%s: %v", ErrSetup, p, err)
		}
	}
	if err := root.Remove("etc/mtab"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: replacing /etc/mtab: %v", ErrSetup, err)
	}
	if err := root.Symlink("/proc/mounts", "etc/mtab"); err != nil {
		return fmt.Errorf("%w: linking /etc/mtab: %v", ErrSetup, err)
	}
	return nil
}

// openSources opens the source of every volume, in order: user volumes
// with the user's credentials, site volumes as the init.
func openSources(cfg *initConfig) ([]source, error) {
	var userPaths []string
	for _, v := range cfg.Volumes {
		if !v.Site {
			userPaths = append(userPaths, v.Source)
		}
	}
	var user []source
	if len(userPaths) > 0 {
		var err error
		if user, err = openSourcesAsUser(userPaths, cfg.Cred, !cfg.Unprivileged); err != nil {
			return nil, err
		}
	}
	srcs := make([]source, 0, len(cfg.Volumes))
	for _, v := range cfg.Volumes {
		if !v.Site {
			srcs = append(srcs, user[0])
			user = user[1:]
			continue
		}
		f, err := os.OpenFile(v.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		var st os.FileInfo
		if err == nil {
			st, err = f.Stat()
		}
		if err != nil {
			closeSources(srcs)
			closeSources(user)
			return nil, fmt.Errorf("%w: site volume %s: %v", ErrMount, v.Source, err)
		}
		srcs = append(srcs, source{f: f, isDir: st.IsDir()})
	}
	return srcs, nil
}

func closeSources(srcs []source) {
	for _, s := range srcs {
		if s.f != nil {
			s.f.Close()
		}
	}
}

// volumes binds the volumes in order, srcs from openSources.
func (r *rootfs) volumes(cfg *initConfig, srcs []source) error {
	for i, v := range cfg.Volumes {
		attrs := mountAttrs{rdonly: v.ReadOnly, nosuid: true, nodev: true}
		if v.Site {
			attrs.nodev = !under(v.Source, "/dev")
		}
		if err := r.bind(srcs[i].f, v.Source, srcs[i].isDir, v.Dest, attrs, v.Propagation, !v.Site); err != nil {
			return err
		}
	}
	return nil
}

// runHook runs a site hook as root with the container root as working
// directory and a fixed environment. A hook naming an existing file is run
// as "/bin/sh FILE" (Shifter's way) or, when the file is an ELF program,
// directly; anything else as "/bin/sh -c HOOK".
func (r *rootfs) runHook(which, hook string) error {
	if hook == "" {
		return nil
	}
	args := []string{"/bin/sh", "-c", hook}
	if st, err := os.Stat(hook); err == nil && path.IsAbs(hook) && st.Mode().IsRegular() {
		args = []string{"/bin/sh", hook}
		if isELF(hook) {
			args = []string{hook}
		}
	}
	cmd := &exec.Cmd{Path: args[0], Args: args, Env: initEnv, Dir: r.path, Stdout: os.Stderr, Stderr: os.Stderr}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %s %q: %v", ErrHook, which, hook, err)
	}
	return nil
}

// isELF reports whether the file p starts with the ELF magic.
func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	_, err = io.ReadFull(f, b[:])
	return err == nil && string(b[:]) == "\x7fELF"
}

// etcFiles returns the content of the site files of /etc, by name.
func etcFiles(cfg *initConfig) (map[string][]byte, error) {
	files := map[string][]byte{"passwd": passwdFile(cfg.Cred, cfg.ImportUsers), "group": groupFile(cfg.Cred, cfg.ImportUsers)}
	for name, host := range cfg.EtcFiles {
		b, err := os.ReadFile(host)
		if err != nil {
			return nil, fmt.Errorf("%w: reading site file for /etc/%s: %v", ErrSetup, name, err)
		}
		files[name] = b
	}
	return files, nil
}
