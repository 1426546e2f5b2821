// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// runAs is the ordinary user the runtimes run as (not with --as-root).
type runAs struct {
	Name   string   `json:"name"`
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
	Home   string   `json:"home"`
}

// lookupUser finds name in the host's user database, with its
// supplementary groups (what `setpriv --init-groups` would give it).
func lookupUser(name string) (*runAs, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("--user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("--user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("--user %s: gid %q: %w", name, u.Gid, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("--user %s is root: use --as-root", name)
	}
	r := &runAs{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("--user %s: groups: %w", name, err)
	}
	for _, g := range ids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--user %s: group %q: %w", name, g, err)
		}
		r.Groups = append(r.Groups, uint32(n))
	}
	if !slices.Contains(r.Groups, r.GID) {
		r.Groups = append(r.Groups, r.GID)
	}
	return r, nil
}

// credential is what exec gives the user's processes: the driver (root)
// sets their uids, gids and groups between fork and exec, so no setpriv
// or su runs inside the timed command.
func (u *runAs) credential() *syscall.Credential {
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups}
}

// env is base with the user's USER, LOGNAME and HOME (ch-run insists on
// USER) and without SHIFTER_CONFIG (a setuid shifter ignores it anyway).
func (u *runAs) env(base []string) []string {
	var out []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "USER", "LOGNAME", "HOME", "SHIFTER_CONFIG":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "USER="+u.Name, "LOGNAME="+u.Name, "HOME="+u.Home)
}

// makeSetuidDir creates the root-owned 0755 directory that holds the
// setuid shifter copies and their udiRoot.conf files, under parent: a
// setuid shifter reads its configuration only through a path of
// root-owned directories that nobody else can write (udiroot.OpenTrusted),
// and the kernel ignores the setuid bit on a nosuid mount.
func makeSetuidDir(parent string) (string, error) {
	if err := checkTrustedPath(parent); err != nil {
		return "", fmt.Errorf("--setuid-dir: %w", err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(parent, &fs); err != nil {
		return "", fmt.Errorf("--setuid-dir: statfs %s: %w", parent, err)
	}
	if fs.Flags&unix.ST_NOSUID != 0 {
		return "", fmt.Errorf("--setuid-dir: %s is on a nosuid mount: the setuid shifter would not be setuid there; name another directory", parent)
	}
	dir, err := os.MkdirTemp(parent, "startbench-")
	if err != nil {
		return "", fmt.Errorf("--setuid-dir: %w", err)
	}
	if err := os.Chown(dir, 0, 0); err != nil {
		os.Remove(dir)
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.Remove(dir)
		return "", err
	}
	return dir, nil
}

// checkTrustedPath checks that every directory from / to dir is owned by
// root and writable by nobody else, as the setuid shifter will.
func checkTrustedPath(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := dir; ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		switch {
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return fmt.Errorf("%s is not a directory (a symlink?)", p)
		case st.Uid != 0:
			return fmt.Errorf("%s is owned by uid %d, not root", p, st.Uid)
		case st.Mode&0o022 != 0:
			return fmt.Errorf("%s is writable by group or others (mode %#o)", p, st.Mode&0o7777)
		}
		if p == "/" {
			return nil
		}
	}
}

// writeRootFile writes a root-owned 0644 file.
func writeRootFile(p string, b []byte) error {
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return err
	}
	if err := os.Chown(p, 0, 0); err != nil {
		return err
	}
	return os.Chmod(p, 0o644)
}

// buildSetuidShifter builds cmd/shifter from the module at src into
// dir/shifter-<mode>, reading dir/udiRoot-<mode>.conf (a setuid shifter
// ignores SHIFTER_CONFIG) and taking binDir/shifter-mount as its FUSE
// helper, root-owned with mode 4755.
func buildSetuidShifter(ctx context.Context, src, dir, binDir, mode string) (string, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		if _, serr := os.Stat("/usr/local/go/bin/go"); serr != nil {
			return "", fmt.Errorf("find go to build the setuid shifter: %w", err)
		}
		goCmd = "/usr/local/go/bin/go"
	}
	out := filepath.Join(dir, "shifter-"+mode)
	ldflags := fmt.Sprintf("-s -w -X github.com/shifter-go/shifter/udiroot.DefaultPath=%s -X github.com/shifter-go/shifter/launcher.DefaultMountHelper=%s",
		filepath.Join(dir, "udiRoot-"+mode+".conf"), filepath.Join(binDir, "shifter-mount"))
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags", ldflags, "-o", out, "./cmd/shifter")
	cmd.Dir = src
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the setuid shifter (in %s): %w\n%s", src, err, b)
	}
	if err := os.Chown(out, 0, 0); err != nil {
		return "", err
	}
	if err := os.Chmod(out, os.ModeSetuid|0o755); err != nil {
		return "", err
	}
	return out, nil
}

// shifterMode is the imageMount of a shifter method, "" for the others.
func shifterMode(method string) string {
	switch method {
	case "shifter-loop":
		return "loop"
	case "shifter-fuse":
		return "fuse"
	case "shifterd":
		return "shifterd"
	}
	return ""
}

// userMethod says whether a method runs as the ordinary user: all but
// the floors, which mount (as root) themselves.
func userMethod(method string) bool {
	return method != "floor" && method != "floor-fuse"
}
