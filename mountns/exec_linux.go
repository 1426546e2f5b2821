// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// enterRoot makes root the root of the namespace: pivot_root, then the old
// root is detached (after making it a slave, so the detach cannot
// propagate anywhere). Where pivot_root is impossible (an initramfs root)
// it chroots instead. A pivoted root, unlike a chroot, lets the command
// create user namespaces of its own (Shifter issue #317).
func enterRoot(root string, log *initLogger) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("%w: entering %s: %v", ErrMount, root, err)
	}
	if err := unix.PivotRoot(".", "."); err == nil {
		if err := mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			return err
		}
		if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
			return fmt.Errorf("%w: detaching the old root: %v", ErrMount, err)
		}
	} else {
		log.debug("pivot_root impossible, using chroot", "err", err.Error())
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("%w: chroot %s: %v", ErrMount, root, err)
		}
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("%w: chdir /: %v", ErrMount, err)
	}
	return nil
}

// dropForCommand clears, on the calling thread (which forks the command),
// the bounding and ambient capability sets and the inheritable set, and
// sets no_new_privs. The command inherits all four; it loses the permitted
// and effective sets when it takes the user's uid (or, in a user
// namespace, at exec as a non-root user).
func dropForCommand(capLast int) error {
	for c := 0; c <= capLast; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clearing inheritable capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	return nil
}

// lookPath finds name in the container's PATH (from env) the way execvp
// does: names with a slash are used as they are.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	pathVar := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, dir := range strings.Split(pathVar, ":") {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH %s", name, pathVar)
}

// runCommand starts the command as the user, forwards signals to it until
// it ends, and returns its status: the exit code, 128+N for signal N, 127
// when it cannot be executed. helper is the pid of the FUSE server (0 if
// none), killed as soon as the command has ended; the caller reaps it.
func runCommand(cfg *initConfig, log *initLogger, capLast int, sigs <-chan os.Signal, helper int) (int, error) {
	if len(cfg.EnvFiles) > 0 {
		if err := readEnvFiles(cfg); err != nil {
			return -1, err
		}
		log.step("env files read")
	}
	// Looked up with the user's rights: as root it would tell whether a
	// file exists in a directory the user may not read.
	var argv0 string
	err := asUser(cfg.Cred, !cfg.Unprivileged, func() (err error) {
		argv0, err = lookPath(cfg.Argv[0], cfg.Env)
		return err
	})
	if err != nil {
		log.error("cannot execute the command", "err", err.Error())
		return 127, nil
	}
	if err := dropForCommand(capLast); err != nil {
		return -1, fmt.Errorf("%w: %v", ErrSetup, err)
	}
	if cfg.restoreLimits != nil {
		if err := cfg.restoreLimits(); err != nil {
			return -1, fmt.Errorf("%w: %v", ErrSetup, err)
		}
	}
	unix.Umask(cfg.Umask)
	markCloexecFrom(3)
	if err := checkNoDirDescriptors(); err != nil {
		return -1, err
	}
	// The command inherits the init's working directory, entered here:
	// os.StartProcess would chdir in the child, by path, with the init's
	// descriptors still open (/proc/self/fd/N would lead out of the
	// container).
	if err := enterWorkdir(cfg, log); err != nil {
		return -1, err
	}
	defer unix.Chdir("/")
	attr := &os.ProcAttr{
		Env:   cfg.Env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys: &syscall.SysProcAttr{
			Credential: &syscall.Credential{
				Uid: cfg.Cred.UID, Gid: cfg.Cred.GID, Groups: cfg.Cred.Groups,
				// A user namespace with setgroups denied keeps the
				// caller's own groups.
				NoSetGroups: cfg.Unprivileged,
			},
			Pdeathsig: unix.SIGKILL,
		},
	}
	if attr.Sys.Credential.Groups == nil {
		attr.Sys.Credential.Groups = []uint32{}
	}
	p, err := os.StartProcess(argv0, cfg.Argv, attr)
	if err != nil {
		log.error("cannot execute the command", "command", cfg.Argv[0], "err", err.Error())
		return 127, nil
	}
	log.step("command started", "pid", strconv.Itoa(p.Pid))
	done := make(chan *os.ProcessState, 1)
	go func() {
		ps, _ := p.Wait()
		done <- ps
	}()
	for {
		select {
		case s := <-sigs:
			if shouldForward(s) {
				_ = p.Signal(s)
			}
		case ps := <-done:
			log.step("command exited")
			// The FUSE server first, by pid: it has nothing left to
			// serve but what the command left behind, which is killed
			// next. Started with the scan below, its exit would keep
			// it in the namespace (and the scan going) for a few more
			// rounds.
			if helper > 0 {
				_ = unix.Kill(helper, unix.SIGKILL)
			}
			// Whatever the command left running in the container holds
			// its mounts (and the loop device): it ends with it.
			killStragglers(log, helper)
			log.step("stragglers killed")
			if ps == nil {
				return -1, fmt.Errorf("%w: waiting for the command", ErrSetup)
			}
			ws := ps.Sys().(syscall.WaitStatus)
			if ws.Signaled() {
				return 128 + int(ws.Signal()), nil
			}
			return ws.ExitStatus(), nil
		}
	}
}

