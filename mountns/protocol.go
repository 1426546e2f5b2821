// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// initArg0 is argv[0] of the namespace init: the binary that called Run,
// re-executed through /proc/self/exe.
const initArg0 = "shifter-mountns-init"

// Descriptor numbers in the namespace init: exec.Cmd.ExtraFiles puts the
// files there in a re-executed init; a pre-forked one takes them where
// they arrived (placeFiles sets these).
var (
	fdConfig = 3 // the initConfig, gob-encoded, read to EOF
	fdStatus = 4 // JSON lines of statusMsg, written by the init
	// fdLifeline is the read end of a pipe whose write end only Run's
	// process holds: EOF tells the init that the runtime is gone.
	fdLifeline = 5
	fdImage    = 6 // the squashfs image (when there is one)
	// MountShared: the shared mount's root (O_PATH) and the reference.
	fdSharedRoot = 6
	fdSharedHold = 7
)

// initConfig is what Run sends to the namespace init: the Spec without its
// descriptors, writers and logger, and with the mount mode decided. It
// travels gob-encoded: gob carries strings as bytes, where JSON would
// replace invalid UTF-8 (arguments, environment values, paths are bytes,
// not text) with U+FFFD.
type initConfig struct {
	ImagePath string
	HasImage  bool
	// SharedPath is the shared mount's host path (Mode MountShared).
	SharedPath string
	LocalRoot  string
	Mode       MountMode
	// FallbackFUSE (auto mode chose loop): when the loop mount fails with
	// a loopUnusableError, mount with FUSE instead; NoFUSE says why FUSE
	// is impossible, if it is.
	FallbackFUSE  bool
	NoFUSE        string
	MountHelper   string
	UDIMount      string
	Volumes       []Volume
	PerNodeCache  PerNodeCacheConfig
	EtcFiles      map[string]string
	EtcData       map[string][]byte
	PreMountHook  string
	PostMountHook string
	Argv          []string
	Env           []string
	EnvFiles      []string
	EnvAfter      []EnvOp
	Workdir       string
	Cred          Credential
	ImportUsers   []Account
	Unprivileged  bool
	Umask         int
	LogLevel      int // lowest slog.Level that Run's logger takes

	// EarlyHelperPID, when not 0, is the FUSE helper Run started
	// (earlyfuse_linux.go): fdImage is then its detached mount.
	EarlyHelperPID int

	// MountHelperArgs: Spec.MountHelperArgs.
	MountHelperArgs []string `json:"mountHelperArgs,omitempty"`

	tempUDIMount  bool         // Run made UDIMount and removes it
	restoreLimits func() error // (init) puts back the caller's resource limits
}

// statusMsg is one line from the namespace init to Run.
type statusMsg struct {
	Log  *logMsg `json:"log,omitempty"`
	Err  *errMsg `json:"err,omitempty"`
	Exit *int    `json:"exit,omitempty"`
}

