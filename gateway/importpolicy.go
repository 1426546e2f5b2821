// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ImportUsers is the import_users setting: who may import images with
// POST /api/doimport/ (Shifter's ImportUsers). In the config file it is
// "all", "none", or a list of user names (resolved on the gateway host,
// as the munge credential's uid is) or numeric uids.
type ImportUsers struct {
	All   bool
	Users []string // when not All; empty: nobody
}

// UnmarshalJSON reads "all", "none" or a list of names.
func (u *ImportUsers) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch strings.ToLower(s) {
		case "all":
			*u = ImportUsers{All: true}
		case "none":
			*u = ImportUsers{}
		default:
			return fmt.Errorf("import_users %q: want \"all\", \"none\" or a list of user names", s)
		}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("import_users: want \"all\", \"none\" or a list of user names: %w", err)
	}
	for _, n := range l {
		if n == "" || strings.ContainsAny(n, " \t\n:,") {
			return fmt.Errorf("import_users: %q is not a user name or uid", n)
		}
	}
	*u = ImportUsers{Users: l}
	return nil
}

// MarshalJSON writes "all", "none" or the list.
func (u ImportUsers) MarshalJSON() ([]byte, error) {
	switch {
	case u.All:
		return json.Marshal("all")
	case len(u.Users) == 0:
		return json.Marshal("none")
	}
	return json.Marshal(u.Users)
}

// mayImport reports whether import_users admits an authenticated
// caller, and if not, why: absent and "none" admit nobody, "all" every
// authenticated user, a list the users it names by name or uid. Root is
// not special (as in Shifter).
func mayImport(u *ImportUsers, id *Identity) (bool, string) {
	switch {
	case id == nil || !id.Authenticated:
		return false, "importing needs an authenticated caller"
	case u == nil:
		return false, "image import is disabled on this gateway (import_users is not set)"
	case u.All:
		return true, ""
	case len(u.Users) == 0:
		return false, "image import is disabled on this gateway (import_users is \"none\")"
	case id.User != "" && slices.Contains(u.Users, id.User),
		slices.Contains(u.Users, strconv.FormatUint(uint64(id.UID), 10)):
		return true, ""
	}
	name := id.User
	if name == "" {
		name = "uid " + strconv.FormatUint(uint64(id.UID), 10)
	}
	return false, fmt.Sprintf("%s may not import images (not in import_users)", name)
}
