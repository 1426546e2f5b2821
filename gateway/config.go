// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/shifter-go/shifter/imagestore"
)

// Duration is a time.Duration written as a Go duration string ("90m",
// "2160h") in the config file.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"90m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Transfer modes of a system.
const (
	TransferLocal = "local"
	TransferSSH   = "ssh"
)

// Authentication modes of TCP listeners.
const (
	AuthMunge = "munge"
	AuthNone  = "none"
)

// Config is the gateway's configuration file (docs/gateway.md).
type Config struct {
	// Listen holds the addresses to serve on: "HOST:PORT" (TCP, munge
	// authentication) or "unix:PATH" (SO_PEERCRED identities).
	Listen []string `json:"listen"`
	// DataDir holds the database and, unless set, the cache and work dirs.
	DataDir  string `json:"data_dir"`
	CacheDir string `json:"cache_dir,omitempty"`
	WorkDir  string `json:"work_dir,omitempty"`
	LogLevel string `json:"log_level"`
	// Workers is the number of pulls that run at once.
	Workers int `json:"workers"`
	// RegistryConcurrency bounds the pulls from one registry that run at
	// once (0: one less than Workers, at least 1), so that a slow registry
	// never holds every worker; registries.HOST.concurrency overrides it.
	RegistryConcurrency int `json:"registry_concurrency,omitempty"`
	// Authentication of TCP requests: "munge" (default) or "none" (every
	// TCP request is anonymous: public lookups and the queue only).
	Authentication string `json:"authentication"`

	DefaultRegistry string              `json:"default_registry"`
	Registries      map[string]Registry `json:"registries,omitempty"`
	Platform        string              `json:"platform"`
	MaxImageSize    int64               `json:"max_image_size"`
	MksquashfsArgs  []string            `json:"mksquashfs_args,omitempty"`
	// ChunkSize is the chunk size (bytes, a power of two) of the chunk
	// lists (<id>.chunks) written beside published images.
	ChunkSize int64 `json:"chunk_size"`
	Retries   int   `json:"retries"`
	// AllowInternalHosts: hosts, IP addresses or CIDR prefixes a registry
	// may make the gateway contact although they are internal (loopback,
	// link-local, private). The registry named in a reference always is.
	AllowInternalHosts []string `json:"allow_internal_hosts,omitempty"`
	// MinDownloadSpeed (bytes/s), averaged over DownloadSpeedWindow: a
	// registry sending a blob slower fails the pull.
	MinDownloadSpeed    int64    `json:"min_download_speed"`
	DownloadSpeedWindow Duration `json:"download_speed_window"`

	// Expiration: a lookup keeps an image for this long.
	Expiration Duration `json:"expiration"`
	// PullUpdateTimeout: a READY pull younger than this is not re-checked
	// against the registry when pulled again with the same ACL.
	PullUpdateTimeout Duration `json:"pull_update_timeout"`
	// FailureHold: a failed pull is reported (not retried) by new pull
	// requests for this long, so polling clients see the failure.
	FailureHold Duration `json:"failure_hold"`
	// JobTimeout bounds one pull; also the age after which an unreferenced
	// file in an image directory is removed by autoexpire.
	JobTimeout Duration `json:"job_timeout"`
	// MaxAttempts: a job interrupted by gateway restarts this many times
	// fails instead of starting again.
	MaxAttempts int `json:"max_attempts"`
	// LookupLog keeps one row per lookup for GET /api/metrics/{system}/.
	LookupLog bool `json:"lookup_log"`
	// ImportUsers says who may import squashfs images (POST
	// /api/doimport/, the custom: type): "all", "none", or a list of
	// user names or uids; absent: nobody (Shifter's ImportUsers).
	ImportUsers *ImportUsers `json:"import_users,omitempty"`

	Systems map[string]*System `json:"systems"`
}

// Registry holds per-registry settings.
type Registry struct {
	Insecure bool   `json:"insecure,omitempty"` // plain HTTP allowed
	CAFile   string `json:"ca_file,omitempty"`
	// AuthHosts: other hosts that may receive this registry's credentials
	// (a token realm elsewhere).
	AuthHosts []string `json:"auth_hosts,omitempty"`
	// Concurrency bounds the pulls from this registry that run at once
	// (0: registry_concurrency).
	Concurrency int `json:"concurrency,omitempty"`
}

// System is one cluster served by the gateway (Shifter's Platforms entry).
type System struct {
	ImageDir    string   `json:"image_dir"`
	Transfer    string   `json:"transfer"` // "local" or "ssh"
	Admins      []string `json:"admins,omitempty"`
	MungeSocket string   `json:"munge_socket,omitempty"`
	SSH         *SSH     `json:"ssh,omitempty"`
}

