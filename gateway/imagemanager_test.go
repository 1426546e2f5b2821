// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// Shifter's imagemanager.json in the shapes its repository ships
// (imagemanager.json.example, the CI configuration, the test
// configuration with a remote platform), written from the keys that
// reference §4.5 documents, with values of our own.
var shifterImagemanagers = map[string]string{
	"example": `{
    "WorkerThreads": 4,
    "DefaultLustreReplication": 1,
    "DefaultOstCount": 8,
    "DefaultImageLocation": "registry-1.docker.io",
    "DefaultImageFormat": "squashfs",
    "PullUpdateTimeout": 300,
    "ImageExpirationTimeout": "30:00:00:00",
    "MongoDBURI": "mongodb://db.example.org/",
    "MongoDB": "ShifterSite",
    "CacheDirectory": "/srv/shifter/cache/",
    "ExpandDirectory": "/srv/shifter/expand/",
    "Locations": {
        "registry-1.docker.io": {"remotetype": "dockerv2", "authentication": "http"}
    },
    "Platforms": {
        "edison": {
            "mungeSocketPath": "/var/run/munge/munge.socket.2",
            "accesstype": "local",
            "admins": ["root", "sysadm"],
            "usergroupService": "local",
            "local": {"imageDir": "/srv/shifter/images"}
        }
    }
}`,
	"ci": `{
    "WorkerThreads": 2,
    "DefaultImageLocation": "docker.io",
    "DefaultImageFormat": "squashfs",
    "PullUpdateTimeout": 120,
    "ImageExpirationTimeout": "1:12:00:00",
    "MongoDBURI": "mongodb://localhost/",
    "MongoDB": "Shifter",
    "CacheDirectory": "/tmp/shifter-ci/cache",
    "ExpandDirectory": "/tmp/shifter-ci/expand",
    "Locations": {"docker.io": {"remotetype": "dockerv2"}},
    "Platforms": {
        "ci": {
            "mungeSocketPath": "/run/munge/munge.socket.2",
            "use_external": true,
            "policy_file": "/etc/containers/policy.json",
            "accesstype": "local",
            "local": {"imageDir": "/tmp/shifter-ci/images"}
        }
    }
}`,
	"everything": `{
    "WorkerThreads": 3,
    "LogLevel": "warning",
    "MongoDBURI": "mongodb://localhost/",
    "MongoDB": "Shifter",
    "Authentication": "munge",
    "DefaultImageLocation": "index.docker.io",
    "DefaultImageFormat": "squashfs",
    "PullUpdateTimeout": 90,
    "PullUpdateTime": 90,
    "ImageExpirationTimeout": "0:01:30:15",
    "CacheDirectory": "/var/cache/shifter",
    "ExpandDirectory": "/var/tmp/shifter",
    "ConverterOptions": {"squashfs": "-comp xz -Xbcj x86", "cramfs": ["-v"]},
    "ImportUsers": ["alice", "1002"],
    "Metrics": true,
    "examiner": "/usr/local/bin/scan-image",
    "DefaultLustreReplication": 1,
    "DefaultOstCount": 16,
    "usergroupService": "local",
    "mountCommand": "mount",
    "Locations": {
        "index.docker.io": {"remotetype": "dockerv2", "authMethod": "token"},
        "registry.site.org": {"remotetype": "dockerv2", "url": "https://registry.site.org", "authMethod": "basic", "sslcacert": "/etc/shifter/site-ca.pem"},
        "lab": {"remotetype": "dockerv2", "url": "http://lab-registry.site.org:5000"}
    },
    "Platforms": {
        "local1": {
            "mungeSocketPath": "/run/munge/local1.socket",
            "accesstype": "local",
            "admins": ["root"],
            "local": {"imageDir": "/global/shifter/local1"}
        },
        "remote1": {
            "mungeSocketPath": "/run/munge/remote1.socket",
            "accesstype": "remote",
            "admins": ["root", "shifteradm"],
            "host": ["remote1-login1", "remote1-login2"],
            "ssh": {
                "username": "shifter",
                "key": "/etc/shifter/ssh/id_rsa",
                "imageDir": "/global/shifter/remote1",
                "sshCmdOptions": ["-o", "BatchMode=yes"],
                "scpCmdOptions": "-o BatchMode=yes -q"
            }
        }
    }
}`,
}

