// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Listen[0] != "unix:/run/shifter/gateway.sock" || c.Systems["default"].ImageDir != "/var/lib/shifter/images" ||
		c.CacheDir != "/var/lib/shifter/gateway/cache" || c.Systems["default"].MungeSocket != DefaultMungeSocket ||
		c.ChunkSize != 256<<10 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestParseConfig(t *testing.T) {
	good := `{
  "listen": ["127.0.0.1:7777", "unix:/run/gw.sock"],
  "data_dir": "/srv/gw",
  "workers": 8,
  "expiration": "720h",
  "failure_hold": "0s",
  "registries": {"registry.example.org:5000": {"insecure": true, "ca_file": "/etc/ca.pem"}},
  "mksquashfs_args": ["-comp", "zstd"],
  "chunk_size": 1048576,
  "systems": {
    "perlmutter": {"image_dir": "/global/images", "admins": ["root", "1001"], "munge_socket": "/run/munge/perlmutter.socket"},
    "cori": {"image_dir": "/scratch/images", "transfer": "ssh", "ssh": {"host": "cori-login", "user": "shifter", "key": "/etc/shifter/key"}}
  }
}`
	c, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Expiration.D() != 720*time.Hour || c.Workers != 8 || len(c.Systems) != 2 || c.Systems["perlmutter"].Transfer != TransferLocal ||
		c.PullUpdateTimeout.D() != 5*time.Minute || c.CacheDir != "/srv/gw/cache" || c.ChunkSize != 1<<20 {
		t.Errorf("parsed: %+v", c)
	}
	if _, ok := c.Systems["default"]; ok {
		t.Error("systems in the file should replace the default system")
	}
	bad := map[string]string{
		"unknown key":        `{"workerz": 2}`,
		"unknown system key": `{"systems": {"a": {"image_dir": "/x", "imagedir": "/y"}}}`,
		"duration as number": `{"expiration": 3600}`,
		"bad duration":       `{"expiration": "90 days"}`,
		"negative duration":  `{"job_timeout": "-1h"}`,
		"trailing data":      `{} {}`,
		"relative image dir": `{"systems": {"a": {"image_dir": "images"}}}`,
		"bad transfer":       `{"systems": {"a": {"image_dir": "/x", "transfer": "ftp"}}}`,
		"ssh without host":   `{"systems": {"a": {"image_dir": "/x", "transfer": "ssh"}}}`,
		"ssh host option":    `{"systems": {"a": {"image_dir": "/x", "transfer": "ssh", "ssh": {"host": "-oProxyCommand=x"}}}}`,
		"bad system name":    `{"systems": {"../a": {"image_dir": "/x"}}}`,
		"http not insecure":  `{"registries": {"r:5000": {"url": "http://r:5000"}}}`,
		"zero workers":       `{"workers": 0}`,
		"bad listen":         `{"listen": ["localhost"]}`,
		"relative unix":      `{"listen": ["unix:gw.sock"]}`,
		"bad level":          `{"log_level": "chatty"}`,
		"bad authentication": `{"authentication": "kerberos"}`,
		"no systems":         `{"systems": {}}`,
		"chunk size 0":       `{"chunk_size": 0}`,
		"chunk size not 2^n": `{"chunk_size": 300000}`,
		"chunk size < 4 KiB": `{"chunk_size": 2048}`,
		"chunk size too big": `{"chunk_size": 1073741824}`,
		"chunk size string":  `{"chunk_size": "256K"}`,
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			c, err := ParseConfig([]byte(in))
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Errorf("accepted %s", in)
			} else if strings.Contains(err.Error(), "\n\n") {
				t.Errorf("error: %q", err)
			}
		})
	}
}

// TestOverlappingImageDirs: two systems sharing one image directory
// (or one inside the other, or through a symbolic link) are refused:
// autoexpire of one removed the other's READY images (#17 item 6).
func TestOverlappingImageDirs(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.MkdirAll(filepath.Join(real, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	local := func(d string) *System { return &System{ImageDir: d, Transfer: TransferLocal} }
	remote := func(host, d string) *System {
		return &System{ImageDir: d, Transfer: TransferSSH, SSH: &SSH{Host: host}}
	}
	for _, tc := range []struct {
		name string
		a, b *System
		ok   bool
	}{
		{"same directory", local(real), local(real), false},
		{"same directory, trailing slash and dot", local(real), local(real + "/./"), false},
		{"through a symbolic link", local(real), local(filepath.Join(dir, "link")), false},
		{"inside another", local(real), local(filepath.Join(real, "sub")), false},
		{"inside another through a link", local(filepath.Join(dir, "link", "sub")), local(real), false},
		{"not yet created, inside through a link", local(filepath.Join(dir, "link", "new", "x")), local(filepath.Join(real, "new")), false},
		{"same remote directory on one host", remote("h1", "/img"), remote("h1", "/img"), false},
		{"remote inside on one host", remote("h1", "/img"), remote("h1", "/img/a"), false},
		{"siblings with a common prefix", local(filepath.Join(dir, "img")), local(filepath.Join(dir, "img2")), true},
		{"distinct directories", local(filepath.Join(real, "sub")), local(filepath.Join(dir, "other")), true},
		{"same path on two remote hosts", remote("h1", "/img"), remote("h2", "/img"), true},
		{"local and remote with one path", local(real), remote("h1", real), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.DataDir = filepath.Join(dir, "data")
			c.Systems = map[string]*System{"a": tc.a, "b": tc.b}
			err := c.Validate()
			if tc.ok && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "image directory")) {
				t.Errorf("accepted overlapping image directories (err %v)", err)
			}
		})
	}
}