// SSH configures the ssh transfer mode: images are built on the gateway
// in SpoolDir and copied to Host:ImageDir (the system's image_dir, as
// seen on Host).
type SSH struct {
	Host       string   `json:"host"`
	User       string   `json:"user,omitempty"`
	Key        string   `json:"key,omitempty"`
	SSHOptions []string `json:"ssh_options,omitempty"`
	SCPOptions []string `json:"scp_options,omitempty"`
	SSHCommand string   `json:"ssh_command,omitempty"` // default "ssh"
	SCPCommand string   `json:"scp_command,omitempty"` // default "scp"
}

// Default values.
const (
	DefaultListen      = "unix:/run/shifter/gateway.sock"
	DefaultDataDir     = "/var/lib/shifter/gateway"
	DefaultImageDir    = "/var/lib/shifter/images"
	DefaultSystem      = "default"
	DefaultMungeSocket = "/run/munge/munge.socket.2"
)

// DefaultConfig returns the embedded defaults: one local system "default"
// with images in /var/lib/shifter/images, served on a unix socket.
func DefaultConfig() *Config {
	return &Config{
		Listen:            []string{DefaultListen},
		DataDir:           DefaultDataDir,
		LogLevel:          "info",
		Workers:           2,
		Authentication:    AuthMunge,
		DefaultRegistry:   "index.docker.io",
		Platform:          "linux/amd64",
		MaxImageSize:      20 << 30,
		ChunkSize:         imagestore.DefaultChunkSize,
		Retries:           3,
		Expiration:        Duration(90 * 24 * time.Hour),
		PullUpdateTimeout: Duration(5 * time.Minute),
		FailureHold:       Duration(30 * time.Second),
		JobTimeout:        Duration(2 * time.Hour),
		MaxAttempts:       3,
		LookupLog:         true,
		Systems: map[string]*System{
			DefaultSystem: {ImageDir: DefaultImageDir, Transfer: TransferLocal, Admins: []string{"root"}},
		},
		MinDownloadSpeed:    64 << 10,
		DownloadSpeedWindow: Duration(30 * time.Second),
	}
}

// LoadConfig reads a config file over the defaults. Unknown keys are
// errors. Systems in the file replace the default system.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig parses config JSON over the defaults.
func ParseConfig(b []byte) (*Config, error) {
	c := DefaultConfig()
	c.Systems = nil
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse config: trailing data after the JSON object")
	}
	if c.Systems == nil {
		c.Systems = DefaultConfig().Systems
	}
	return c, nil
}

var systemNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Validate checks the config and fills derived defaults (cache and work
// dirs, munge sockets, transfer modes).
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.Listen) == 0 {
		bad("listen: at least one address is needed")
	}
	for _, l := range c.Listen {
		if p, ok := strings.CutPrefix(l, "unix:"); ok {
			if !filepath.IsAbs(p) {
				bad("listen %q: unix socket path must be absolute", l)
			}
		} else if !strings.Contains(l, ":") {
			bad("listen %q: want HOST:PORT or unix:PATH", l)
		}
	}
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		bad("data_dir %q: must be an absolute path", c.DataDir)
	}
	if c.CacheDir == "" && c.DataDir != "" {
		c.CacheDir = filepath.Join(c.DataDir, "cache")
	}
	if c.WorkDir == "" && c.DataDir != "" {
		c.WorkDir = filepath.Join(c.DataDir, "work")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log_level: %v", err)
	}
	if c.Workers < 1 || c.Workers > 256 {
		bad("workers %d: want 1..256", c.Workers)
	}
	if c.RegistryConcurrency < 0 || c.RegistryConcurrency > 256 {
		bad("registry_concurrency %d: want 0..256", c.RegistryConcurrency)
	}
	switch c.Authentication {
	case AuthMunge, AuthNone:
	default:
		bad("authentication %q: want %q or %q", c.Authentication, AuthMunge, AuthNone)
	}
	if c.DefaultRegistry == "" {
		bad("default_registry: empty")
	}
	for host, r := range c.Registries {
		if host == "" || strings.ContainsAny(host, "/ ") {
			bad("registries: %q is not a HOST[:PORT]", host)
		}
		if r.Concurrency < 0 || r.Concurrency > 256 {
			bad("registries.%s.concurrency %d: want 0..256", host, r.Concurrency)
		}
		if r.CAFile != "" && !filepath.IsAbs(r.CAFile) {
			bad("registries.%s.ca_file %q: must be an absolute path", host, r.CAFile)
		}
		for _, h := range r.AuthHosts {
			if h == "" || strings.ContainsAny(h, "/ @") {
				bad("registries.%s.auth_hosts: %q is not a HOST[:PORT]", host, h)
			}
		}
	}
	for _, h := range c.AllowInternalHosts {
		if h == "" || strings.ContainsAny(h, " @") {
			bad("allow_internal_hosts: %q is not a HOST[:PORT], IP address or CIDR prefix", h)
		}
	}
	if c.MaxImageSize <= 0 {
		bad("max_image_size must be positive")
	}
	if c.ChunkSize < imagestore.MinChunkSize || c.ChunkSize > imagestore.MaxChunkSize || c.ChunkSize&(c.ChunkSize-1) != 0 {
		bad("chunk_size %d: want a power of two from %d (4 KiB) to %d (%d MiB)", c.ChunkSize,
			imagestore.MinChunkSize, imagestore.MaxChunkSize, imagestore.MaxChunkSize>>20)
	}
	if c.Retries < 0 || c.Retries > 20 {
		bad("retries %d: want 0..20", c.Retries)
	}
	if c.MinDownloadSpeed < 1 {
		bad("min_download_speed %d: want >= 1 (bytes/s)", c.MinDownloadSpeed)
	}
	if c.DownloadSpeedWindow < Duration(time.Second) {
		bad("download_speed_window %s: want >= 1s", c.DownloadSpeedWindow.D())
	}
	if c.MaxAttempts < 1 {
		bad("max_attempts %d: want >= 1", c.MaxAttempts)
	}
	for name, d := range map[string]Duration{"expiration": c.Expiration, "pull_update_timeout": c.PullUpdateTimeout,
		"failure_hold": c.FailureHold, "job_timeout": c.JobTimeout} {
		if d < 0 || (d == 0 && name != "failure_hold" && name != "pull_update_timeout") {
			bad("%s: must be positive", name)
		}
	}
	if len(c.Systems) == 0 {
		bad("systems: at least one system is needed")
	}
	for _, name := range c.SystemNames() {
		s := c.Systems[name]
		if !systemNameRE.MatchString(name) {
			bad("systems: name %q: want letters, digits, '.', '_' or '-'", name)
		}
		if s == nil {
			bad("systems.%s: empty", name)
			continue
		}
		if s.ImageDir == "" || !filepath.IsAbs(s.ImageDir) {
			bad("systems.%s.image_dir %q: must be an absolute path", name, s.ImageDir)
		}
		if s.Transfer == "" {
			s.Transfer = TransferLocal
		}
		if s.MungeSocket == "" {
			s.MungeSocket = DefaultMungeSocket
		}
		switch s.Transfer {
		case TransferLocal:
			if s.SSH != nil {
				bad("systems.%s: ssh settings given but transfer is %q", name, s.Transfer)
			}
		case TransferSSH:
			if s.SSH == nil || s.SSH.Host == "" {
				bad("systems.%s: transfer \"ssh\" needs ssh.host", name)
			} else if strings.HasPrefix(s.SSH.Host, "-") || strings.ContainsAny(s.SSH.Host+s.SSH.User, " @/\n") {
				bad("systems.%s.ssh: bad host or user", name)
			}
		default:
			bad("systems.%s.transfer %q: want %q or %q", name, s.Transfer, TransferLocal, TransferSSH)
		}
	}
	if err := c.checkImageDirs(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkImageDirs refuses systems whose image directories overlap: one
// equal to or inside another, after resolving symbolic links (local
// systems), or as written on the same remote host (ssh systems). Each
// system's expiry removes the files that its own database does not
// know, so a shared directory loses the other system's images.
func (c *Config) checkImageDirs() error {
	type place struct{ name, host, dir string }
	var places []place
	for _, name := range c.SystemNames() {
		s := c.Systems[name]
		if s == nil || !filepath.IsAbs(s.ImageDir) {
			continue
		}
		p := place{name: name, dir: filepath.Clean(s.ImageDir)}
		if s.Transfer == TransferSSH {
			if s.SSH == nil {
				continue
			}
			p.host = s.SSH.Host
		} else {
			p.dir = resolveExisting(p.dir)
		}
		places = append(places, p)
	}
	var errs []error
	for i, a := range places {
		for _, b := range places[i+1:] {
			if a.host != b.host {
				continue
			}
			switch {
			case a.dir == b.dir:
				errs = append(errs, fmt.Errorf("systems.%s and systems.%s: same image directory %s", a.name, b.name, a.dir))
			case within(a.dir, b.dir):
				errs = append(errs, fmt.Errorf("systems.%s: image directory %s is inside that of systems.%s (%s)", a.name, a.dir, b.name, b.dir))
			case within(b.dir, a.dir):
				errs = append(errs, fmt.Errorf("systems.%s: image directory %s is inside that of systems.%s (%s)", b.name, b.dir, a.name, a.dir))
			}
		}
	}
	return errors.Join(errs...)
}

// within reports whether path p is strictly inside directory dir (both
// clean and absolute).
func within(p, dir string) bool {
	return strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// resolveExisting resolves the symbolic links of the longest existing
// prefix of an absolute path; the rest, which does not exist yet, is
// joined unchanged.
func resolveExisting(p string) string {
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// SystemNames returns the configured systems, sorted.
func (c *Config) SystemNames() []string {
	var n []string
	for k := range c.Systems {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
