// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// prepare decides the mount mode, checks what the chosen mode needs, and
// fills the init's config.
func prepare(spec *Spec, log *slog.Logger) (*initConfig, error) {
	cfg := &initConfig{
		ImagePath:     spec.ImagePath,
		HasImage:      spec.Image != nil && spec.Shared == nil,
		LocalRoot:     spec.LocalRoot,
		MountHelper:   spec.MountHelper,
		UDIMount:      spec.UDIMount,
		Volumes:       spec.Volumes,
		PerNodeCache:  spec.PerNodeCache,
		EtcFiles:      spec.EtcFiles,
		EtcData:       spec.EtcData,
		PreMountHook:  spec.PreMountHook,
		PostMountHook: spec.PostMountHook,
		Argv:          spec.Argv,
		Env:           spec.Env,
		EnvFiles:      spec.EnvFiles,
		EnvAfter:      spec.EnvAfter,
		Workdir:       spec.Workdir,
		Cred:          spec.Cred,
		ImportUsers:   spec.ImportUsers,
		Unprivileged:  spec.Unprivileged,
	}
	cfg.MountHelperArgs = spec.MountHelperArgs
	if cfg.ImagePath == "" && spec.Image != nil {
		cfg.ImagePath = spec.Image.Name()
	}
	old := unix.Umask(0o022)
	unix.Umask(old)
	cfg.Umask = old
	cfg.LogLevel = int(slog.LevelError + 4)
	for _, l := range []slog.Level{slog.LevelError, slog.LevelWarn, slog.LevelInfo, slog.LevelDebug} {
		if log.Enabled(context.Background(), l) {
			cfg.LogLevel = int(l)
		}
	}

	if spec.Unprivileged {
		if err := checkUserNS(); err != nil {
			return nil, err
		}
		if spec.Cred.UID != uint32(os.Getuid()) || spec.Cred.GID != uint32(os.Getgid()) {
			return nil, fmt.Errorf("%w: unprivileged mode runs as the caller (uid %d gid %d), not uid %d gid %d",
				ErrSpec, os.Getuid(), os.Getgid(), spec.Cred.UID, spec.Cred.GID)
		}
		if _, err := os.Stat(spec.UDIMount); err != nil {
			// The user cannot create the site's udiMount; any empty
			// directory will do as the mount point in the namespace.
			d, err := os.MkdirTemp("", "shifter-udi-")
			if err != nil {
				return nil, fmt.Errorf("%w: udiMount %s is missing and no temporary directory can stand in: %v", ErrSetup, spec.UDIMount, err)
			}
			log.Debug("udiMount missing, using a temporary directory", "udiMount", spec.UDIMount, "path", d)
			cfg.UDIMount, cfg.tempUDIMount = d, true
		}
	} else if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: building a container needs root (setuid shifter) or unprivileged mode", ErrSetup)
	}

	if err := checkFileSizeLimit(cfg); err != nil {
		return nil, err
	}

	if spec.LocalRoot != "" {
		cfg.Mode = ""
		log.Info("mounting local root", "path", spec.LocalRoot)
		return cfg, nil
	}
	if spec.Shared != nil {
		cfg.Mode, cfg.SharedPath = MountShared, spec.Shared.Path
		log.Info("image mount mode", "mode", string(MountShared), "reason", "shifterd's shared mount of the image", "mount", spec.Shared.Path)
		return cfg, nil
	}
	mode, reason := chooseMode(spec)
	cfg.Mode = mode
	if mode == "" {
		return nil, fmt.Errorf("%w: %s", ErrSpec, reason)
	}
	if mode == MountFUSE {
		if err := checkFUSE(spec); err != nil {
			if spec.Mode != MountFUSE {
				return nil, fmt.Errorf("%w (%s)", err, reason)
			}
			return nil, err
		}
	}
	if mode == MountLoop && spec.Mode != MountLoop {
		// Auto: the loop mount can still fail in the init (no free device,
		// loop ioctls denied, the image's compressor missing from the
		// kernel); the init then falls back to FUSE, if FUSE can work.
		cfg.FallbackFUSE = true
		if err := checkFUSE(spec); err != nil {
			cfg.NoFUSE = err.Error()
		}
	}
	log.Info("image mount mode", "mode", string(mode), "reason", reason, "image", cfg.ImagePath)
	return cfg, nil
}

