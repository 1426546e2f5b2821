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

// In unprivileged mode the overlay cannot copy up a directory of the image:
// copy-up gives the copy the owner of the original, root, which the user
// namespace does not map (EOVERFLOW). So, before the overlay is mounted,
// every directory in which something will be created (mount points, the
// site files of /etc) is made in the upper layer at the path it has in the
// image, symlinks resolved inside the image. Such a directory shows the
// user as owner in the container (files of the image show as nobody, the
// usual user-namespace view), and nothing is ever copied up.

// mountPoint is a path that must exist in the container root.
type mountPoint struct {
	unsafePath string
	isDir      bool
}

// mountPoints lists the paths the container needs: the system mounts and
// the volume destinations.
func mountPoints(cfg *initConfig, srcs []source) []mountPoint {
	mps := []mountPoint{{"/etc", true}, {"/proc", true}, {"/sys", true}, {"/dev", true}, {"/tmp", true}, {"/var/tmp", true}}
	for i, v := range cfg.Volumes {
		mps = append(mps, mountPoint{v.Dest, srcs[i].isDir})
	}
	return mps
}

// resolveInImage resolves unsafePath in the image root lower (symlinks
// followed inside it) as far as it exists, and returns the real path
// relative to lower, the missing components appended, and whether the
// whole path exists.
func resolveInImage(lower *os.File, lowerPath, unsafePath string) (string, bool, error) {
	comps := strings.Split(strings.Trim(path.Clean("/"+unsafePath), "/"), "/")
	if len(comps) == 1 && comps[0] == "" {
		comps = nil
	}
	// The real path of the image root: udiMount may go through a symlink.
	if real, err := os.Readlink(fdPath(lower)); err == nil {
		lowerPath = real
	}
	for i := len(comps); i >= 0; i-- {
		f, err := openInRoot(lower, "/"+strings.Join(comps[:i], "/"))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return "", false, err
		}
		real, err := os.Readlink(fdPath(f))
		f.Close()
		if err != nil {
			return "", false, err
		}
		if !inRoot(lowerPath, real) {
			return "", false, fmt.Errorf("%s resolves to %s, outside the image", unsafePath, real)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(real, lowerPath), "/")
		return path.Join(append([]string{rel}, comps[i:]...)...), i == len(comps), nil
	}
	return "", false, fmt.Errorf("%s: the image root cannot be opened", unsafePath)
}

// prepareUpper makes the mount points mps that the image lacks, and the
// site files of /etc, in the upper layer (see above). A privileged init
// passes no mount point: it makes them through the overlay.
func prepareUpper(cfg *initConfig, lowerPath, upperPath string, mps []mountPoint) error {
	lower, err := os.OpenFile(lowerPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: opening the image root: %v", ErrMount, err)
	}
	defer lower.Close()
	upper, err := os.OpenFile(upperPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: opening the upper layer: %v", ErrMount, err)
	}
	defer upper.Close()
	for _, mp := range mps {
		if mp.unsafePath == "/etc" {
			continue // writeEtcUpper makes it
		}
		rel, exists, err := resolveInImage(lower, lowerPath, mp.unsafePath)
		if err != nil {
			return fmt.Errorf("%w: mount point %s: %v", ErrBadVolume, mp.unsafePath, err)
		}
		if exists {
			continue
		}
		dir := rel
		if !mp.isDir {
			dir = path.Dir(rel)
		}
		d, err := pathrs.MkdirAllHandle(upper, "/"+dir, 0o755)
		if err != nil {
			return fmt.Errorf("%w: mount point %s: %v", ErrBadVolume, mp.unsafePath, err)
		}
		if !mp.isDir {
			fd, err := unix.Openat(int(d.Fd()), path.Base(rel), unix.O_CREAT|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
			if err == nil {
				unix.Close(fd)
			}
		}
		d.Close()
	}
	return writeEtcUpper(cfg, lower, lowerPath, upper, upperPath)
}

// writeEtcUpper writes the site files of /etc (passwd, group, the
// site's files) and the /etc/mtab link into the upper layer, before the
// overlay is mounted: written through the overlay, each would first make
// it copy /etc up and lay a whiteout over the image's file (a rename
// through the work directory per file, and xattr requests to a FUSE lower
// layer, which the kernel does not cache). The upper /etc takes the
// image's /etc's mode, owner and times, as a copy-up would.
func writeEtcUpper(cfg *initConfig, lower *os.File, lowerPath string, upper *os.File, upperPath string) error {
	etcRel, _, err := resolveInImage(lower, lowerPath, "/etc")
	if err != nil {
		return fmt.Errorf("%w: /etc: %v", ErrBadVolume, err)
	}
	// The upper layer holds only what the init makes, and etcRel is the
	// real (symlink-free) path of the image's /etc: plain mkdir will do.
	if err := os.MkdirAll(path.Join(upperPath, etcRel), 0o755); err != nil {
		return fmt.Errorf("%w: /etc: %v", ErrSetup, err)
	}
	d, err := openInRoot(upper, "/"+etcRel)
	if err != nil {
		return fmt.Errorf("%w: /etc: %v", ErrSetup, err)
	}
	defer d.Close()
	var st unix.Stat_t
	if unix.Fstatat(int(lower.Fd()), etcRel, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		dfd := fdPath(d)
		// Best effort: in a user namespace the image's owner may be unmapped.
		_ = unix.Fchownat(unix.AT_FDCWD, dfd, int(st.Uid), int(st.Gid), 0)
		_ = unix.Chmod(dfd, st.Mode&0o7777)
		defer func() {
			_ = unix.UtimesNanoAt(unix.AT_FDCWD, dfd, []unix.Timespec{st.Atim, st.Mtim}, 0)
		}()
	}
	root, err := os.OpenRoot(upperPath)
	if err != nil {
		return fmt.Errorf("%w: opening the upper layer: %v", ErrSetup, err)
	}
	defer root.Close()
	files, err := etcFiles(cfg)
	if err != nil {
		return err
	}
	for name, b := range files {
		p := path.Join(etcRel, name)
		if err := root.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("%w: writing /etc/%s: %v", ErrSetup, name, err)
		}
		if err := root.Chmod(p, 0o644); err != nil {
			return fmt.Errorf("%w: writing /etc/%s: %v", ErrSetup, name, err)
		}
	}
	if err := root.Symlink("/proc/mounts", path.Join(etcRel, "mtab")); err != nil {
		return fmt.Errorf("%w: linking /etc/mtab: %v", ErrSetup, err)
	}
	return nil
}
