// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"io"
	"log/slog"
	"os"
)

// MountMode says how the image file is mounted.
type MountMode string

const (
	MountAuto MountMode = "auto" // loop where allowed, else fuse
	MountLoop MountMode = "loop" // kernel squashfs on a loop device
	MountFUSE MountMode = "fuse" // the Go reader, served by shifter-mount outside the container
	// MountShared binds the node's shared mount of the image, made by
	// shifterd (Spec.Shared), instead of mounting the image.
	MountShared MountMode = "shifterd"
)

// Shared is an image's shared mount on the node, from shifterd.
type Shared struct {
	// Path is the mount on the host (in a directory only root can
	// search); Root is its root directory, opened O_PATH: Path must still
	// lead to it when the init binds it.
	Path string
	Root *os.File
	// Hold is the reference (shifterd's connection): the namespace init
	// keeps it open until the container ends, so the mount stays while
	// the container runs, and goes with it however it ends.
	Hold *os.File
}

// Volume is one bind mount into the container.
type Volume struct {
	Source   string // host path (user volumes: opened with the caller's credentials)
	Dest     string // path inside the container
	ReadOnly bool   // recursive read-only
	// Site marks a site-configured mount (udiRoot.conf siteFs); destination
	// rules for user volumes do not apply to it, and its source is opened
	// as root.
	Site bool
	// Recursive records Shifter's "rec" flag. Every bind is recursive here,
	// with every submount made nosuid (and nodev, except for sources under
	// /dev of site volumes), so the flag changes nothing.
	Recursive bool
	// Propagation of a site volume: "" or "private" (default) or "slave"
	// (host mounts below the source keep appearing in the container).
	Propagation string
	// PerNodeCache, when set, makes this a perNodeCache volume: a new
	// file system (Spec.PerNodeCache says where and how) mounted
	// read-write, nosuid, nodev at Dest, its root owned by Cred. Source
	// is ignored, as in Shifter.
	PerNodeCache *PerNodeCache
}

// PerNodeCacheConfig is the site's setting of perNodeCache volumes
// (udiRoot.conf perNodeCache*, mkfsXfsPath).
type PerNodeCacheConfig struct {
	// Dir is where the backing files are made (perNodeCachePath): an
	// absolute path, trusted (the site's). "" refuses perNodeCache
	// volumes.
	Dir string
	// SizeLimit is the largest size allowed, in bytes (0: no limit).
	SizeLimit int64
	// AllowedFsTypes are the file systems allowed (nil: xfs only).
	AllowedFsTypes []string
	// Mkfs maps a file system type to the absolute path of its mkfs
	// program (trusted: root's, not writable by others).
	Mkfs map[string]string
}

// Credential is the identity the command runs as.
type Credential struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups (excluding or including GID; both fine)
	User     string   // login name, for /etc/passwd
	Home     string
	Shell    string
	Gecos    string
	// GroupNames maps gid to group name for every gid in GID and Groups,
	// for /etc/group.
	GroupNames map[uint32]string
}

// Account is a host user copied into the container's /etc/passwd.
type Account struct {
	Name     string
	UID, GID uint32
	Gecos    string
	Home     string
	Shell    string
	// GroupName names GID for /etc/group ("" = "group<gid>").
	GroupName string
}

// Prefork is a namespace init forked before the runtime started: its pid
// and the launcher's end of the socket pair it waits on.
type Prefork struct {
	PID  int
	Sock *os.File
}

