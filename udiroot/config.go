// SPDX-License-Identifier: BSD-3-Clause

package udiroot

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultPath is the configuration file the runtime reads. It is fixed at
// build time:
//
//	go build -ldflags "-X github.com/shifter-go/shifter/udiroot.DefaultPath=/etc/site/udiRoot.conf"
//
// SHIFTER_CONFIG overrides it only when the runtime is not setuid.
var DefaultPath = "/etc/shifter/udiRoot.conf"

// MaxFileSize bounds the configuration file; a larger one is refused.
const MaxFileSize = 1 << 20

// ErrSyntax is wrapped by every *ParseError.
var ErrSyntax = errors.New("invalid configuration")

// ParseError is a problem at one line of a configuration file.
type ParseError struct {
	File string
	Line int // 1-based; 0 when the problem is not tied to a line
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

func (e *ParseError) Unwrap() error { return ErrSyntax }

// Image mount modes (imageMount).
const (
	ImageMountAuto     = "auto"
	ImageMountLoop     = "loop"
	ImageMountFUSE     = "fuse"
	ImageMountShifterd = "shifterd"
)

// DefaultChunkSize is nodeCacheChunkSize's default.
const DefaultChunkSize = 256 << 10

// EnvVar is one NAME=VALUE of a siteEnv* key.
type EnvVar struct{ Name, Value string }

// EnvRules are the siteEnv, siteEnvAppend, siteEnvPrepend and
// siteEnvUnset keys, globally or of one module.
type EnvRules struct {
	Set     []EnvVar // siteEnv: replace
	Append  []EnvVar // siteEnvAppend: NAME=cur:value
	Prepend []EnvVar // siteEnvPrepend: NAME=value:cur
	Unset   []string // siteEnvUnset
}

// Module is one site module (module_<name>_<subkey> keys).
type Module struct {
	Name     string
	Env      EnvRules
	SiteFs   string   // volume list in Shifter's siteFs syntax (mountns.ParseSiteVolumes)
	UserHook string   // run by /bin/sh inside the container, as the user, before the command
	RootHook string   // run by /bin/sh as root on the host, cwd the container root, after the site mounts
	CopyPath string   // host directory shown read-only at /opt/udiImage/modules/<name>
	Conflict []string // modules that cannot be active together with this one
	Enabled  bool     // default true; module_<name>_enabled=0 hides it
}

// Config is a parsed udiRoot.conf. The zero value is not useful; use
// Default, Parse or Load.
type Config struct {
	File string // where it was read from

	ImagePath              string   // imagePath
	UDIMount               string   // udiMount
	System                 string   // system
	ImageGateway           []string // imageGateway, space-separated URLs
	GatewayTimeout         int      // gatewayTimeout, seconds
	DefaultImageType       string   // defaultImageType
	SiteFs                 string   // siteFs, a volume list for mountns.ParseSiteVolumes
	Env                    EnvRules // siteEnv*
	SitePreMountHook       string
	SitePostMountHook      string
	PopulateEtcDynamically bool
	EtcPath                string
	UsersToImport          []string
	AllowLocalChroot       bool
	MountPropagationStyle  string
	DefaultModules         []string
	Modules                map[string]*Module
	ImageMount             string // auto, loop, fuse or shifterd

	// The node cache and shifterd (docs/shifterd.md).
	NodeCacheDir       string        // nodeCacheDir; "" = no node cache
	NodeCacheSize      int64         // nodeCacheSize, bytes
	NodeCacheChunkSize int64         // nodeCacheChunkSize, bytes
	ImageSource        string        // imageSource: "file" or an http(s) base URL
	ShifterdSocket     string        // shifterdSocket
	ShifterdIdle       time.Duration // shifterdIdleUnmount
	ShifterdMetrics    string        // shifterdMetrics: host:port of the metrics listener, "" = none
	// OptUdiImage is a host directory whose contents appear read-only at
	// /opt/udiImage in every container (Shifter copies it there).
	OptUdiImage string
	// RootfsType is Shifter's file system type for the container root
	// (tmpfs, ramfs on Cray); here the root's writable layer is always a
	// tmpfs.
	RootfsType string
	// MountUdiRootWritable: Shifter leaves its tmpfs root writable when 1;
	// here the root is always read-only.
	MountUdiRootWritable bool
	// PerNodeCache* set perNodeCache volumes: where their backing files
	// are made ("" = no perNodeCache volumes), the largest size one may
	// have (bytes, 0 = no limit), and the file systems allowed (none
	// listed = xfs only). Unlike Shifter, the limit and the list are
	// enforced.
	PerNodeCachePath          string
	PerNodeCacheSizeLimit     int64
	PerNodeCacheAllowedFsType []string
	// MkfsXfsPath is the mkfs.xfs of perNodeCache volumes ("" = looked
	// for in /usr/sbin and /sbin).
	MkfsXfsPath string

	// Lines maps each key set in the file to its (first) line, for
	// messages about values checked later (siteFs).
	Lines map[string]int
	// SiteFsLines holds, for siteFs and each module_<name>_siteFs, every
	// line that set it, in order: the key's value is their lists joined,
	// and a runtime that checks them one by one can name the line of a
	// bad entry.
	SiteFsLines map[string][]KeyLine

	// Ignored lists, one line each ("file:line: key: why"), the Shifter
	// keys and values that were accepted but have no effect here or an
	// effect that differs from Shifter's, for --verbose.
	Ignored []string
}

// KeyLine is one line's value of a key.
type KeyLine struct {
	Line  int
	Value string
}

// Default returns the configuration used for keys a file does not set.
func Default() *Config {
	return &Config{
		ImagePath:              "/var/lib/shifter/images",
		UDIMount:               "/var/udiMount",
		GatewayTimeout:         10,
		DefaultImageType:       "docker",
		PopulateEtcDynamically: true,
		MountPropagationStyle:  "private",
		RootfsType:             "tmpfs",
		ImageMount:             ImageMountAuto,
		NodeCacheSize:          10 << 30,
		NodeCacheChunkSize:     DefaultChunkSize,
		ImageSource:            "file",
		ShifterdSocket:         "/run/shifter/shifterd.sock",
		ShifterdIdle:           10 * time.Minute,
		Modules:                map[string]*Module{},
		Lines:                  map[string]int{},
		SiteFsLines:            map[string][]KeyLine{},
	}
}

// Load reads the configuration file at path. When trusted is true (the
// runtime runs setuid) the file is opened with OpenTrusted, so that a file
// an ordinary user could have written is refused.
func Load(path string, trusted bool) (*Config, error) {
	var f *os.File
	var err error
	if trusted {
		f, err = OpenTrusted(path)
	} else {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read configuration %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, &ParseError{File: path, Msg: fmt.Sprintf("larger than %d bytes", MaxFileSize)}
	}
	return Parse(path, b)
}

// line is one logical line: a key=value with continuations joined.
type line struct {
	n          int
	key, value string
}

// Parse parses the content of a configuration file; name is used in
// error messages. Errors are *ParseError.
//
// Every key Shifter's parser accepts is accepted. A key given again adds
// to its earlier values where Shifter's parser appends (appendKeys and
// module_<name>_siteFs); any other repeated key takes the last value, as
// in Shifter, with a note in Ignored.
func Parse(name string, data []byte) (*Config, error) {
	lines, err := split(name, data)
	if err != nil {
		return nil, err
	}
	c := Default()
	c.File = name
	seen := map[string]int{}
	defaultModulesLine := 0
	for _, l := range lines {
		perr := func(format string, args ...any) error {
			return &ParseError{File: name, Line: l.n, Msg: fmt.Sprintf(format, args...)}
		}
		note := func(format string, args ...any) {
			c.Ignored = append(c.Ignored, fmt.Sprintf("%s:%d: %s: ", name, l.n, l.key)+fmt.Sprintf(format, args...))
		}
		mod, sub, isModule := strings.Cut(strings.TrimPrefix(l.key, "module_"), "_")
		isModule = isModule && strings.HasPrefix(l.key, "module_")
		if first, dup := seen[l.key]; dup && !slices.Contains(appendKeys, l.key) && !(isModule && sub == "siteFs") {
			note("set again (first on line %d): the last value wins, as in Shifter", first)
		}
		if _, dup := seen[l.key]; !dup {
			seen[l.key] = l.n
			c.Lines[l.key] = l.n
		}
		if l.key == "siteFs" || isModule && sub == "siteFs" {
			c.SiteFsLines[l.key] = append(c.SiteFsLines[l.key], KeyLine{l.n, l.value})
		}
		if isModule {
			if err := c.setModuleKey(mod, sub, l.value, note); err != nil {
				return nil, perr("%s: %v", l.key, err)
			}
			continue
		}
		if l.key == "defaultModules" {
			defaultModulesLine = l.n
		}
		if set, ok := globalKeys[l.key]; ok {
			if err := set(c, l.value); err != nil {
				return nil, perr("%s: %v", l.key, err)
			}
			if why := valueNote(c, l.key); why != "" {
				note("%s", why)
			}
			continue
		}
		if why, ok := ignoredKeys[l.key]; ok {
			note("%s", why)
			continue
		}
		return nil, perr("unknown key %q", l.key)
	}
	for _, m := range c.DefaultModules {
		if _, ok := c.Modules[m]; !ok && m != "none" {
			return nil, &ParseError{File: name, Line: defaultModulesLine, Msg: fmt.Sprintf("defaultModules: module %q is not defined", m)}
		}
	}
	if _, set := seen["populateEtcDynamically"]; !set && c.EtcPath != "" {
		// Shifter's default is 0, and every Shifter configuration sets
		// etcPath (its parser requires it): such a file gets its etcPath.
		c.PopulateEtcDynamically = false
	}
	if !c.PopulateEtcDynamically && c.EtcPath == "" {
		return nil, &ParseError{File: name, Msg: "populateEtcDynamically=0 needs etcPath"}
	}
	return c, nil
}

// valueNote says how a key that this implementation reads differs from
// Shifter for the value just set ("" when it does not).
func valueNote(c *Config, key string) string {
	switch key {
	case "rootfsType":
		if c.RootfsType != "tmpfs" {
			return "the container root's writable layer is always a tmpfs here (overlay over the image); " + c.RootfsType + " is not used"
		}
	case "mountUdiRootWritable":
		if c.MountUdiRootWritable {
			return "the container root is always remounted read-only here, as Shifter does with 0; /tmp, /var/tmp and volumes stay writable"
		}
	}
	return ""
}

// split turns the file into logical lines.
func split(name string, data []byte) ([]line, error) {
	var out []line
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), MaxFileSize+1)
	n := 0
	var cur *line
	var buf strings.Builder
	for sc.Scan() {
		n++
		text := sc.Text()
		if strings.IndexByte(text, 0) >= 0 {
			return nil, &ParseError{File: name, Line: n, Msg: "NUL byte"}
		}
		text = strings.TrimSuffix(text, "\r")
		if cur == nil {
			t := strings.TrimSpace(text)
			if t == "" || t[0] == '#' {
				continue
			}
			k, v, ok := strings.Cut(t, "=")
			if !ok {
				return nil, &ParseError{File: name, Line: n, Msg: fmt.Sprintf("%q is not key=value", t)}
			}
			k = strings.TrimSpace(k)
			if k == "" {
				return nil, &ParseError{File: name, Line: n, Msg: "empty key"}
			}
			cur = &line{n: n, key: k}
			text = v
			buf.Reset()
		}
		v := strings.TrimSpace(text)
		cont := strings.HasSuffix(v, `\`)
		v = strings.TrimSpace(strings.TrimSuffix(v, `\`))
		if buf.Len() > 0 && v != "" {
			buf.WriteByte(' ')
		}
		buf.WriteString(v)
		if !cont {
			cur.value = buf.String()
			out = append(out, *cur)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: name, Line: n + 1, Msg: err.Error()}
	}
	if cur != nil {
		return nil, &ParseError{File: name, Line: cur.n, Msg: "line continuation at end of file"}
	}
	return out, nil
}

// globalKeys are the keys this implementation understands.
var globalKeys = map[string]func(c *Config, v string) error{
	"imagePath": func(c *Config, v string) error { return setPath(&c.ImagePath, v, true) },
	"udiMount":  func(c *Config, v string) error { return setPath(&c.UDIMount, v, true) },
	"system":    func(c *Config, v string) error { return setWord(&c.System, v) },
	"imageGateway": func(c *Config, v string) error {
		c.ImageGateway = append(c.ImageGateway, strings.Fields(v)...)
		return nil
	},
	"gatewayTimeout":    func(c *Config, v string) error { return setSeconds(&c.GatewayTimeout, v) },
	"defaultImageType":  func(c *Config, v string) error { return setEnum(&c.DefaultImageType, v, "docker", "id", "local") },
	"siteFs":            func(c *Config, v string) error { return appendVolumes(&c.SiteFs, v) },
	"siteEnv":           func(c *Config, v string) error { return appendEnvList(&c.Env.Set, v) },
	"siteEnvAppend":     func(c *Config, v string) error { return appendEnvList(&c.Env.Append, v) },
	"siteEnvPrepend":    func(c *Config, v string) error { return appendEnvList(&c.Env.Prepend, v) },
	"siteEnvUnset":      func(c *Config, v string) error { return appendNameList(&c.Env.Unset, v) },
	"sitePreMountHook":  func(c *Config, v string) error { return setPath(&c.SitePreMountHook, v, false) },
	"sitePostMountHook": func(c *Config, v string) error { return setPath(&c.SitePostMountHook, v, false) },
	"populateEtcDynamically": func(c *Config, v string) error {
		return setBool(&c.PopulateEtcDynamically, v)
	},
	"etcPath": func(c *Config, v string) error { return setPath(&c.EtcPath, v, false) },
	"usersToImport": func(c *Config, v string) error {
		c.UsersToImport = append(c.UsersToImport, strings.Fields(v)...)
		return nil
	},
	"allowLocalChroot": func(c *Config, v string) error { return setBool(&c.AllowLocalChroot, v) },
	"mountPropagationStyle": func(c *Config, v string) error {
		return setEnum(&c.MountPropagationStyle, v, "private", "slave")
	},
	"defaultModules": func(c *Config, v string) (err error) { c.DefaultModules, err = ParseModuleList(v); return err },
	"imageMount": func(c *Config, v string) error {
		return setEnum(&c.ImageMount, v, ImageMountAuto, ImageMountLoop, ImageMountFUSE, ImageMountShifterd)
	},
	"nodeCacheDir":  func(c *Config, v string) error { return setPath(&c.NodeCacheDir, v, false) },
	"nodeCacheSize": func(c *Config, v string) error { return setSize(&c.NodeCacheSize, v, 16<<20, 1<<60) },
	"nodeCacheChunkSize": func(c *Config, v string) error {
		if err := setSize(&c.NodeCacheChunkSize, v, 4096, 16<<20); err != nil {
			return err
		}
		if c.NodeCacheChunkSize&(c.NodeCacheChunkSize-1) != 0 {
			return fmt.Errorf("%q is not a power of two", v)
		}
		return nil
	},
	"imageSource":         setImageSource,
	"shifterdSocket":      func(c *Config, v string) error { return setPath(&c.ShifterdSocket, v, false) },
	"shifterdIdleUnmount": func(c *Config, v string) error { return setDuration(&c.ShifterdIdle, v) },
	"shifterdMetrics": func(c *Config, v string) error {
		if v != "" {
			if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
				return fmt.Errorf("%q is not host:port", v)
			}
		}
		c.ShifterdMetrics = v
		return nil
	},
	"optUdiImage": func(c *Config, v string) error { return setPath(&c.OptUdiImage, v, false) },
	"rootfsType": func(c *Config, v string) error {
		if v == "" {
			v = "tmpfs"
		}
		return setWord(&c.RootfsType, v)
	},
	"mountUdiRootWritable": func(c *Config, v string) error { return setBool(&c.MountUdiRootWritable, v) },
	"perNodeCachePath":     func(c *Config, v string) error { return setPath(&c.PerNodeCachePath, v, false) },
	"mkfsXfsPath":          func(c *Config, v string) error { return setPath(&c.MkfsXfsPath, v, false) },
	"perNodeCacheSizeLimit": func(c *Config, v string) (err error) {
		c.PerNodeCacheSizeLimit, err = ParseBytes(v)
		return err
	},
	"perNodeCacheAllowedFsType": func(c *Config, v string) error {
		c.PerNodeCacheAllowedFsType = append(c.PerNodeCacheAllowedFsType, strings.Fields(v)...)
		return nil
	},
}

// appendKeys are the keys whose repetitions add to the earlier values, as
// Shifter's parser does (module_<name>_siteFs too).
var appendKeys = []string{
	"siteFs", "siteEnv", "siteEnvAppend", "siteEnvPrepend", "siteEnvUnset",
	"imageGateway", "usersToImport", "perNodeCacheAllowedFsType",
}

// ignoredKeys are the Shifter keys that describe machinery this
// implementation does not have (external cp/mv/dd, a separate loop mount
// point, kernel-module loading, ...), with why. They are accepted, with
// their note in Config.Ignored, so that an existing Shifter configuration
// loads.
var ignoredKeys = map[string]string{
	"loopMount":            "not used: the image is mounted inside each container's private namespace",
	"udiRootPath":          "not used: shifter finds shifter-mount next to itself",
	"modprobePath":         "not used: no kernel modules are loaded",
	"insmodPath":           "not used: no kernel modules are loaded",
	"cpPath":               "not used: no external tools are run",
	"mvPath":               "not used: no external tools are run",
	"chmodPath":            "not used: no external tools are run",
	"ddPath":               "not used: no external tools are run",
	"maxGroupCount":        "not used: the container's /etc/group lists only the user's own groups",
	"allowLibcPwdCalls":    "not used: the host's NSS (getpwuid, getgrouplist) is always used",
	"batchType":            "not used (Shifter's shiftrun script only)",
	"optionalSshdAsRoot":   "deprecated in Shifter too",
	"autoLoadKernelModule": "deprecated in Shifter too",
	"kmodBasePath":         "deprecated in Shifter too",
	"kmodCacheFile":        "deprecated in Shifter too",
	"nodeContextPrefix":    "defunct in Shifter too",
}

// setModuleKey sets module_<name>_<sub>. As in Shifter, siteFs adds to
// earlier values, the other keys take the last one, and an unknown
// subkey (such as the copypath of Shifter's own example) is ignored, here
// with a note.
func (c *Config) setModuleKey(name, sub, v string, note func(string, ...any)) error {
	if !validModuleName(name) {
		return fmt.Errorf("module name %q: use letters, digits, '-' and '.'", name)
	}
	m := c.Modules[name]
	if m == nil {
		m = &Module{Name: name, Enabled: true}
		c.Modules[name] = m
	}
	var err error
	switch sub {
	case "siteEnv":
		m.Env.Set, err = parseEnvList(v)
	case "siteEnvAppend":
		m.Env.Append, err = parseEnvList(v)
	case "siteEnvPrepend":
		m.Env.Prepend, err = parseEnvList(v)
	case "siteEnvUnset":
		m.Env.Unset, err = parseNameList(v)
	case "siteFs":
		err = appendVolumes(&m.SiteFs, v)
	case "userhook":
		err = setPath(&m.UserHook, v, false)
	case "roothook":
		err = setPath(&m.RootHook, v, false)
	case "copyPath":
		err = setPath(&m.CopyPath, v, false)
	case "conflict":
		m.Conflict = strings.Fields(v)
	case "enabled":
		err = setBool(&m.Enabled, v)
	default:
		note("unknown module key %q, ignored as Shifter ignores it", sub)
	}
	return err
}

func validModuleName(s string) bool {
	if s == "" || s == "none" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// ParseModuleList parses a comma-separated module list (defaultModules,
// shifter --module). "none" alone selects no module.
func ParseModuleList(v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if f != "none" && !validModuleName(f) {
			return nil, fmt.Errorf("module name %q: use letters, digits, '-' and '.'", f)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if slices.Contains(out, "none") && len(out) > 1 {
		return nil, errors.New(`module "none" cannot be combined with other modules`)
	}
	return out, nil
}

func setPath(dst *string, v string, required bool) error {
	if v == "" {
		if required {
			return errors.New("empty path")
		}
		*dst = ""
		return nil
	}
	if !path.IsAbs(v) {
		return fmt.Errorf("%q is not an absolute path", v)
	}
	if path.Clean(v) != v && path.Clean(v)+"/" != v {
		return fmt.Errorf("%q is not a clean path", v)
	}
	*dst = path.Clean(v)
	return nil
}

func setWord(dst *string, v string) error {
	if strings.ContainsAny(v, " \t/") {
		return fmt.Errorf("%q must be one word", v)
	}
	*dst = v
	return nil
}

func setEnum(dst *string, v string, allowed ...string) error {
	if !slices.Contains(allowed, v) {
		return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	*dst = v
	return nil
}

// setBool takes 0 and 1 (any integer, as Shifter's strtol: non-zero is
// true), and true/false, yes/no.
func setBool(dst *bool, v string) error {
	switch strings.ToLower(v) {
	case "true", "yes":
		*dst = true
		return nil
	case "false", "no":
		*dst = false
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not 0 or 1", v)
	}
	*dst = n != 0
	return nil
}

// ParseBytes parses a size as Shifter's parseBytes: a number with an
// optional suffix b, k, m, g, t, p or e (any case; powers of 1024), such
// as 100G. Fractions are allowed (1.5g); the result is rounded down.
func ParseBytes(v string) (int64, error) {
	num := strings.TrimRight(v, "bBkKmMgGtTpPeE")
	suffix := strings.ToLower(v[len(num):])
	if len(suffix) > 1 || num == "" {
		return 0, fmt.Errorf("%q is not a size (a number with an optional b, k, m, g, t, p or e)", v)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a size (a number with an optional b, k, m, g, t, p or e)", v)
	}
	if suffix != "" {
		f *= math.Pow(1024, float64(strings.Index("bkmgtpe", suffix)))
	}
	if f >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return int64(f), nil
}

func setSeconds(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 3600 {
		return fmt.Errorf("%q is not a number of seconds (0-3600)", v)
	}
	*dst = n
	return nil
}

func setSize(dst *int64, v string, lo, hi int64) error {
	n, err := ParseBytes(v)
	if err != nil {
		return err
	}
	if n < lo || n > hi {
		return fmt.Errorf("%q is out of range (%d to %d bytes)", v, lo, hi)
	}
	*dst = n
	return nil
}

func setDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		if n, nerr := strconv.Atoi(v); nerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
	}
	if err != nil || d < 0 {
		return fmt.Errorf("%q is not a duration (e.g. 600, 10m, 1h)", v)
	}
	*dst = d
	return nil
}

// setImageSource accepts "file" or an http(s) base URL without query,
// fragment or user information.
func setImageSource(c *Config, v string) error {
	if v == "" || v == "file" {
		c.ImageSource = "file"
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is neither \"file\" nor an http(s)://host[:port][/path] URL", v)
	}
	c.ImageSource = strings.TrimSuffix(v, "/")
	return nil
}

// ValidEnvName reports whether s can be an environment variable name
// here: non-empty, no '=', no NUL, no white space.
func ValidEnvName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "= \t\n\r\x00")
}

func parseEnvList(v string) ([]EnvVar, error) {
	var out []EnvVar
	for _, f := range strings.Fields(v) {
		k, val, ok := strings.Cut(f, "=")
		if !ok || !ValidEnvName(k) {
			return nil, fmt.Errorf("%q is not NAME=VALUE", f)
		}
		out = append(out, EnvVar{k, val})
	}
	return out, nil
}

func parseNameList(v string) ([]string, error) {
	out := strings.Fields(v)
	for _, f := range out {
		if !ValidEnvName(f) {
			return nil, fmt.Errorf("%q is not a variable name", f)
		}
	}
	return out, nil
}

// appendVolumes adds a volume list to dst (";"-joined) for
// mountns.ParseSiteVolumes, which the runtime applies (with the site
// destination rules); here only characters that can never be part of one
// are refused.
func appendVolumes(dst *string, v string) error {
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("control character in %q", v)
		}
	}
	switch {
	case strings.TrimSpace(v) == "":
	case strings.TrimSpace(*dst) == "":
		*dst = v
	default:
		*dst += ";" + v
	}
	return nil
}

func appendEnvList(dst *[]EnvVar, v string) error {
	vars, err := parseEnvList(v)
	*dst = append(*dst, vars...)
	return err
}

func appendNameList(dst *[]string, v string) error {
	names, err := parseNameList(v)
	*dst = append(*dst, names...)
	return err
}
