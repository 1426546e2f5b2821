// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// perNodeCache volumes, as Shifter makes them: a sparse file of the size
// asked for, made into a file system with the site's mkfs, loop-mounted
// read-write, nosuid, nodev at the destination, its root directory given
// to the user. The file's name (Shifter's perNodeCache_uid<U>_gid<G>_
// <host>.<fs>.XXXXXX under perNodeCachePath) exists only between its
// creation and the unlink that follows at once: everything after goes
// through the open descriptor (mkfs gets it as /proc/self/fd/3), so a
// start interrupted at any point, even by SIGKILL, leaves nothing in
// perNodeCachePath, and the space comes back when the loop device lets
// go of the file, with the container's last mount of it.

// fsMagic are the statfs types of the file systems perNodeCache makes.
var fsMagic = map[string]int64{"xfs": unix.XFS_SUPER_MAGIC, "ext4": unix.EXT4_SUPER_MAGIC}

// mkfsArgs are the fixed options of each mkfs, before the device path:
// nothing comes from the user but the file's size.
var mkfsArgs = map[string][]string{
	"xfs":  {"-q", "-K"},                                       // quiet, no discard
	"ext4": {"-q", "-t", "ext4", "-m", "0", "-E", "nodiscard"}, // (mke2fs) no blocks reserved for root: the scratch is the user's
}

// maxMkfsOutput bounds what is kept of mkfs's output for the error.
const maxMkfsOutput = 4096

// mountPerNodeCache makes the perNodeCache volume of o (opPerNodeCache)
// and mounts it on o.dest in the root.
func (r *rootfs) mountPerNodeCache(o op, p *PerNodeCache, c *PerNodeCacheConfig, unprivileged bool) error {
	name := "perNodeCache volume " + o.dest
	if p == nil {
		return fmt.Errorf("%w: %s: no perNodeCache settings", ErrSetup, name)
	}
	if err := c.Check(Volume{Dest: o.dest, PerNodeCache: p}, unprivileged); err != nil {
		return err
	}
	f, err := createBackingFile(c.Dir, r.cred, p)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	if err := unix.Ftruncate(int(f.Fd()), p.Size); err != nil {
		return fmt.Errorf("%w: %s: sizing the backing file in %s to %d bytes: %v", ErrMount, name, c.Dir, p.Size, err)
	}
	if err := runMkfs(c.Mkfs[p.FsType], p.FsType, f); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMount, name, err)
	}
	dev, err := attachLoopMode(f, f.Name(), false)
	if err != nil {
		var lu *loopUnusableError
		if errors.As(err, &lu) {
			return fmt.Errorf("%w: %s: no usable loop device on this node: %w", ErrUnavailable, name, err)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	// The device goes away (autoclear) with the mount, or now if the
	// mount fails.
	defer dev.Close()
	dst, real, err := r.openDest(o.dest, true, o.bind.user)
	if err != nil {
		return err
	}
	err = mount(dev.Name(), fdPath(dst), p.FsType, o.flags, "")
	dst.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	top, real2, err := r.openDest(o.dest, true, o.bind.user)
	if err != nil {
		return err
	}
	defer top.Close()
	if real2 != real {
		return fmt.Errorf("%w: %s moved from %s to %s while mounting", ErrMount, name, real, real2)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(top.Fd()), &sfs); err != nil || sfs.Type != fsMagic[p.FsType] {
		return fmt.Errorf("%w: %s: the new %s file system is not at %s (statfs type %#x, %v)", ErrMount, name, p.FsType, real, sfs.Type, err)
	}
	if err := unix.Fchownat(int(top.Fd()), "", int(r.cred.UID), int(r.cred.GID), unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("%w: %s: giving it to uid %d: %v", ErrMount, name, r.cred.UID, err)
	}
	if err := unix.Chmod(fdPath(top), 0o755); err != nil {
		return fmt.Errorf("%w: %s: chmod: %v", ErrMount, name, err)
	}
	if err := mount("", fdPath(top), "", unix.MS_PRIVATE, ""); err != nil {
		return err
	}
	r.log.debug("perNodeCache mounted", "path", r.containerPath(real), "fs", p.FsType, "size", fmt.Sprint(p.Size), "device", dev.Name())
	return nil
}

// createBackingFile makes the backing file in dir as mkstemp(3) does
// (O_EXCL, a random suffix, mode 0600), root's, named as Shifter names
// it, and unlinks it at once. It returns the open file, named by the
// path it had.
func createBackingFile(dir string, cred Credential, p *PerNodeCache) (*os.File, error) {
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: perNodeCachePath %s: %v", ErrUnavailable, dir, err)
	}
	defer unix.Close(dfd)
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, host)
	if len(host) > 64 {
		host = host[:64]
	}
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for attempt := 0; attempt < 100; attempt++ {
		var rnd [6]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSetup, err)
		}
		for i := range rnd {
			rnd[i] = letters[int(rnd[i])%len(letters)]
		}
		base := fmt.Sprintf("perNodeCache_uid%d_gid%d_%s.%s.%s", cred.UID, cred.GID, host, p.FsType, rnd[:])
		fd, err := unix.Openat(dfd, base, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: creating the backing file in perNodeCachePath %s: %v", ErrMount, dir, err)
		}
		f := os.NewFile(uintptr(fd), strings.TrimSuffix(dir, "/")+"/"+base)
		uerr := unix.Unlinkat(dfd, base, 0)
		if err := errors.Join(uerr, unix.Fchown(fd, 0, 0), unix.Fchmod(fd, 0o600)); err != nil {
			if uerr != nil {
				_ = unix.Unlinkat(dfd, base, 0)
			}
			f.Close()
			return nil, fmt.Errorf("%w: backing file %s: %v", ErrMount, f.Name(), err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("%w: no free backing file name in perNodeCachePath %s", ErrMount, dir)
}

// runMkfs makes a file system of type fstype on the file f with the
// program mkfs (the site's, trusted), as root, with fixed options and a
// fixed environment; f is its descriptor 3, named /proc/self/fd/3.
func runMkfs(mkfs, fstype string, f *os.File) error {
	args, ok := mkfsArgs[fstype]
	if !ok {
		return fmt.Errorf("no mkfs options for %q", fstype)
	}
	cmd := &exec.Cmd{
		Path:       mkfs,
		Args:       append(append([]string{mkfs}, args...), "/proc/self/fd/3"),
		Env:        []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"},
		Dir:        "/",
		ExtraFiles: []*os.File{f},
		SysProcAttr: &syscall.SysProcAttr{
			Pdeathsig: unix.SIGKILL,
			Setsid:    true,
		},
	}
	out := &limitedBuffer{max: maxMkfsOutput}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s failed: %v: %s", mkfs, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
