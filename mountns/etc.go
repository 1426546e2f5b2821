// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"slices"
	"strings"
)

// passwdFile renders the container's /etc/passwd: root and the user.
func passwdFile(c Credential) []byte {
	var b strings.Builder
	if c.UID != 0 {
		b.WriteString("root:x:0:0:root:/root:/bin/sh\n")
	}
	shell := c.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	home := c.Home
	if home == "" {
		home = "/"
	}
	fmt.Fprintf(&b, "%s:x:%d:%d:%s:%s:%s\n", c.User, c.UID, c.GID, c.Gecos, home, shell)
	return []byte(b.String())
}

// groupFile renders the container's /etc/group: root's group and every
// group of the user, the user listed as a member of the supplementary ones.
// A gid without a name gets "group<gid>".
func groupFile(c Credential) []byte {
	gids := append([]uint32{c.GID}, c.Groups...)
	slices.Sort(gids)
	gids = slices.Compact(gids)
	var b strings.Builder
	if !slices.Contains(gids, 0) {
		b.WriteString("root:x:0:\n")
	}
	for _, g := range gids {
		name := c.GroupNames[g]
		if name == "" {
			name = fmt.Sprintf("group%d", g)
		}
		members := ""
		if g != c.GID {
			members = c.User
		}
		fmt.Fprintf(&b, "%s:x:%d:%s\n", name, g, members)
	}
	return []byte(b.String())
}
