// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"strings"
)

// resolveIDs turns user (or group) names and numbers into a sorted,
// comma-separated list of numeric ids, as the gateway's allowed_uids and
// allowed_gids want. Names are resolved on this host (os/user).
func resolveIDs(items []string, groups bool) (string, error) {
	var ids []uint64
	for _, it := range items {
		for _, s := range strings.Split(it, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			id, err := resolveID(s, groups)
			if err != nil {
				return "", err
			}
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(parts, ","), nil
}

func resolveID(s string, group bool) (uint64, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return n, nil
	}
	if group {
		g, err := user.LookupGroup(s)
		if err != nil {
			return 0, fmt.Errorf("resolving group %q: %w", s, err)
		}
		return strconv.ParseUint(g.Gid, 10, 32)
	}
	u, err := user.Lookup(s)
	if err != nil {
		return 0, fmt.Errorf("resolving user %q: %w", s, err)
	}
	return strconv.ParseUint(u.Uid, 10, 32)
}
