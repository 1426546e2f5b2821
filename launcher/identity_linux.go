// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"errors"
	"fmt"
	"log/slog"
	"os/user"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/mountns"
)

// RunMode is how shifter was started.
type RunMode int

const (
	// ModeUser: an ordinary user and a binary that is not setuid; the
	// container is built in an unprivileged user namespace.
	ModeUser RunMode = iota
	// ModeRoot: root ran shifter (real and effective uid 0).
	ModeRoot
	// ModeSetuid: an ordinary user ran the setuid-root binary.
	ModeSetuid
)

func (m RunMode) String() string {
	switch m {
	case ModeRoot:
		return "root"
	case ModeSetuid:
		return "setuid"
	}
	return "unprivileged"
}

// DetectMode tells the run mode from the process's credentials. A setuid
// installation is disabled by removing the setuid bit (chmod u-s): shifter
// then runs every user in the unprivileged mode.
func DetectMode() (RunMode, error) {
	ruid, euid, _ := unix.Getresuid()
	switch {
	case euid == 0 && ruid == 0:
		return ModeRoot, nil
	case euid == 0:
		return ModeSetuid, nil
	case ruid == euid:
		return ModeUser, nil
	}
	return 0, fmt.Errorf("unsupported credentials: real uid %d, effective uid %d (shifter must be setuid root or not setuid)", ruid, euid)
}

// CallerCredential returns the identity of the caller: the real uid and
// gid, the supplementary groups of the process, and names, home, shell
// and gecos from the host's NSS (so LDAP and sssd users work). It runs
// before anything enters the image.
func CallerCredential() (mountns.Credential, error) {
	c := mountns.Credential{UID: uint32(unix.Getuid()), GID: uint32(unix.Getgid())}
	gs, err := unix.Getgroups()
	if err != nil {
		return c, fmt.Errorf("get groups: %w", err)
	}
	for _, g := range gs {
		if !slices.Contains(c.Groups, uint32(g)) {
			c.Groups = append(c.Groups, uint32(g))
		}
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(c.UID), 10))
	if err != nil {
		return c, failf(ExitUnknownUser, "look up uid %d: %v", c.UID, err)
	}
	c.User, c.Home, c.Gecos = u.Username, u.HomeDir, u.Name
	c.Shell = loginShell(c.UID)
	c.GroupNames = map[uint32]string{}
	for _, g := range append([]uint32{c.GID}, c.Groups...) {
		if _, done := c.GroupNames[g]; done {
			continue
		}
		grp, err := user.LookupGroupId(strconv.FormatUint(uint64(g), 10))
		var unknown user.UnknownGroupIdError
		switch {
		case errors.As(err, &unknown):
			if g == c.GID {
				return c, failf(ExitUnknownUser, "look up gid %d: %v", g, err)
			}
			continue // a supplementary group without a name: kept, unnamed
		case err != nil:
			return c, failf(ExitUnknownUser, "look up gid %d: %v", g, err)
		}
		c.GroupNames[g] = grp.Name
	}
	return c, nil
}

// ImportUsers looks up the udiRoot.conf usersToImport names in the host's
// NSS (LDAP and sssd included) for the container's /etc/passwd, with the
// names of their primary groups. A name the host does not know is left
// out with a warning (a site may list a daemon's account that some nodes
// lack); a failed lookup is an error.
func ImportUsers(names []string, log *slog.Logger) ([]mountns.Account, error) {
	var out []mountns.Account
	for _, name := range names {
		u, err := user.Lookup(name)
		var unknown user.UnknownUserError
		switch {
		case errors.As(err, &unknown):
			log.Warn("usersToImport: no such user on this host, left out", "user", name)
			continue
		case err != nil:
			return nil, failf(ExitUnknownUser, "usersToImport: look up %s: %v", name, err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, failf(ExitUnknownUser, "usersToImport: %s has uid %q gid %q", name, u.Uid, u.Gid)
		}
		a := mountns.Account{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Gecos: u.Name, Home: u.HomeDir, Shell: loginShell(uint32(uid))}
		if g, err := user.LookupGroupId(u.Gid); err == nil {
			a.GroupName = g.Name
		}
		out = append(out, a)
	}
	return out, nil
}

// asCaller runs fn with the caller's effective uid and gid when shifter
// is setuid, so that files are opened (and gateway credentials made) with
// the caller's permissions, not root's. The change is process-wide (all
// threads) and undone before returning.
func asCaller(mode RunMode, fn func() error) error {
	if mode != ModeSetuid {
		return fn()
	}
	egid := unix.Getegid()
	if err := syscall.Setegid(unix.Getgid()); err != nil {
		return fail(ExitSoftware, fmt.Errorf("set effective gid: %w", err))
	}
	if err := syscall.Seteuid(unix.Getuid()); err != nil {
		syscall.Setegid(egid)
		return fail(ExitSoftware, fmt.Errorf("set effective uid: %w", err))
	}
	ferr := fn()
	if err := syscall.Seteuid(0); err != nil {
		return fail(ExitSoftware, fmt.Errorf("restore effective uid: %w", err))
	}
	if err := syscall.Setegid(egid); err != nil {
		return fail(ExitSoftware, fmt.Errorf("restore effective gid: %w", err))
	}
	return ferr
}
