// SPDX-License-Identifier: BSD-3-Clause

// Package mountns builds a container in a private mount namespace and runs
// one command in it as the calling user.
//
// The front end (cmd/shifter) fills a [Spec]; [Run] does the rest:
//
//   - Run re-executes the current binary (/proc/self/exe) as the namespace
//     init, in a new mount namespace (and, in unprivileged mode, a new user
//     namespace mapping the caller to themself). The Spec travels over a pipe
//     gob-encoded (strings as bytes: arguments, environment values and paths
//     need not be UTF-8). Any binary that imports this package serves as
//     that init: the package's init function takes over when argv[0] is the
//     init marker and never returns. The init refuses to run when it was started through a
//     setuid bit by anyone other than root (real uid != effective uid), so a
//     user cannot exec the setuid binary in init mode themself.
//   - The init mounts the image read-only, nosuid, nodev on a staging
//     directory: by loop device and kernel squashfs (loop mode; in auto
//     mode, a loop failure that FUSE would not meet, such as denied or
//     missing loop devices or no kernel squashfs, falls back to FUSE), by FUSE
//     served by shifter-mount, started as its child (fuse mode: the init
//     mounts /dev/fuse itself and hands the connection to the helper, which
//     runs as the user when the user may read the image file, as root
//     otherwise; it never execs the command and is killed when the command
//     ends), or by a read-only bind of Spec.LocalRoot.
//   - The container root is an overlay: the image as lower layer and a tmpfs
//     as upper layer, mounted on Spec.UDIMount. The tmpfs upper lets the init
//     create mount points anywhere (volumes at paths the image lacks, nested
//     ones included) and write the site files of /etc; once assembled, the
//     overlay is remounted read-only, so the container sees an image it cannot
//     change. The tmpfs lives and dies with the namespace.
//   - /proc: privileged mode mounts a fresh proc (host PID namespace, like
//     Shifter); unprivileged mode binds the host /proc (the kernel refuses a
//     fresh proc to a user namespace that does not own the PID namespace).
//     /sys, /dev (recursively, so GPUs, InfiniBand and /dev/shm work), /tmp
//     and /var/tmp are bound from the host, as Shifter does. Their mount
//     points are made only in the container's own file system, never
//     through an image's symlink into a bound host directory (a /var/tmp
//     that would need one is left out, with a warning).
//   - Site hooks run as root in a mount namespace of their own where every
//     mount but the container root's own file system is read-only, so the
//     image's symlinks cannot steer their writes onto the host; their
//     mounts on the container root propagate into the container.
//   - Volumes: every bind is recursive, and every mount of a user volume,
//     submounts included, is nosuid,nodev (and read-only with :ro). User
//     volume sources are opened with the caller's credentials; destinations
//     are resolved inside the container root (filepath-securejoin pathrs-lite)
//     and checked again after symlinks are resolved.
//   - The init then pivot_roots into the container (chroot when pivot_root is
//     impossible, e.g. on an initramfs root), and starts the command as a
//     child: the child has no capabilities (bounding, ambient, inheritable
//     cleared before the fork; permitted and effective lost with the uid),
//     the caller's groups, gid and uid, no_new_privs, and only fds 0, 1 and 2.
//     The init stays outside as a supervisor: it forwards signals, reports the
//     exit status, and when the command has ended it kills every process
//     left in the namespace (background processes of the command, which
//     would keep the mounts and the loop device, and the FUSE server). The
//     namespace dies with its last process, and with it every mount; the
//     loop device is autocleared. When the runtime's process dies, even of
//     SIGKILL, the init sees a lifeline pipe close (and is continued by
//     its parent-death signal, SIGCONT, if a ^Z stopped it) and kills
//     everything in the namespace before it exits.
//
// Unprivileged mode maps the caller to themself in a new user namespace
// (so the command runs with the caller's uid, as in the setuid case); the
// init keeps the capabilities it needs there as ambient capabilities and
// clears them before it starts anything. The init opens /dev/fuse and
// mounts the image itself, and hands the connection to shifter-mount as
// /dev/fd/N, so the helper needs no privilege. Since overlayfs cannot copy
// up the image's root-owned directories (the owner is not mapped in the
// namespace), the mount points and the /etc files are made in the upper
// layer before the overlay is mounted. In this mode the image's files show
// as owned by nobody (65534) inside, and /proc is the host's (bound).
//
// Timing: at debug level (Spec.Logger at slog.LevelDebug, shifter -v) the
// init logs every step of building and tearing down the container ("init
// step": at_ms since the init began, took_ms since the previous step), and
// in fuse mode starts shifter-mount with --log-level=debug, which logs its
// own start-up steps (opening the image, FUSE INIT, readiness). At other
// levels neither logs anything.
//
// Resource limits: the init lifts RLIMIT_FSIZE for its own writes (Run
// first checks that it can, when it lacks CAP_SYS_RESOURCE) and puts the
// caller's limit and umask back before it starts the command; the command
// gets the caller's limits unchanged.
//
// Signals: the caller's process forwards SIGHUP, SIGINT, SIGQUIT, SIGTERM,
// SIGUSR1, SIGUSR2, SIGALRM, SIGCONT and SIGWINCH to the init, which
// forwards them to the command; all three share a process group. The
// terminal signals (SIGINT, SIGQUIT, SIGHUP, SIGWINCH) are not forwarded
// while that group is the terminal's foreground group: the terminal has
// delivered them to the command already. A signal sent to the whole process
// group otherwise (scancel) reaches the command directly and forwarded, so
// it may see it twice. Job-control stops are not caught: ^Z stops all
// three, except that in loop mode the init holds them back while it holds
// the node-wide flock on /dev/loop-control (only around the loop ioctls)
// and stops itself once it has let go (afterwards the Go runtime, having
// caught them once, ignores further job-control stops in the init, which
// changes nothing for the command or the shell). A start waits at most 2
// seconds for that lock, then goes on without it (retrying on EBUSY), so a
// holder stopped by root's SIGSTOP blocks nobody. The FUSE server runs in
// a process group of its own.
package mountns
