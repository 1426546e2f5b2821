// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
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
		c.CacheDir != "/var/lib/shifter/gateway/cache" || c.Systems["default"].MungeSocket != DefaultMungeSocket {
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
		c.PullUpdateTimeout.D() != 5*time.Minute || c.CacheDir != "/srv/gw/cache" {
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
