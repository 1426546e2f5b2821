// SPDX-License-Identifier: BSD-3-Clause

package flatten

import (
	"strings"
)

// Limits on names, as on Linux.
const (
	maxPath = 4096
	maxName = 255
)

// splitName sanitizes a tar entry name into path components: "./" and
// "/" prefixes, "." components and empty components are dropped. It
// reports false for names that must not be used: with NUL, with a ".."
// component, or too long. The root is zero components.
func splitName(name string) ([]string, bool) {
	if len(name) > maxPath || strings.IndexByte(name, 0) >= 0 {
		return nil, false
	}
	var comps []string
	for _, c := range strings.Split(name, "/") {
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			return nil, false
		case len(c) > maxName:
			return nil, false
		}
		comps = append(comps, c)
	}
	return comps, true
}

// Whiteout markers (OCI image spec, layer changesets).
const (
	whPrefix = ".wh."
	whOpaque = ".wh..wh..opq"
	whMeta   = ".wh..wh."
)
