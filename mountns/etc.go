// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"slices"
	"strings"
)

// passwdFile renders the container's /etc/passwd: root, the user, and the
// imported accounts whose name and uid are not taken yet.
func passwdFile(c Credential, imported []Account) []byte {
	var b strings.Builder
	if c.UID != 0 {
		b.WriteString("root:x:0:0:root:/root:/bin/sh\n")
	}
	line := func(name string, uid, gid uint32, gecos, home, shell string) {
		if shell == "" {
			shell = "/bin/sh"
		}
		if home == "" {
			home = "/"
		}
		fmt.Fprintf(&b, "%s:x:%d:%d:%s:%s:%s\n", name, uid, gid, gecos, home, shell)
	}
	line(c.User, c.UID, c.GID, c.Gecos, c.Home, c.Shell)
	for _, a := range importable(c, imported) {
		line(a.Name, a.UID, a.GID, a.Gecos, a.Home, a.Shell)
	}
	return []byte(b.String())
}

// importable returns the imported accounts whose name and uid are not
// root's, the user's or those of an earlier account.
func importable(c Credential, imported []Account) []Account {
	names := map[string]bool{"root": true, c.User: true}
	uids := map[uint32]bool{0: true, c.UID: true}
	var out []Account
	for _, a := range imported {
		if names[a.Name] || uids[a.UID] {
			continue
		}
		names[a.Name], uids[a.UID] = true, true
		out = append(out, a)
	}
	return out
}

// groupFile renders the container's /etc/group: root's group and every
// group of the user, the user listed as a member of the supplementary ones,
// then the primary groups of the imported accounts not listed yet. A gid
// without a name gets "group<gid>".
func groupFile(c Credential, imported []Account) []byte {
	gids := append([]uint32{c.GID}, c.Groups...)
	slices.Sort(gids)
	gids = slices.Compact(gids)
	var b strings.Builder
	names := map[string]bool{}
	if !slices.Contains(gids, 0) {
		b.WriteString("root:x:0:\n")
		names["root"] = true
	}
	groupName := func(name string, g uint32) string {
		if name == "" {
			name = fmt.Sprintf("group%d", g)
		}
		return name
	}
	for _, g := range gids {
		name := groupName(c.GroupNames[g], g)
		names[name] = true
		members := ""
		if g != c.GID {
			members = c.User
		}
		fmt.Fprintf(&b, "%s:x:%d:%s\n", name, g, members)
	}
	for _, a := range importable(c, imported) {
		name := groupName(a.GroupName, a.GID)
		if a.GID == 0 || slices.Contains(gids, a.GID) || names[name] {
			continue
		}
		gids = append(gids, a.GID)
		names[name] = true
		fmt.Fprintf(&b, "%s:x:%d:\n", name, a.GID)
	}
	return []byte(b.String())
}