// killStragglers kills every process in the init's mount namespace but
// the init itself and skip (the FUSE helper, killed already, which the
// init then reaps): the command's background processes and daemons.
// Processes can only have got there from the command (or the helper),
// since the namespace is private.
func killStragglers(log *initLogger, skip int) {
	if !hasChildrenBut(skip) {
		// The init is a child subreaper: every process the command
		// started, orphaned or not, is below it. None there, none
		// anywhere in the namespace (only root could have entered it).
		return
	}
	self := os.Getpid()
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		log.warn("cannot list the container's processes", "err", err.Error())
		return
	}
	for round := 0; round < 10; round++ {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return
		}
		killed := 0
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self || pid == skip {
				continue
			}
			if l, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && l == ns {
				if unix.Kill(pid, unix.SIGKILL) == nil {
					killed++
				}
			}
		}
		if killed == 0 {
			return
		}
		log.debug("killed processes left in the container", "count", strconv.Itoa(killed))
	}
}

// hasChildrenBut reports whether the init has a child other than skip
// (zombies included), or cannot tell.
func hasChildrenBut(skip int) bool {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return true
	}
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			return true
		}
		for _, f := range strings.Fields(string(b)) {
			if f != strconv.Itoa(skip) {
				return true
			}
		}
	}
	return false
}

// enterWorkdir makes cfg.Workdir the init's working directory (which the
// command inherits), or / with a warning when the user cannot enter it.
// It is resolved inside the container root with the user's credentials
// and no magic links (/proc/self/fd/N, /proc/PID/cwd), entered by
// descriptor as the user, and checked afterwards to lie under the root.
func enterWorkdir(cfg *initConfig, log *initLogger) error {
	wd := cfg.Workdir
	if wd == "" {
		wd = "/"
	}
	err := asUser(cfg.Cred, !cfg.Unprivileged, func() error { return chdirInRoot(wd) })
	if err != nil && wd != "/" {
		log.warn("working directory missing or not accessible in the container, using /", "path", wd, "err", err.Error())
		err = asUser(cfg.Cred, !cfg.Unprivileged, func() error { return chdirInRoot("/") })
	}
	if err != nil {
		return fmt.Errorf("%w: entering the working directory: %v", ErrSetup, err)
	}
	return nil
}

// chdirInRoot changes the working directory to wd, resolved inside the
// process's root without magic links, and checks that the result lies
// under the root.
func chdirInRoot(wd string) error {
	root, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	d, err := openInRoot(root, wd)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Fchdir(int(d.Fd())); err != nil {
		return err
	}
	// getcwd(2) names a directory outside the root "(unreachable)/...".
	cwd, err := unix.Getwd()
	if err != nil || !path.IsAbs(cwd) {
		_ = unix.Chdir("/")
		return fmt.Errorf("working directory %q is outside the container (%q, %v)", wd, cwd, err)
	}
	return nil
}

// checkNoDirDescriptors fails when the init still holds a descriptor above
// 2 (other than the status pipe) on a directory: the command must not
// start with a handle on the host's tree within its reach.
func checkNoDirDescriptors() error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("%w: listing descriptors: %v", ErrSetup, err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 || fd == fdStatus {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			// (filepath-securejoin keeps a handle on a procfs of its own,
			// which holds nothing of the host's tree.)
			var sfs unix.Statfs_t
			if unix.Fstatfs(fd, &sfs) == nil && sfs.Type == unix.PROC_SUPER_MAGIC {
				continue
			}
			target, _ := os.Readlink("/proc/self/fd/" + e.Name())
			return fmt.Errorf("%w: descriptor %d on directory %s still open", ErrSetup, fd, target)
		}
	}
	return nil
}

// readEnvFiles reads cfg.EnvFiles in the container, with the user's
// credentials, and completes cfg.Env with them and cfg.EnvAfter.
func readEnvFiles(cfg *initConfig) error {
	wd := cfg.Workdir
	if wd == "" {
		wd = "/"
	}
	var ops []EnvOp
	err := asUser(cfg.Cred, !cfg.Unprivileged, func() error {
		for _, p := range cfg.EnvFiles {
			full := p
			if !path.IsAbs(p) {
				full = path.Join(wd, p)
			}
			vars, err := readEnvFileInRoot(full, p, cfg.Cred.UID)
			if err != nil {
				return err
			}
			ops = append(ops, vars...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	cfg.Env = ApplyEnv(cfg.Env, append(ops, cfg.EnvAfter...))
	return nil
}

// readEnvFileInRoot reads and parses the env file at p, resolved inside
// the process's root without magic links, as the calling thread's
// credentials allow; name is the path as given, for messages.
func readEnvFileInRoot(p, name string, uid uint32) ([]EnvOp, error) {
	root, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSetup, err)
	}
	defer root.Close()
	h, err := pathrs.OpenatInRoot(root, p)
	if err == nil {
		defer h.Close()
		var f *os.File
		if f, err = pathrs.Reopen(h, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY); err == nil {
			defer f.Close()
			var st os.FileInfo
			if st, err = f.Stat(); err == nil && !st.Mode().IsRegular() {
				return nil, fmt.Errorf("%w: --env-file %s: not a regular file in the container", ErrEnvFile, name)
			}
			if err == nil {
				ops, err := ParseEnvFile(f, name)
				if err != nil {
					return nil, fmt.Errorf("%w: --env-file: %v", ErrEnvFile, err)
				}
				return ops, nil
			}
		}
	}
	switch {
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return nil, fmt.Errorf("%w: --env-file %s: not readable by uid %d in the container: %v", ErrAccess, name, uid, err)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return nil, fmt.Errorf("%w: --env-file %s: not found in the container (the path is the container's, as in Shifter: put the file in a directory the container sees, such as a --volume): %v", ErrEnvFile, name, err)
	}
	return nil, fmt.Errorf("%w: --env-file %s: %v", ErrEnvFile, name, err)
}
