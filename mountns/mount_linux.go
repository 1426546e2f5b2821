// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	minfo "github.com/shifter-go/shifter/internal/mountinfo"
)

// mountError is a failed mount(2) with everything needed to read it.
type mountError struct {
	op, source, target, fstype string
	flags                      uintptr
	data                       string
	err                        error
}

func (e *mountError) Error() string {
	s := fmt.Sprintf("%s %s on %s", e.op, e.source, e.target)
	if e.fstype != "" {
		s += " type " + e.fstype
	}
	if e.flags != 0 {
		s += " flags " + mountFlagString(e.flags)
	}
	if e.data != "" {
		s += " data " + e.data
	}
	return s + ": " + e.err.Error()
}

func (e *mountError) Unwrap() []error { return []error{ErrMount, e.err} }

// mount wraps unix.Mount; it is the only caller of it.
func mount(source, target, fstype string, flags uintptr, data string) error {
	for {
		err := unix.Mount(source, target, fstype, flags, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &mountError{op: "mount", source: source, target: target, fstype: fstype, flags: flags, data: data, err: err}
		}
		return nil
	}
}

var mountFlagNames = []struct {
	bit  uintptr
	name string
}{
	{unix.MS_RDONLY, "MS_RDONLY"}, {unix.MS_NOSUID, "MS_NOSUID"}, {unix.MS_NODEV, "MS_NODEV"},
	{unix.MS_NOEXEC, "MS_NOEXEC"}, {unix.MS_REMOUNT, "MS_REMOUNT"}, {unix.MS_BIND, "MS_BIND"},
	{unix.MS_MOVE, "MS_MOVE"}, {unix.MS_REC, "MS_REC"}, {unix.MS_PRIVATE, "MS_PRIVATE"},
	{unix.MS_SLAVE, "MS_SLAVE"}, {unix.MS_SHARED, "MS_SHARED"}, {unix.MS_NOATIME, "MS_NOATIME"},
	{unix.MS_NODIRATIME, "MS_NODIRATIME"}, {unix.MS_RELATIME, "MS_RELATIME"},
	{unix.MS_STRICTATIME, "MS_STRICTATIME"},
}

// mountFlagString renders MS_* bits, unknown ones in hex.
func mountFlagString(f uintptr) string {
	var parts []string
	for _, n := range mountFlagNames {
		if f&n.bit != 0 {
			parts = append(parts, n.name)
			f &^= n.bit
		}
	}
	if f != 0 {
		parts = append(parts, fmt.Sprintf("0x%x", f))
	}
	return strings.Join(parts, "|")
}

// mountSetattr is mount_setattr(2) (a variable so that tests can take the
// path of kernels before 5.12).
var mountSetattr = unix.MountSetattr

// mountAttrs are per-mount attributes set recursively on a mount tree.
type mountAttrs struct {
	rdonly, nosuid, nodev, noexec bool
}

func (a mountAttrs) setattr() uint64 {
	var v uint64
	if a.rdonly {
		v |= unix.MOUNT_ATTR_RDONLY
	}
	if a.nosuid {
		v |= unix.MOUNT_ATTR_NOSUID
	}
	if a.nodev {
		v |= unix.MOUNT_ATTR_NODEV
	}
	if a.noexec {
		v |= unix.MOUNT_ATTR_NOEXEC
	}
	return v
}

func (a mountAttrs) msFlags() uintptr {
	var v uintptr
	if a.rdonly {
		v |= unix.MS_RDONLY
	}
	if a.nosuid {
		v |= unix.MS_NOSUID
	}
	if a.nodev {
		v |= unix.MS_NODEV
	}
	if a.noexec {
		v |= unix.MS_NOEXEC
	}
	return v
}

// setAttrsRecursive adds attrs to the mount whose root fd refers to
// (at path, its real path in this namespace) and to every mount below it:
// mount_setattr(AT_RECURSIVE) where the kernel has it (5.12), else a
// bind-remount of that mount and of each mount descending from it in
// this thread's mountinfo, keeping the flags each already has (the kernel
// refuses to clear locked ones in a user namespace).
func setAttrsRecursive(fd int, path string, attrs mountAttrs) error {
	if attrs == (mountAttrs{}) {
		return nil
	}
	err := mountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: attrs.setattr()})
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return &mountError{op: "mount_setattr", target: path, err: err}
	}
	// The walk reads this thread's view: /proc/self is the thread group
	// leader's, whose mount namespace can differ (a goroutine locked to
	// the main thread that unshared and exited leaves it wedged there).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	id, err := fdMountID(fd)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMount, path, err)
	}
	mi, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMount, err)
	}
	mps, err := mountsUnder(mi, id, path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMount, path, err)
	}
	for _, mp := range mps {
		var st unix.Statfs_t
		if err := unix.Statfs(mp, &st); err != nil {
			return &mountError{op: "statfs", target: mp, err: err}
		}
		flags := unix.MS_REMOUNT | unix.MS_BIND | attrs.msFlags() | statfsMountFlags(st.Flags)
		if err := mount("", mp, "", flags, ""); err != nil {
			return err
		}
	}
	return nil
}

// statfsMountFlags maps statfs f_flags (ST_*) to the MS_* flags a bind
// remount must repeat.
func statfsMountFlags(f int64) uintptr {
	var v uintptr
	for _, m := range []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_RDONLY, unix.MS_RDONLY}, {unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if f&m.st != 0 {
			v |= m.ms
		}
	}
	return v
}

// fdMountID is the id of the mount fd is on, from /proc/thread-self/fdinfo
// (there since Linux 3.15; statx's STATX_MNT_ID came only in 5.8, after
// the kernels this fallback is for).
func fdMountID(fd int) (int, error) {
	b, err := os.ReadFile("/proc/thread-self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "mnt_id:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no mnt_id in /proc/thread-self/fdinfo/%d", fd)
}

// mountsUnder lists, parents first, the mount with id top and every mount
// descending from it in mountinfo, each named by path (top's real path)
// joined with its mount point's place under top's. It follows mount ids,
// not path prefixes: mountinfo names mount points by their resolved path
// from this process's root, which need not be how the caller spelled
// path (a symlink in TMPDIR, a chroot).
func mountsUnder(mountinfo []byte, top int, path string) ([]string, error) {
	type entry struct {
		id, parent int
		mp         string
	}
	var all []entry
	byID := -1
	for line := range strings.SplitSeq(string(mountinfo), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		id, err1 := strconv.Atoi(fields[0])
		parent, err2 := strconv.Atoi(fields[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo: bad line %q", line)
		}
		if id == top {
			byID = len(all)
		}
		all = append(all, entry{id, parent, minfo.Unescape(fields[4])})
	}
	if byID < 0 {
		return nil, fmt.Errorf("mount %d not in this thread's mountinfo", top)
	}
	base := strings.TrimSuffix(all[byID].mp, "/")
	out := []string{path}
	ids := []int{top}
	in := map[int]bool{top: true}
	for i := 0; i < len(ids); i++ {
		for _, e := range all {
			if e.parent != ids[i] || in[e.id] {
				continue
			}
			rel, ok := strings.CutPrefix(e.mp, base+"/")
			if !ok {
				if e.mp != all[byID].mp {
					return nil, fmt.Errorf("mount %d at %s is a child of %d at %s but not below it", e.id, e.mp, top, all[byID].mp)
				}
				rel = "" // stacked on its parent's mount point
			}
			in[e.id] = true
			ids = append(ids, e.id)
			if rel == "" {
				out = append(out, path)
			} else {
				out = append(out, strings.TrimSuffix(path, "/")+"/"+rel)
			}
		}
	}
	return out, nil
}
