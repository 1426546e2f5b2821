// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"path"
	"strings"
)

// ParseVolumes parses user volume requests in Shifter's syntax:
//
//	src:dst[:flag[:flag...]][;src:dst...]
//
// Entries are separated by ';' (empty entries are skipped) and may be
// wrapped in double quotes. Both paths must be absolute and free of ".."
// components and control characters; they are cleaned lexically. Flags are
// case-insensitive:
//
//   - ro: the volume (all its submounts included) is read-only.
//   - rec: accepted for compatibility; every bind is recursive anyway, and
//     unlike Shifter's rec, submounts are made nosuid,nodev too.
//   - perNodeCache=...: Shifter's per-node XFS cache; parsed and refused
//     with ErrBadVolume (not supported by this runtime).
//
// Shifter's site-only flags slave and private are refused for users.
//
// The destination must not be "/", /etc or below, /var or below (except
// /var/tmp and below), /opt exactly, /opt/udiImage or below, /proc, /sys or
// /dev or below. The check is made on the cleaned path here, and again in
// the container on the path the destination resolves to, symlinks followed.
// Every error wraps ErrBadVolume.
func ParseVolumes(s string) ([]Volume, error) {
	return parseVolumes(s, false)
}

// ParseSiteVolumes parses udiRoot.conf siteFs in the same syntax, with
// Shifter's site rules: the destination may be omitted (it is then the
// source); flags ro, rec, slave and private are allowed (slave and private
// set the propagation of the mount, default private); destinations "/",
// /opt, /etc, /var, /etc/passwd, /etc/group and /etc/nsswitch.conf are
// refused. The result has Site set.
func ParseSiteVolumes(s string) ([]Volume, error) {
	return parseVolumes(s, true)
}

func parseVolumes(s string, site bool) ([]Volume, error) {
	var vols []Volume
	for _, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if len(entry) >= 2 && entry[0] == '"' && entry[len(entry)-1] == '"' {
			entry = entry[1 : len(entry)-1]
		}
		if entry == "" {
			continue
		}
		v, err := parseVolume(entry, site)
		if err != nil {
			return nil, err
		}
		vols = append(vols, v)
	}
	return vols, nil
}

func parseVolume(entry string, site bool) (Volume, error) {
	tok := strings.Split(entry, ":")
	v := Volume{Site: site}
	src, err := cleanVolumePath(tok[0])
	if err != nil {
		return v, fmt.Errorf("%w: %q: source: %v", ErrBadVolume, entry, err)
	}
	v.Source = src
	if len(tok) < 2 || tok[1] == "" {
		if !site {
			return v, fmt.Errorf("%w: %q: want source:destination[:ro]", ErrBadVolume, entry)
		}
		v.Dest = v.Source
	} else {
		if v.Dest, err = cleanVolumePath(tok[1]); err != nil {
			return v, fmt.Errorf("%w: %q: destination: %v", ErrBadVolume, entry, err)
		}
	}
	seen := map[string]bool{}
	for _, f := range tok[min(2, len(tok)):] {
		name, _, _ := strings.Cut(strings.ToLower(f), "=")
		if seen[name] {
			return v, fmt.Errorf("%w: %q: flag %q given twice", ErrBadVolume, entry, name)
		}
		seen[name] = true
		switch {
		case name == "ro":
			v.ReadOnly = true
		case name == "rec":
			v.Recursive = true
		case name == "slave" && site, name == "private" && site:
			v.Propagation = name
		case name == "pernodecache":
			return v, fmt.Errorf("%w: %q: perNodeCache volumes are not supported", ErrBadVolume, entry)
		default:
			return v, fmt.Errorf("%w: %q: flag %q not allowed", ErrBadVolume, entry, f)
		}
	}
	if seen["slave"] && seen["private"] {
		return v, fmt.Errorf("%w: %q: slave and private exclude each other", ErrBadVolume, entry)
	}
	if site {
		err = CheckSiteDest(v.Dest)
	} else {
		err = CheckUserDest(v.Dest)
	}
	if err != nil {
		return v, fmt.Errorf("%w: %q: %v", ErrBadVolume, entry, err)
	}
	return v, nil
}

// cleanVolumePath checks that p is absolute, has no ".." component and no
// control character, and returns it cleaned.
func cleanVolumePath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty path")
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '"' {
			return "", fmt.Errorf("path %q has a forbidden character", p)
		}
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("path %q has a .. component", p)
		}
	}
	return path.Clean(p), nil
}

// under reports whether the cleaned absolute path p is dir or below it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// CheckUserDest applies the destination rules for user volumes (see
// ParseVolumes) to a cleaned absolute path inside the container.
func CheckUserDest(p string) error {
	if p != path.Clean(p) || !path.IsAbs(p) {
		return fmt.Errorf("destination %q is not a clean absolute path", p)
	}
	switch {
	case p == "/":
		return fmt.Errorf("destination / is not allowed")
	case p == "/opt":
		return fmt.Errorf("destination /opt is not allowed")
	case under(p, "/var/tmp"):
		return nil
	}
	for _, d := range []string{"/etc", "/var", "/opt/udiImage", "/proc", "/sys", "/dev"} {
		if under(p, d) {
			return fmt.Errorf("destination %s is not allowed (under %s)", p, d)
		}
	}
	return nil
}

// CheckSiteDest applies the destination rules for site volumes (see
// ParseSiteVolumes).
func CheckSiteDest(p string) error {
	if p != path.Clean(p) || !path.IsAbs(p) {
		return fmt.Errorf("destination %q is not a clean absolute path", p)
	}
	switch p {
	case "/", "/opt", "/etc", "/var", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/proc", "/sys", "/dev":
		return fmt.Errorf("destination %s is not allowed", p)
	}
	return nil
}