// Spec is everything needed to build a container and run one command in
// it. The runtime front end (cmd/shifter) fills it from the command line,
// udiRoot.conf and the image metadata; Run does the rest.
type Spec struct {
	// Prefork, when not nil, is a namespace init that the front end
	// forked before its Go runtime started (cmd/shifter's constructor):
	// Run hands it the init's descriptors instead of starting one, when
	// it can (privileged mode, stdio as files), and otherwise closes its
	// socket, which ends it.
	Prefork *Prefork

	// Image is the squashfs file, opened by the caller (so the path cannot
	// be swapped between checks and use). ImagePath names it in messages.
	Image     *os.File
	ImagePath string
	// LocalRoot, when set, is a host directory used as the container's
	// root instead of an image (shifter --image=local:DIR).
	LocalRoot string

	Mode MountMode
	// Shared, with Mode MountShared, is the image's shared mount from
	// shifterd; Image may then be nil. Not in unprivileged mode.
	Shared *Shared
	// MountHelper is the absolute path of the shifter-mount binary that
	// serves fuse mode.
	MountHelper string
	// MountHelperArgs are added to the helper's options when it runs as
	// root (the node cache's: --cache-dir and the like; the cache
	// directory is root's), and left out when it runs as the user.
	MountHelperArgs []string
	// UDIMount is the host directory where the root is assembled
	// (udiRoot.conf udiMount), inside the private namespace only. Run
	// creates it when missing (privileged mode); in unprivileged mode it
	// must exist. Nothing is written to it on the host: a tmpfs covers it
	// in the namespace.
	UDIMount string

	Volumes []Volume // site volumes first, then user volumes, in order
	// PerNodeCache is the site's setting for perNodeCache volumes.
	PerNodeCache PerNodeCacheConfig

	// Site files copied into the container's /etc (name -> host path),
	// e.g. "nsswitch.conf" -> "/etc/nsswitch.conf", plus hosts, resolv.conf.
	EtcFiles map[string]string
	// EtcData are generated files for the container's /etc (name ->
	// content), e.g. Shifter's files-only nsswitch.conf; a name in both
	// takes EtcData's. The same names are refused as for EtcFiles.
	EtcData map[string][]byte

	// Hooks run as root with the container root (still writable) as
	// working directory and a fixed environment (PATH, LC_ALL=C), before
	// (pre) and after (post) the site and user volumes are mounted; /proc,
	// /sys, /dev, /tmp and the /etc files are in place before either. An
	// absolute path to an existing file is run as "/bin/sh FILE" (Shifter's
	// way), or directly when it is an ELF program; anything else as
	// "/bin/sh -c HOOK". A hook exiting non-zero fails Run with ErrHook.
	// Hooks run in a mount namespace of their own in which every mount is
	// read-only except the container root's own file system; the mounts
	// they make on the container root appear in the container (see
	// docs/shifter.md). Not allowed in unprivileged mode.
	PreMountHook, PostMountHook string

	// Argv is the command and its arguments; Argv[0] without a slash is
	// looked up in the PATH of Env inside the container (default
	// /usr/local/bin:/usr/bin:/bin).
	Argv []string
	// Env is the command's complete environment, passed exactly, when
	// EnvFiles is empty; otherwise its start, which the env files and
	// EnvAfter complete.
	Env []string
	// EnvFiles are --env-file paths, read as Shifter reads them: in the
	// container (after its root is entered, so a path is the container's,
	// relative ones from Workdir), with the user's credentials (a file the
	// user cannot read is refused, ErrAccess, even where root could read
	// it), and without magic links. Each line NAME=VALUE (ParseEnvFile)
	// is set in Env, file after file; then EnvAfter is applied. A missing
	// or malformed file fails Run with ErrEnvFile.
	EnvFiles []string
	// EnvAfter are the changes applied after the env files (--env, the
	// modules' and the site's siteEnv*): only with EnvFiles.
	EnvAfter []EnvOp
	// Workdir is the working directory inside the container ("" = /),
	// resolved inside the container root with the user's credentials and
	// without magic links (/proc/self/fd/N, /proc/PID/cwd), and entered
	// before the command starts. When the user cannot enter it there, the
	// command starts in / and Run logs a warning.
	Workdir string

	Cred Credential
	// ImportUsers are further host users for the container's /etc/passwd
	// (udiRoot.conf usersToImport, e.g. the account a daemon runs as),
	// with their primary groups in /etc/group. An entry whose name or uid
	// is already there (root, the user) is left out.
	ImportUsers []Account

	// Unprivileged: build the container in a user namespace (no setuid),
	// mapping the caller's uid and gid to themselves, with fuse mode.
	// Cred must be the caller's. Supplementary groups stay those of the
	// process (unmapped ones show as 65534 inside, as do files of the image
	// owned by root).
	Unprivileged bool
	// Setuid: the process runs setuid root on behalf of Cred
	// (informational; Run behaves the same as for root).
	Setuid bool

	Stdin          io.Reader // nil: os.Stdin
	Stdout, Stderr io.Writer // nil: os.Stdout, os.Stderr
	// Logger receives Run's messages: the mount mode chosen and why
	// (Info), a working directory fallback (Warn), a command that cannot
	// be executed (Error), mount details (Debug). Default discards.
	Logger *slog.Logger
}