// chooseMode returns the mount mode for spec and why ("" when the
// requested mode is impossible, with the reason).
func chooseMode(spec *Spec) (MountMode, string) {
	loopOK, why := loopUsable(spec.Unprivileged)
	switch spec.Mode {
	case MountLoop:
		if spec.Unprivileged {
			return "", "loop mode needs root; unprivileged mode mounts with FUSE"
		}
		return MountLoop, "requested"
	case MountFUSE:
		return MountFUSE, "requested"
	}
	if loopOK {
		return MountLoop, "auto: " + why
	}
	return MountFUSE, "auto: " + why
}

// loopUsable reports whether loop mounting is possible, and why (not).
func loopUsable(unprivileged bool) (bool, string) {
	if unprivileged {
		return false, "unprivileged mode, loop devices need root"
	}
	if os.Geteuid() != 0 {
		return false, "not root"
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return false, "no /dev/loop-control"
	}
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil || !hasFilesystem(b, "squashfs") {
		return false, "no squashfs in /proc/filesystems"
	}
	return true, "root, /dev/loop-control and kernel squashfs present"
}

func hasFilesystem(procFilesystems []byte, name string) bool {
	for _, line := range bytes.Split(procFilesystems, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) > 0 && f[len(f)-1] == name {
			return true
		}
	}
	return false
}

// checkFUSE checks what fuse mode needs: /dev/fuse usable by the mounting
// process, and the shifter-mount helper.
func checkFUSE(spec *Spec) error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: opening /dev/fuse: %v", ErrFUSE, err)
	}
	f.Close()
	if spec.MountHelper == "" {
		return fmt.Errorf("%w: no shifter-mount helper found (fuse mode needs it installed)", ErrFUSE)
	}
	if !path.IsAbs(spec.MountHelper) {
		return fmt.Errorf("%w: the shifter-mount helper path %q is not absolute", ErrFUSE, spec.MountHelper)
	}
	if err := unix.Access(spec.MountHelper, unix.X_OK); err != nil {
		return fmt.Errorf("%w: shifter-mount helper %s: %v", ErrFUSE, spec.MountHelper, err)
	}
	return nil
}

// checkUserNS reports what keeps an unprivileged user from creating a user
// namespace, as far as the sysctls tell.
func checkUserNS() error {
	for _, c := range []struct{ file, what string }{
		{"/proc/sys/user/max_user_namespaces", "user namespaces are disabled (user.max_user_namespaces = 0)"},
		{"/proc/sys/kernel/unprivileged_userns_clone", "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)"},
	} {
		b, err := os.ReadFile(c.file)
		if err == nil && strings.TrimSpace(string(b)) == "0" {
			return fmt.Errorf("%w: %s", ErrUserNS, c.what)
		}
	}
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		return fmt.Errorf("%w: kernel without user namespaces: %v", ErrUserNS, err)
	}
	return nil
}

// checkFileSizeLimit fails when the caller's file size limit (ulimit -f)
// would cut a file that the init writes into the container's /etc, and
// the init cannot lift it: without CAP_SYS_RESOURCE it can raise the soft
// limit only up to the hard one. Run checks this before it starts the
// init, so the failure comes before anything is changed.
func checkFileSizeLimit(cfg *initConfig) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		return fmt.Errorf("%w: reading the file size limit: %v", ErrSetup, err)
	}
	if lim.Max == unix.RLIM_INFINITY || !cfg.Unprivileged && hasCapability(unix.CAP_SYS_RESOURCE) {
		return nil
	}
	need := map[string]int64{
		"passwd": int64(len(passwdFile(cfg.Cred, cfg.ImportUsers))),
		"group":  int64(len(groupFile(cfg.Cred, cfg.ImportUsers))),
	}
	for name, host := range cfg.EtcFiles {
		if st, err := os.Stat(host); err == nil {
			need[name] = st.Size()
		}
	}
	for name, b := range cfg.EtcData {
		need[name] = int64(len(b))
	}
	for name, size := range need {
		if uint64(size) > lim.Max {
			return fmt.Errorf("%w: the file size limit (ulimit -f) of %d bytes is below the %d bytes of the container's /etc/%s", ErrSetup, lim.Max, size, name)
		}
	}
	return nil
}

// hasCapability reports whether the calling thread has capability c in
// its effective set.
func hasCapability(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(uint(c)%32)) != 0
}