func TestConvertImagemanagerMapping(t *testing.T) {
	cases := []struct {
		name  string
		check func(t *testing.T, c *Config)
		warn  []string // keys warned about as having no meaning here
	}{
		{"example", func(t *testing.T, c *Config) {
			s := c.Systems["edison"]
			if s == nil || s.ImageDir != "/srv/shifter/images" || s.Transfer != TransferLocal ||
				s.MungeSocket != "/var/run/munge/munge.socket.2" || !slices.Equal(s.Admins, []string{"root", "sysadm"}) {
				t.Errorf("systems.edison: %+v", s)
			}
			if c.Workers != 4 || c.DefaultRegistry != "index.docker.io" || c.PullUpdateTimeout.D() != 5*time.Minute ||
				c.Expiration.D() != 30*24*time.Hour || c.CacheDir != "/srv/shifter/cache/shifter-gateway" ||
				c.WorkDir != "/srv/shifter/expand/shifter-gateway" || c.ImportUsers != nil || len(c.Registries) != 0 {
				t.Errorf("config: %+v", c)
			}
			if !slices.Contains(c.Listen, ShifterAPIListen) {
				t.Errorf("listen %v: want Shifter's port too", c.Listen)
			}
		}, []string{"DefaultLustreReplication", "DefaultOstCount", "MongoDBURI", "MongoDB",
			"Locations.registry-1.docker.io.authentication", "Platforms.edison.usergroupService"}},
		{"ci", func(t *testing.T, c *Config) {
			if s := c.Systems["ci"]; s == nil || s.ImageDir != "/tmp/shifter-ci/images" || c.Expiration.D() != 36*time.Hour ||
				c.PullUpdateTimeout.D() != 2*time.Minute || c.DefaultRegistry != "index.docker.io" {
				t.Errorf("config: %+v %+v", c, c.Systems["ci"])
			}
		}, []string{"Platforms.ci.use_external", "Platforms.ci.policy_file", "MongoDB"}},
		{"everything", func(t *testing.T, c *Config) {
			if c.LogLevel != "warn" || c.Workers != 3 || c.Authentication != AuthMunge || !c.LookupLog ||
				c.Expiration.D() != time.Hour+30*time.Minute+15*time.Second || c.PullUpdateTimeout.D() != 90*time.Second {
				t.Errorf("config: %+v", c)
			}
			if !slices.Equal(c.MksquashfsArgs, []string{"-comp", "xz", "-Xbcj", "x86"}) {
				t.Errorf("mksquashfs_args %q", c.MksquashfsArgs)
			}
			if c.ImportUsers == nil || c.ImportUsers.All || !slices.Equal(c.ImportUsers.Users, []string{"alice", "1002"}) {
				t.Errorf("import_users %+v", c.ImportUsers)
			}
			if r := c.Registries["registry.site.org"]; r.CAFile != "/etc/shifter/site-ca.pem" || r.Insecure {
				t.Errorf("registries.registry.site.org: %+v", r)
			}
			if r := c.Registries["lab-registry.site.org:5000"]; !r.Insecure {
				t.Errorf("registries: %+v: want lab-registry.site.org:5000 insecure (http URL)", c.Registries)
			}
			if _, ok := c.Registries["index.docker.io"]; ok || len(c.Registries) != 2 {
				t.Errorf("registries: %+v", c.Registries)
			}
			r := c.Systems["remote1"]
			if r == nil || r.Transfer != TransferSSH || r.ImageDir != "/global/shifter/remote1" || r.MungeSocket != "/run/munge/remote1.socket" ||
				r.SSH == nil || r.SSH.Host != "remote1-login1" || r.SSH.User != "shifter" || r.SSH.Key != "/etc/shifter/ssh/id_rsa" ||
				!slices.Equal(r.SSH.SSHOptions, []string{"-o", "BatchMode=yes"}) || !slices.Equal(r.SSH.SCPOptions, []string{"-o", "BatchMode=yes", "-q"}) ||
				!slices.Equal(r.Admins, []string{"root", "shifteradm"}) {
				t.Errorf("systems.remote1: %+v %+v", r, r.SSH)
			}
			if l := c.Systems["local1"]; l == nil || l.Transfer != TransferLocal || l.ImageDir != "/global/shifter/local1" {
				t.Errorf("systems.local1: %+v", l)
			}
		}, []string{"PullUpdateTime", "ConverterOptions.cramfs", "examiner", "mountCommand", "usergroupService",
			"Locations.index.docker.io.authMethod", "Locations.registry.site.org.authMethod", "MongoDBURI"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, notes, err := ConvertImagemanager([]byte(shifterImagemanagers[c.name]))
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg)
			for _, k := range c.warn {
				if !slices.ContainsFunc(notes, func(n string) bool { return strings.HasPrefix(n, "warning: "+k+": no meaning here") }) {
					t.Errorf("no warning for %s in %q", k, notes)
				}
			}
			for _, n := range notes {
				if strings.Contains(n, "\n") || !(strings.HasPrefix(n, "warning: ") || strings.HasPrefix(n, "note: ")) {
					t.Errorf("note %q: want one line starting with warning: or note:", n)
				}
			}
			// The result loads as a gateway.json and validates.
			b, _ := json.Marshal(cfg)
			back, err := ParseConfig(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := back.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConvertImagemanagerErrors(t *testing.T) {
	ok := `"Platforms": {"p": {"accesstype": "local", "local": {"imageDir": "/images"}}}`
	cases := []struct {
		in, err string
	}{
		{``, "not a JSON object"},
		{`[]`, "not a JSON object"},
		{`null`, "not a JSON object (null)"},
		{`{"WorkerThreads": 2,}`, "not a JSON object"},
		{`{` + ok + `} {}`, "trailing data"},
		{`{}`, "Platforms: no platform"},
		{`{"Platforms": {}}`, "Platforms: no platform"},
		{`{"WorkerThreads": "eight", ` + ok + `}`, "WorkerThreads: want a number"},
		{`{"WorkerThreads": 0, ` + ok + `}`, "workers 0"},
		{`{"LogLevel": "loud", ` + ok + `}`, `LogLevel "loud"`},
		{`{"Authentication": "kerberos", ` + ok + `}`, `Authentication "kerberos"`},
		{`{"ImageExpirationTimeout": "90 days", ` + ok + `}`, "ImageExpirationTimeout"},
		{`{"ImageExpirationTimeout": "0:0:0:0", ` + ok + `}`, "must be positive"},
		{`{"ImageExpirationTimeout": "1:-2:0:0", ` + ok + `}`, "field 2"},
		{`{"PullUpdateTimeout": "300", ` + ok + `}`, "PullUpdateTimeout: want a number"},
		{`{"CacheDirectory": "cache", ` + ok + `}`, `CacheDirectory "cache": want an absolute path`},
		{`{"ImportUsers": 3, ` + ok + `}`, "ImportUsers"},
		{`{"ImportUsers": ["a b"], ` + ok + `}`, "ImportUsers"},
		{`{"Metrics": "yes", ` + ok + `}`, "Metrics: want true or false"},
		{`{"ConverterOptions": {"squashfs": 4}, ` + ok + `}`, "ConverterOptions.squashfs"},
		{`{"Locations": {"r": {"url": "ftp://r"}}, ` + ok + `}`, "Locations.r.url"},
		{`{"Locations": {"r": {"sslcacert": "ca.pem"}}, ` + ok + `}`, "absolute path"},
		{`{"Locations": [], ` + ok + `}`, "Locations: want an object"},
		{`{"Platforms": {"p": {"local": {"imageDir": "/i"}}}}`, "Platforms.p.accesstype: required"},
		{`{"Platforms": {"p": {"accesstype": "ftp"}}}`, `accesstype "ftp"`},
		{`{"Platforms": {"p": {"accesstype": "local"}}}`, "Platforms.p.local.imageDir: required"},
		{`{"Platforms": {"p": {"accesstype": "local", "local": {"imageDir": "images"}}}}`, "want an absolute path"},
		{`{"Platforms": {"p": {"accesstype": "remote", "ssh": {"imageDir": "/i"}}}}`, "Platforms.p.host"},
		{`{"Platforms": {"p": {"accesstype": "local", "admins": "root", "local": {"imageDir": "/i"}}}}`, "admins: want a list"},
		{`{"Platforms": {"bad name": {"accesstype": "local", "local": {"imageDir": "/i"}}}}`, "bad name"},
		{`{"Platforms": {"a": {"accesstype": "local", "local": {"imageDir": "/i"}}, "b": {"accesstype": "local", "local": {"imageDir": "/i/b"}}}}`, "inside"},
	}
	for _, c := range cases {
		cfg, _, err := ConvertImagemanager([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.err) || cfg != nil {
			t.Errorf("%s: %v, want an error with %q", c.in, err, c.err)
		}
	}
}

// TestConvertImagemanagerImportUsers: Shifter's spellings of ImportUsers.
func TestConvertImagemanagerImportUsers(t *testing.T) {
	cases := []struct {
		v     string
		all   bool
		users []string
		note  bool
	}{
		{`"all"`, true, nil, false},
		{`"none"`, false, nil, false},
		{`"None"`, false, nil, false},
		{`[]`, false, []string{}, false},
		{`["alice", "bob"]`, false, []string{"alice", "bob"}, false},
		{`"alice"`, false, []string{"alice"}, true}, // Shifter: a substring test
	}
	for _, c := range cases {
		in := `{"ImportUsers": ` + c.v + `, "Platforms": {"p": {"accesstype": "local", "local": {"imageDir": "/i"}}}}`
		cfg, notes, err := ConvertImagemanager([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", c.v, err)
		}
		u := cfg.ImportUsers
		if u == nil || u.All != c.all || len(u.Users) != len(c.users) || !slices.Equal(u.Users, c.users) && len(c.users) > 0 {
			t.Errorf("%s: import_users %+v", c.v, u)
		}
		noted := slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "ImportUsers") })
		if noted != c.note {
			t.Errorf("%s: notes %q", c.v, notes)
		}
	}
}

// FuzzConvertImagemanager: any input converts to a configuration that
// loads and validates, with one-line notes, or gives an error; never a
// panic.
func FuzzConvertImagemanager(f *testing.F) {
	for _, name := range []string{"example", "ci", "everything"} {
		f.Add([]byte(shifterImagemanagers[name]))
	}
	f.Add([]byte(`{"Platforms": {"p": {"accesstype": "remote", "host": "h", "ssh": {"imageDir": "/i", "sshCmdOptions": "-o A=b"}}}}`))
	f.Add([]byte(`{"ImportUsers": "all", "Platforms": {"p": {"accesstype": "local", "local": {"imageDir": "/i"}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, notes, err := ConvertImagemanager(b)
		if err != nil {
			if cfg != nil || notes != nil {
				t.Fatalf("error %v with a result", err)
			}
			return
		}
		out, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("converted config does not load: %v\n%s", err, out)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("converted config does not validate: %v\n%s", err, out)
		}
		for _, n := range notes {
			if strings.ContainsAny(n, "\n\r") {
				t.Fatalf("note on several lines: %q", n)
			}
		}
	})
}
