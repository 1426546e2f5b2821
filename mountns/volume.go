// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
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
//   - perNodeCache=size=N[,bs=N][,method=loop][,fs=xfs|ext4]: a per-node
//     writable scratch file system of N bytes at the destination, owned by
//     the user (ParsePerNodeCache); the source is ignored, as in Shifter.
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
			_, args, _ := strings.Cut(f, "=")
			c, err := ParsePerNodeCache(args)
			if err != nil {
				return v, fmt.Errorf("%w: %q: %v", ErrBadVolume, entry, err)
			}
			v.PerNodeCache = c
		default:
			return v, fmt.Errorf("%w: %q: flag %q not allowed", ErrBadVolume, entry, f)
		}
	}
	if v.PerNodeCache != nil && (v.ReadOnly || v.Recursive || v.Propagation != "") {
		return v, fmt.Errorf("%w: %q: perNodeCache takes no other flag", ErrBadVolume, entry)
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

// PerNodeCache describes a perNodeCache volume: a file system of Size
// bytes made on a sparse file on the node (under the site's
// perNodeCachePath), loop-mounted read-write at the volume's
// destination and owned by the user.
type PerNodeCache struct {
	Size int64 // bytes, > 0
	// BlockSize is Shifter's bs (default 1 MiB): the block size of the dd
	// that made Shifter's sparse file. Parsed and checked; it has no
	// effect here (the file is made sparse with ftruncate).
	BlockSize int64
	Method    string // "loop", the only method
	FsType    string // "xfs" (default) or "ext4"
}

// PerNodeCacheFsTypes are the file systems a perNodeCache volume can be
// made with.
var PerNodeCacheFsTypes = []string{"xfs", "ext4"}

// ParsePerNodeCache parses the arguments of a perNodeCache flag (what
// follows "perNodeCache="), as Shifter does: comma-separated key=value
// pairs, keys and the values of fs and method in any case; size (required,
// > 0) and bs (default 1M) are sizes as Shifter's parseBytes (ParseBytes);
// method must be loop; fs (or fstype, the name in Shifter's volume
// signature) xfs (default) or ext4. Empty items are skipped. Unlike
// Shifter, which ignores them, unknown keys and keys given twice are
// errors.
func ParsePerNodeCache(args string) (*PerNodeCache, error) {
	c := &PerNodeCache{BlockSize: 1 << 20, Method: "loop", FsType: "xfs"}
	seen := map[string]bool{}
	for _, item := range strings.Split(args, ",") {
		if item == "" {
			continue
		}
		k, val, ok := strings.Cut(item, "=")
		k = strings.ToLower(k)
		if k == "fstype" {
			k = "fs"
		}
		if !ok {
			return nil, fmt.Errorf("perNodeCache: %q: want key=value", item)
		}
		if seen[k] {
			return nil, fmt.Errorf("perNodeCache: %s given twice", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "size":
			c.Size, err = ParseBytes(val)
			if err == nil && c.Size <= 0 {
				err = fmt.Errorf("%q is not a size above 0", val)
			}
		case "bs":
			c.BlockSize, err = ParseBytes(val)
			if err == nil && c.BlockSize <= 0 {
				err = fmt.Errorf("%q is not a size above 0", val)
			}
		case "method":
			if c.Method = strings.ToLower(val); c.Method != "loop" {
				err = fmt.Errorf("method %q is not supported (only loop)", val)
			}
		case "fs":
			c.FsType = strings.ToLower(val)
			if !slices.Contains(PerNodeCacheFsTypes, c.FsType) {
				err = fmt.Errorf("file system %q is not supported (%s)", val, strings.Join(PerNodeCacheFsTypes, ", "))
			}
		default:
			err = fmt.Errorf("unknown key %q (size, bs, method, fs)", k)
		}
		if err != nil {
			return nil, fmt.Errorf("perNodeCache: %s: %w", k, err)
		}
	}
	if !seen["size"] {
		return nil, fmt.Errorf("perNodeCache: size is required (perNodeCache=size=10G)")
	}
	return c, nil
}

// ParseBytes parses a size as Shifter's parseBytes: a decimal number
// with an optional suffix b, k, m, g, t, p or e (any case; powers of
// 1024), such as 10G or 1.5g (rounded down). Negative, non-numeric and
// overflowing values are errors. (The same rules as udiroot.ParseBytes,
// which this package cannot import.)
func ParseBytes(v string) (int64, error) {
	bad := fmt.Errorf("%q is not a size (a number with an optional b, k, m, g, t, p or e)", v)
	num := strings.TrimRight(v, "bBkKmMgGtTpPeE")
	suffix := strings.ToLower(v[len(num):])
	if len(suffix) > 1 || num == "" || strings.ContainsAny(num, "xXpPiInN_") {
		return 0, bad
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, bad
	}
	if suffix != "" {
		f *= math.Pow(1024, float64(strings.Index("bkmgtpe", suffix)))
	}
	if f >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return int64(f), nil
}