type logMsg struct {
	Level int               `json:"level"`
	Msg   string            `json:"msg"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

type errMsg struct {
	Kind string `json:"kind"`
	Msg  string `json:"msg"`
}

// validate checks what Run can check before starting anything. Errors wrap
// ErrSpec or ErrBadVolume.
func (s *Spec) validate() error {
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		return fmt.Errorf("%w: no command", ErrSpec)
	}
	if !path.IsAbs(s.UDIMount) || path.Clean(s.UDIMount) != s.UDIMount || s.UDIMount == "/" {
		return fmt.Errorf("%w: udiMount %q must be a clean absolute path other than /", ErrSpec, s.UDIMount)
	}
	if s.Shared != nil || s.Mode == MountShared {
		switch {
		case s.Shared == nil || s.Mode != MountShared:
			return fmt.Errorf("%w: a shared mount needs mount mode %q, and that mode a shared mount", ErrSpec, MountShared)
		case s.Shared.Root == nil || s.Shared.Hold == nil || !path.IsAbs(s.Shared.Path):
			return fmt.Errorf("%w: shared mount without its path, root or reference", ErrSpec)
		case s.Unprivileged:
			return fmt.Errorf("%w: shared mounts are for the setuid runtime, not unprivileged mode", ErrSpec)
		case s.LocalRoot != "":
			return fmt.Errorf("%w: both a shared mount and a local root", ErrSpec)
		}
	}
	switch {
	case s.Shared != nil:
	case s.Image != nil && s.LocalRoot != "":
		return fmt.Errorf("%w: both an image and a local root", ErrSpec)
	case s.Image == nil && s.LocalRoot == "":
		return fmt.Errorf("%w: neither an image nor a local root", ErrSpec)
	case s.LocalRoot != "" && (!path.IsAbs(s.LocalRoot) || s.LocalRoot == "/"):
		return fmt.Errorf("%w: local root %q must be an absolute path other than /", ErrSpec, s.LocalRoot)
	}
	switch s.Mode {
	case "", MountAuto, MountLoop, MountFUSE, MountShared:
	default:
		return fmt.Errorf("%w: unknown mount mode %q", ErrSpec, s.Mode)
	}
	for _, f := range s.EnvFiles {
		if f == "" || strings.ContainsRune(f, 0) {
			return fmt.Errorf("%w: env file name %q", ErrSpec, f)
		}
	}
	if len(s.EnvAfter) > 0 && len(s.EnvFiles) == 0 {
		return fmt.Errorf("%w: EnvAfter without EnvFiles", ErrSpec)
	}
	if s.Workdir != "" && !path.IsAbs(s.Workdir) {
		return fmt.Errorf("%w: workdir %q is not absolute", ErrSpec, s.Workdir)
	}
	if s.Unprivileged && (s.PreMountHook != "" || s.PostMountHook != "") {
		return fmt.Errorf("%w: site mount hooks cannot run in unprivileged mode", ErrSpec)
	}
	for name := range etcNames(s.EtcFiles, s.EtcData) {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			return fmt.Errorf("%w: etc file name %q", ErrSpec, name)
		}
		switch name {
		case "passwd", "group", "mtab":
			return fmt.Errorf("%w: etc file %q is generated, not copied", ErrSpec, name)
		}
	}
	for _, v := range s.Volumes {
		src, err := cleanVolumePath(v.Source)
		if err != nil || src != v.Source {
			return fmt.Errorf("%w: source %q must be a clean absolute path", ErrBadVolume, v.Source)
		}
		dst, err := cleanVolumePath(v.Dest)
		if err != nil || dst != v.Dest {
			return fmt.Errorf("%w: destination %q must be a clean absolute path", ErrBadVolume, v.Dest)
		}
		if v.Site {
			err = CheckSiteDest(v.Dest)
		} else {
			err = CheckUserDest(v.Dest)
		}
		if err != nil {
			return fmt.Errorf("%w: %s:%s: %v", ErrBadVolume, v.Source, v.Dest, err)
		}
		switch v.Propagation {
		case "", "private", "slave":
		default:
			return fmt.Errorf("%w: %s:%s: propagation %q", ErrBadVolume, v.Source, v.Dest, v.Propagation)
		}
		if v.PerNodeCache != nil {
			if err := s.PerNodeCache.Check(v, s.Unprivileged); err != nil {
				return err
			}
		}
	}
	if err := s.Cred.validate(); err != nil {
		return err
	}
	for _, a := range s.ImportUsers {
		if err := a.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (a *Account) validate() error {
	bad := func(s string) bool { return strings.ContainsAny(s, ":\n\x00") }
	if a.Name == "" || bad(a.Name) || bad(a.Home) || bad(a.Shell) || bad(a.Gecos) || bad(a.GroupName) || strings.Contains(a.GroupName, ",") {
		return fmt.Errorf("%w: imported user %q: name, group name, home, shell and gecos must be free of ':' and newlines", ErrSpec, a.Name)
	}
	return nil
}

func (c *Credential) validate() error {
	bad := func(s string) bool { return strings.ContainsAny(s, ":\n\x00") }
	if c.User == "" || bad(c.User) || bad(c.Home) || bad(c.Shell) || bad(c.Gecos) {
		return fmt.Errorf("%w: credential: user name, home, shell and gecos must be set and free of ':' and newlines", ErrSpec)
	}
	for gid, name := range c.GroupNames {
		if name == "" || bad(name) || strings.Contains(name, ",") {
			return fmt.Errorf("%w: credential: group %d name %q", ErrSpec, gid, name)
		}
	}
	return nil
}

// etcNames yields the names of the site's /etc files, copied and
// generated.
func etcNames(files map[string]string, data map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for name := range files {
			if !yield(name) {
				return
			}
		}
		for name := range data {
			if !yield(name) {
				return
			}
		}
	}
}

// Check applies the site's perNodeCache rules to the perNodeCache volume
// v (Run checks them too). Errors wrap ErrUnavailable (no perNodeCache
// volumes here: no perNodeCachePath, no mkfs, unprivileged mode),
// ErrBadVolume (v asks for what the site does not allow) or ErrSpec.
func (c *PerNodeCacheConfig) Check(v Volume, unprivileged bool) error {
	p := v.PerNodeCache
	name := "perNodeCache volume " + v.Dest
	allowed := c.AllowedFsTypes
	if len(allowed) == 0 {
		allowed = []string{"xfs"}
	}
	switch {
	case unprivileged:
		return fmt.Errorf("%w: %s: a perNodeCache volume is a loop-mounted file system made as root: it needs shifter installed setuid root (or run by root), not unprivileged mode", ErrUnavailable, name)
	case c.Dir == "":
		return fmt.Errorf("%w: %s: perNodeCachePath is not set in udiRoot.conf, so this node has no place for perNodeCache volumes", ErrUnavailable, name)
	case !path.IsAbs(c.Dir):
		return fmt.Errorf("%w: perNodeCachePath %q is not an absolute path", ErrSpec, c.Dir)
	case p.Size <= 0 || p.BlockSize <= 0:
		return fmt.Errorf("%w: %s: size %d and block size %d must be above 0", ErrBadVolume, name, p.Size, p.BlockSize)
	case c.SizeLimit > 0 && p.Size > c.SizeLimit:
		return fmt.Errorf("%w: %s: size %d bytes is above the site's limit, perNodeCacheSizeLimit, of %d bytes", ErrBadVolume, name, p.Size, c.SizeLimit)
	case p.Method != "loop":
		return fmt.Errorf("%w: %s: method %q is not supported (only loop)", ErrBadVolume, name, p.Method)
	case !slices.Contains(PerNodeCacheFsTypes, p.FsType):
		return fmt.Errorf("%w: %s: file system %q is not supported (%s)", ErrBadVolume, name, p.FsType, strings.Join(PerNodeCacheFsTypes, ", "))
	case !slices.Contains(allowed, p.FsType):
		return fmt.Errorf("%w: %s: file system %s is not allowed here (perNodeCacheAllowedFsType: %s)", ErrBadVolume, name, p.FsType, strings.Join(allowed, " "))
	case !path.IsAbs(c.Mkfs[p.FsType]):
		return fmt.Errorf("%w: %s: no mkfs program for %s on this node (mkfs.%s; udiRoot.conf mkfsXfsPath)", ErrUnavailable, name, p.FsType, p.FsType)
	}
	return nil
}
