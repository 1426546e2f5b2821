// SPDX-License-Identifier: BSD-3-Clause

package fusefs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// MountOptions are the options of Mount. The zero value (or nil) means
// defaults.
type MountOptions struct {
	// FsName is the mount source shown in /proc/mounts and by df (the
	// image path, typically). Default "shifter-mount".
	FsName string
	// Subtype makes the type "fuse.<Subtype>". Default "shifter-mount".
	Subtype string
	// AllowOther lets users other than the mounting one use the mount
	// (default_permissions always applies). Unprivileged mounts need
	// user_allow_other in /etc/fuse.conf for it.
	AllowOther bool
	// MaxRead is the largest READ request, in bytes. Default 1 MiB (the
	// kernel may cap it through /proc/sys/fs/fuse/max_pages_limit).
	MaxRead int
	// KernelReadahead is the readahead window the kernel uses on the
	// mount, in bytes. FUSE starts at 128 KiB at most; when the process
	// may (root), Mount raises the mount's bdi read_ahead_kb to this
	// value. Default 1 MiB; negative leaves the kernel's default.
	KernelReadahead int
	// MaxBackground is the number of asynchronous requests (readahead)
	// the kernel keeps in flight. Default 64.
	MaxBackground int
	// NoReaddirPlus answers directory listings without attributes
	// (READDIR instead of READDIRPLUS): cheaper for walks that only need
	// names and types (find), dearer for those that stat every entry.
	NoReaddirPlus bool
	// Options are extra mount options passed to the kernel or fusermount.
	Options []string
	// Debug logs every FUSE request and reply at debug level.
	Debug bool
	// Logger receives mount events and go-fuse's messages. Default
	// discards.
	Logger *slog.Logger
	// ServeOnly promises that this process never opens files on the
	// mount (shifter-mount, which only serves it): Mount then skips
	// go-fuse's poll hack, a round trip that only protects a process
	// that is both the server and a client.
	ServeOnly bool
}

// Server is a mounted FS.
type Server struct {
	srv        *fuse.Server
	mountpoint string
	direct     bool
	magic      bool // mounted by a parent, served as /dev/fd/N
	log        *slog.Logger
	done       chan struct{}
	unmountMu  sync.Mutex
}

// Mount mounts fsys read-only on mountpoint (ro, nosuid, nodev,
// default_permissions) and serves it until the file system is unmounted.
// It returns once the mount answers requests. As root it calls mount(2)
// itself; otherwise it uses fusermount3. A mountpoint of the form
// /dev/fd/N serves the /dev/fuse descriptor N that a parent process has
// already mounted (with its own options); such a mount cannot be
// unmounted by the Server.
func Mount(mountpoint string, fsys *FS, opts *MountOptions) (*Server, error) {
	var o MountOptions
	if opts != nil {
		o = *opts
	}
	if o.FsName == "" {
		o.FsName = "shifter-mount"
	}
	if o.Subtype == "" {
		o.Subtype = "shifter-mount"
	}
	if o.MaxRead <= 0 {
		o.MaxRead = 1 << 20
	}
	if o.KernelReadahead == 0 {
		o.KernelReadahead = 1 << 20
	}
	if o.MaxBackground <= 0 {
		o.MaxBackground = 64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	// /dev/fd/N: a parent already mounted /dev/fuse (as fd N) somewhere we
	// do not know; go-fuse serves the descriptor. mount(2) must not be
	// tried on that path (it would mount over /dev/fuse itself).
	magic := isFuseFdPath(abs)
	direct := os.Geteuid() == 0 && !magic
	level := slog.LevelWarn
	if o.Debug {
		level = slog.LevelDebug
	}
	fo := &fuse.MountOptions{
		AllowOther:       o.AllowOther,
		Options:          append([]string{"ro", "nosuid", "nodev", "default_permissions"}, o.Options...),
		MaxBackground:    o.MaxBackground,
		MaxWrite:         o.MaxRead,
		FsName:           o.FsName,
		Name:             o.Subtype,
		Debug:            o.Debug,
		Logger:           slog.NewLogLogger(o.Logger.Handler(), level),
		DirectMount:      direct,
		DirectMountFlags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV,
		// OPENDIR may be skipped like OPEN; go-fuse asks for the latter by
		// default.
		ExtraCapabilities: fuse.CAP_NO_OPENDIR_SUPPORT,
		// The image never changes: no need to check mtimes to drop pages.
		ExplicitDataCacheControl: true,
		EnableSymlinkCaching:     true,
		// Replies are byte slices: splicing them through a pipe saves no
		// copy, and 1 MiB replies do not fit the default pipe size.
		DisableSplice:      true,
		DisableReadDirPlus: o.NoReaddirPlus,
	}
	srv, err := fuse.NewServer(fsys, abs, fo)
	if err != nil {
		if magic && strings.HasSuffix(err.Error(), fuse.Status(unix.ENODEV).String()) {
			return nil, fmt.Errorf("mount %s: %w (%v)", abs, ErrAborted, err)
		}
		return nil, fmt.Errorf("mount %s: %w", abs, err)
	}
	s := &Server{srv: srv, mountpoint: abs, direct: direct, magic: magic, log: o.Logger, done: make(chan struct{})}
	go func() {
		srv.Serve()
		close(s.done)
	}()
	if magic {
		// The INIT handshake is done; nothing to stat or tune by path.
		return s, nil
	}
	// WaitMount has the kernel send a POLL (to a name go-fuse answers
	// itself) and learn that POLL is not implemented. Without it, a Go
	// program opening a file on the mount registers it with epoll, which
	// sends POLL while holding the epoll instance's lock: in the server's
	// own process (tests, or a program that mounts and reads) that can
	// deadlock the runtime's network poller and with it the server.
	// (NewServer returned after answering INIT: the mount is up.)
	if !o.ServeOnly {
		if err := srv.WaitMount(); err != nil {
			s.Unmount()
			return nil, fmt.Errorf("mount %s: %w", abs, err)
		}
	}
	// The mount's device number, for its bdi: AT_STATX_DONT_SYNC takes
	// the attributes the kernel made from rootmode at mount time instead
	// of asking the server (a round trip on the path of every mount).
	var sx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, abs, unix.AT_STATX_DONT_SYNC, unix.STATX_TYPE, &sx); err != nil {
		s.Unmount()
		return nil, fmt.Errorf("mount %s: stat the mount: %w", abs, err)
	}
	if o.KernelReadahead > 0 {
		if err := setReadahead(unix.Mkdev(sx.Dev_major, sx.Dev_minor), o.KernelReadahead); err != nil {
			o.Logger.Debug("kernel readahead unchanged", "mountpoint", abs, "err", err)
		}
	}
	return s, nil
}

