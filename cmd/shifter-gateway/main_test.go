// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/shifter-go/shifter/gateway"
	"github.com/shifter-go/shifter/internal/testutil"
)

// TestFlagsOverrideConfig runs the built command with --check-config.
func TestFlagsOverrideConfig(t *testing.T) {
	bin := testutil.Binary(t, "shifter-gateway")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "gw.json")
	os.WriteFile(cfgPath, []byte(`{"workers": 3, "systems": {"a": {"image_dir": "/a"}, "b": {"image_dir": "/b"}}}`), 0o644)
	cases := []struct {
		name string
		args []string
		ok   bool
		chk  func(c *gateway.Config) bool
	}{
		{"defaults", nil, true, func(c *gateway.Config) bool {
			return c.Systems["default"] != nil && c.Listen[0] == gateway.DefaultListen && c.Workers == 2
		}},
		{"quick start", []string{"--listen", "127.0.0.1:8000", "--listen", "unix:/tmp/x.sock", "--image-dir", "/srv/img", "--data-dir", "/srv/gw",
			"--system", "mycluster", "--insecure-registry", "127.0.0.1:5000", "--workers", "5", "--log-level", "debug"}, true,
			func(c *gateway.Config) bool {
				s := c.Systems["mycluster"]
				return s != nil && s.ImageDir == "/srv/img" && len(c.Systems) == 1 && c.Listen[1] == "unix:/tmp/x.sock" &&
					c.DataDir == "/srv/gw" && c.CacheDir == "/srv/gw/cache" && c.Registries["127.0.0.1:5000"].Insecure && c.Workers == 5
			}},
		{"file", []string{"--config", cfgPath}, true, func(c *gateway.Config) bool { return c.Workers == 3 && len(c.Systems) == 2 }},
		{"file and system", []string{"--config", cfgPath, "--system", "b", "--image-dir", "/bb"}, true,
			func(c *gateway.Config) bool { return c.Systems["b"].ImageDir == "/bb" && c.Systems["a"].ImageDir == "/a" }},
		{"ambiguous image dir", []string{"--config", cfgPath, "--image-dir", "/x"}, false, nil},
		{"bad log level", []string{"--log-level", "loud"}, false, nil},
		{"unknown flag", []string{"--frobnicate"}, false, nil},
		{"missing config", []string{"--config", filepath.Join(dir, "nope.json")}, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.Command(bin, append(c.args, "--check-config")...).CombinedOutput()
			if (err == nil) != c.ok {
				t.Fatalf("%v: err %v\n%s", c.args, err, out)
			}
			if !c.ok {
				return
			}
			var cfg gateway.Config
			if err := json.Unmarshal(out, &cfg); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !c.chk(&cfg) {
				t.Errorf("%v: config %s", c.args, out)
			}
		})
	}
}