// setReadahead sets the read_ahead_kb of the mount's backing device info,
// /sys/class/bdi/<major>:<minor>, which needs root.
func setReadahead(dev uint64, bytes int) error {
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(dev), unix.Minor(dev))
	if err := os.WriteFile(p, []byte(strconv.Itoa(bytes/1024)), 0); err != nil {
		return fmt.Errorf("set readahead: %w", err)
	}
	return nil
}

// Mountpoint returns the absolute mount point.
func (s *Server) Mountpoint() string { return s.mountpoint }

// Done is closed when the kernel has ended the session: the file system
// was unmounted (by Unmount or from outside) and, after a lazy unmount,
// its last user is gone.
func (s *Server) Done() <-chan struct{} { return s.done }

// Wait blocks until Done is closed.
func (s *Server) Wait() { <-s.done }

// ErrBusy reports that the mount is in use and was not unmounted.
var ErrBusy = errors.New("mount is busy")

// ErrAborted is Mount's error for a connection (/dev/fd/N) that its
// mounter took down before the INIT handshake: the mount it stood for
// is gone, and there is nothing to serve.
var ErrAborted = errors.New("the FUSE connection was aborted before INIT (the mount is gone)")

// Unmount unmounts the file system and waits for the server to stop. A
// mount in use is left in place and ErrBusy returned.
func (s *Server) Unmount() error {
	if err := s.unmount(false); err != nil {
		return err
	}
	s.Wait()
	return nil
}

// UnmountLazy detaches the mount from the file system tree (umount -l):
// new lookups fail at once, and the server keeps serving the files still
// open until the last is closed, then Done is closed. It does not wait.
func (s *Server) UnmountLazy() error { return s.unmount(true) }

// ErrNotOurMount is returned by Unmount of a /dev/fd/N mount: the process
// that mounted it unmounts it.
var ErrNotOurMount = errors.New("mounted by another process (/dev/fd/N): it must unmount")

func (s *Server) unmount(lazy bool) error {
	s.unmountMu.Lock()
	defer s.unmountMu.Unlock()
	select {
	case <-s.done:
		return nil
	default:
	}
	if s.magic {
		return fmt.Errorf("unmount %s: %w", s.mountpoint, ErrNotOurMount)
	}
	var err error
	for i := 0; i < 3; i++ {
		if s.direct {
			flags := 0
			if lazy {
				flags = unix.MNT_DETACH
			}
			err = unix.Unmount(s.mountpoint, flags)
			if err == nil || errors.Is(err, unix.EINVAL) {
				return nil // EINVAL: no longer mounted
			}
		} else {
			args := []string{"-u", s.mountpoint}
			if lazy {
				args = []string{"-u", "-z", s.mountpoint}
			}
			out, ferr := exec.Command("fusermount3", args...).CombinedOutput()
			if ferr == nil {
				return nil
			}
			err = fmt.Errorf("fusermount3 %s: %w: %s", strings.Join(args, " "), ferr, strings.TrimSpace(string(out)))
			if strings.Contains(string(out), "not mounted") {
				return nil
			}
			if strings.Contains(string(out), "busy") {
				err = fmt.Errorf("%w: %w", ErrBusy, err)
			}
		}
		if errors.Is(err, unix.EBUSY) {
			err = fmt.Errorf("unmount %s: %w", s.mountpoint, ErrBusy)
		}
		if !errors.Is(err, ErrBusy) {
			break
		}
		// Files closed just before may not have been released yet.
		time.Sleep(time.Duration(i+1) * 20 * time.Millisecond)
	}
	if err != nil && !errors.Is(err, ErrBusy) {
		err = fmt.Errorf("unmount %s: %w", s.mountpoint, err)
	}
	return err
}

// isFuseFdPath reports whether p is /dev/fd/N, go-fuse's (and libfuse's)
// way to serve an already mounted /dev/fuse descriptor N.
func isFuseFdPath(p string) bool {
	n, ok := strings.CutPrefix(p, "/dev/fd/")
	if !ok {
		return false
	}
	fd, err := strconv.Atoi(n)
	return err == nil && fd > 0
}
