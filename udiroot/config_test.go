// SPDX-License-Identifier: BSD-3-Clause

package udiroot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want func(c *Config) // edits Default() into the expected config
	}{
		{"empty", "", func(c *Config) {}},
		{"comments and blanks", "# a comment\n\n   # indented comment\n\t\n", func(c *Config) {}},
		{"basic", "imagePath=/images\nudiMount = /var/udi \nsystem=cluster1\n", func(c *Config) {
			c.ImagePath, c.UDIMount, c.System = "/images", "/var/udi", "cluster1"
		}},
		{"trailing slash cleaned", "imagePath=/images/\n", func(c *Config) { c.ImagePath = "/images" }},
		{"continuation", "siteEnv=A=1 \\\n   B=2\\\n C=3\n", func(c *Config) {
			c.Env.Set = []EnvVar{{"A", "1"}, {"B", "2"}, {"C", "3"}}
		}},
		{"crlf", "system=x\r\nimageMount=fuse\r\n", func(c *Config) { c.System, c.ImageMount = "x", "fuse" }},
		{"value with equals", "siteEnv=OPTS=a=b\n", func(c *Config) { c.Env.Set = []EnvVar{{"OPTS", "a=b"}} }},
		{"gateways", "imageGateway=http://a:7777 unix:/run/gw.sock\ngatewayTimeout=3\n", func(c *Config) {
			c.ImageGateway = []string{"http://a:7777", "unix:/run/gw.sock"}
			c.GatewayTimeout = 3
		}},
		{"site env all", "siteEnv=SHIFTER_RUNTIME=1\nsiteEnvAppend=PATH=/opt/udiImage/bin\nsiteEnvPrepend=LD_LIBRARY_PATH=/x\nsiteEnvUnset=A B\n", func(c *Config) {
			c.Env = EnvRules{
				Set:     []EnvVar{{"SHIFTER_RUNTIME", "1"}},
				Append:  []EnvVar{{"PATH", "/opt/udiImage/bin"}},
				Prepend: []EnvVar{{"LD_LIBRARY_PATH", "/x"}},
				Unset:   []string{"A", "B"},
			}
		}},
		{"siteFs", `siteFs=/home:/home;/scratch;"/proj:/data:ro";/a:/b:rec:private` + "\n", func(c *Config) {
			c.SiteFs = `/home:/home;/scratch;"/proj:/data:ro";/a:/b:rec:private`
		}},
		{"hooks and bools", "sitePreMountHook=/etc/shifter/pre.sh\nsitePostMountHook=/etc/shifter/post.sh\nallowLocalChroot=1\npopulateEtcDynamically=0\netcPath=/etc/shifter/etc\n", func(c *Config) {
			c.SitePreMountHook, c.SitePostMountHook = "/etc/shifter/pre.sh", "/etc/shifter/post.sh"
			c.AllowLocalChroot, c.PopulateEtcDynamically, c.EtcPath = true, false, "/etc/shifter/etc"
		}},
		{"modules", "module_mpich_siteEnvPrepend=LD_LIBRARY_PATH=/opt/udiImage/modules/mpich/lib64\nmodule_mpich_siteFs=/opt/cray:/opt/cray:ro\nmodule_mpich_userhook=/opt/udiImage/modules/mpich/bin/check\nmodule_mpich_conflict=openmpi\nmodule_openmpi_enabled=0\ndefaultModules=mpich\n", func(c *Config) {
			c.Modules["mpich"] = &Module{Name: "mpich", Enabled: true,
				Env:      EnvRules{Prepend: []EnvVar{{"LD_LIBRARY_PATH", "/opt/udiImage/modules/mpich/lib64"}}},
				SiteFs:   "/opt/cray:/opt/cray:ro",
				UserHook: "/opt/udiImage/modules/mpich/bin/check",
				Conflict: []string{"openmpi"},
			}
			c.Modules["openmpi"] = &Module{Name: "openmpi", Enabled: false}
			c.DefaultModules = []string{"mpich"}
		}},
		{"legacy keys ignored", "loopMount=/var/udiLoopMount\nrootfsType=tmpfs\n", func(c *Config) {
			c.Ignored = []string{"test.conf:1: loopMount: " + ignoredKeys["loopMount"]}
		}},
		{"image mount", "imageMount=loop\ndefaultImageType=id\nmountPropagationStyle=slave\n", func(c *Config) {
			c.ImageMount, c.DefaultImageType, c.MountPropagationStyle = "loop", "id", "slave"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("test.conf", []byte(tc.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := Default()
			want.File = "test.conf"
			tc.want(want)
			if d := cmp.Diff(want, got, cmpopts.IgnoreFields(Config{}, "Lines", "SiteFsLines")); d != "" {
				t.Errorf("Parse (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		msg      string // substring of the message
	}{
		{"unknown key", "system=a\nfrobnicate=1\n", 2, `unknown key "frobnicate"`},
		{"no equals", "# c\nimagePath\n", 2, "not key=value"},
		{"empty key", "=x\n", 1, "empty key"},
		{"relative path", "imagePath=images\n", 1, "not an absolute path"},
		{"empty required path", "imagePath=\n", 1, "empty path"},
		{"dotdot path", "udiMount=/var/../etc\n", 1, "not a clean path"},
		{"bad bool", "allowLocalChroot=maybe\n", 1, "not 0 or 1"},
		{"bad imageMount", "imageMount=nfs\n", 1, "not one of auto, loop, fuse"},
		{"bad image type", "defaultImageType=custom\n", 1, "not one of"},
		{"siteFs control character", "siteFs=/a:/b\x1b\n", 1, "control character"},
		{"bad propagation", "mountPropagationStyle=shared\n", 1, "not one of"},
		{"bad env", "siteEnv=NOVALUE\n", 1, "not NAME=VALUE"},
		{"bad env name", "siteEnv==x\n", 1, "not NAME=VALUE"},
		{"relative optUdiImage", "\noptUdiImage=opt/udi\n", 2, "not an absolute path"},
		{"relative copyPath", "module_x_copyPath=a\n", 1, "not an absolute path"},
		{"relative roothook", "module_x_roothook=a.sh\n", 1, "not an absolute path"},
		{"bad size", "perNodeCacheSizeLimit=10x\n", 1, "not a size"},
		{"bad size suffixes", "perNodeCacheSizeLimit=10gb\n", 1, "not a size"},
		{"negative size", "perNodeCacheSizeLimit=-1\n", 1, "not a size"},
		{"rootfsType two words", "rootfsType=tmp fs\n", 1, "one word"},
		{"module bad name", "module_a.b!_enabled=1\n", 1, "module name"},
		{"module without subkey", "module_x=1\n", 1, "unknown key"},
		{"undefined default module", "module_a_enabled=1\ndefaultModules=a,b\n", 2, `module "b" is not defined`},
		{"none with others", "defaultModules=none,a\n", 1, "cannot be combined"},
		{"continuation at eof", "system=a\nsiteEnv=A=1 \\\n", 2, "continuation at end of file"},
		{"nul", "system=a\x00b\n", 1, "NUL"},
		{"etc without path", "populateEtcDynamically=0\n", 0, "needs etcPath"},
		{"timeout", "gatewayTimeout=-1\n", 1, "seconds"},
		{"system two words", "system=a b\n", 1, "one word"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("site.conf", []byte(tc.in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error = %v, want *ParseError", tc.in, err)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("error %v does not wrap ErrSyntax", err)
			}
			if pe.File != "site.conf" || pe.Line != tc.line {
				t.Errorf("error at %s:%d, want site.conf:%d", pe.File, pe.Line, tc.line)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

func TestParseLines(t *testing.T) {
	c, err := Parse("x.conf", []byte("# c\nsystem=a\nsiteEnv=A=1 \\\n B=2\nsiteFs=/a:/b\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"system": 2, "siteEnv": 3, "siteFs": 5}
	if d := cmp.Diff(want, c.Lines); d != "" {
		t.Errorf("Lines (-want +got):\n%s", d)
	}
}

func TestParseModuleList(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"a", []string{"a"}, false},
		{" a , b,,a ", []string{"a", "b"}, false},
		{"none", []string{"none"}, false},
		{"none,a", nil, true},
		{"a b", nil, true},
		{"a_b", nil, true},
	}
	for _, tc := range tests {
		got, err := ParseModuleList(tc.in)
		if (err != nil) != tc.wantErr || !cmp.Equal(got, tc.want) {
			t.Errorf("ParseModuleList(%q) = %q, %v; want %q, err %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestExampleConfig parses the example shipped in etc/ and installed by
// make install, so that it never drifts from the parser.
func TestExampleConfig(t *testing.T) {
	p := filepath.Join("..", "etc", "udiRoot.conf.example")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(p, b)
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if c.ImagePath != "/var/lib/shifter/images" || c.ImageMount != ImageMountAuto || c.DefaultImageType != "docker" {
		t.Errorf("example config: imagePath %q, imageMount %q, defaultImageType %q", c.ImagePath, c.ImageMount, c.DefaultImageType)
	}
}

// TestDocumentedKeys checks that every key the parser accepts is
// documented in docs/udiRoot.conf.md and in the example file.
func TestDocumentedKeys(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "udiRoot.conf.md"))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := os.ReadFile(filepath.Join("..", "etc", "udiRoot.conf.example"))
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{}
	for k := range globalKeys {
		keys = append(keys, k)
	}
	for k := range ignoredKeys {
		keys = append(keys, k)
	}
	for _, sub := range []string{"siteEnv", "siteEnvAppend", "siteEnvPrepend", "siteEnvUnset", "siteFs", "userhook", "roothook", "copyPath", "conflict", "enabled"} {
		keys = append(keys, "module_<name>_"+sub)
	}
	for _, k := range keys {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("key %s is not documented in docs/udiRoot.conf.md", k)
		}
	}
	for k := range globalKeys {
		if !strings.Contains(string(ex), k+"=") {
			t.Errorf("key %s is not in etc/udiRoot.conf.example", k)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "udiRoot.conf")
	if err := os.WriteFile(p, []byte("imagePath=/srv/images\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.ImagePath != "/srv/images" || c.File != p {
		t.Errorf("Load = imagePath %q file %q", c.ImagePath, c.File)
	}
	if _, err := Load(filepath.Join(dir, "missing"), false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.conf")
	if err := os.WriteFile(big, []byte(strings.Repeat("# padding\n", MaxFileSize/10+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big, false); !errors.Is(err, ErrSyntax) {
		t.Errorf("Load(big) = %v, want ErrSyntax", err)
	}
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"imagePath=/a\n",
		"siteEnv=A=1 \\\n B=2\n",
		"siteFs=/a:/b:ro;\"/c\"\n",
		"module_x_siteEnv=A=1\nmodule_x_conflict=y\ndefaultModules=x\n",
		"# c\n=\n",
		"a\\\n",
		"imageMount=auto\r\n",
	}
	if b, err := os.ReadFile(filepath.Join("..", "etc", "udiRoot.conf.example")); err == nil {
		seeds = append(seeds, string(b))
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.conf", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			if lines := strings.Count(string(data), "\n") + 1; pe.Line < 0 || pe.Line > lines+1 {
				t.Fatalf("error line %d outside 0..%d", pe.Line, lines+1)
			}
			return
		}
		for _, p := range []string{c.ImagePath, c.UDIMount} {
			if !strings.HasPrefix(p, "/") {
				t.Fatalf("accepted relative path %q", p)
			}
		}
		for _, e := range c.Env.Set {
			if !ValidEnvName(e.Name) {
				t.Fatalf("accepted bad env name %q", e.Name)
			}
		}
	})
}

func TestNodeCacheKeys(t *testing.T) {
	for _, tc := range []struct {
		conf string
		err  string
		chk  func(c *Config) bool
	}{
		{"", "", func(c *Config) bool {
			return c.NodeCacheDir == "" && c.NodeCacheSize == 10<<30 && c.NodeCacheChunkSize == 256<<10 &&
				c.ImageSource == "file" && c.ShifterdSocket == "/run/shifter/shifterd.sock" && c.ShifterdIdle == 10*time.Minute
		}},
		{"nodeCacheDir=/var/cache/shifter\nnodeCacheSize=512M\nnodeCacheChunkSize=1M\n", "", func(c *Config) bool {
			return c.NodeCacheDir == "/var/cache/shifter" && c.NodeCacheSize == 512<<20 && c.NodeCacheChunkSize == 1<<20
		}},
		{"nodeCacheSize=2T\n", "", func(c *Config) bool { return c.NodeCacheSize == 2<<40 }},
		{"nodeCacheSize=65536k\n", "", func(c *Config) bool { return c.NodeCacheSize == 64<<20 }},
		{"nodeCacheSize=1k\n", "out of range", nil},
		{"nodeCacheSize=10X\n", "not a size", nil},
		{"nodeCacheSize=-1G\n", "not a size", nil},
		{"nodeCacheSize=99999999999T\n", "too large", nil},
		{"nodeCacheChunkSize=100K\n", "power of two", nil},
		{"nodeCacheChunkSize=32M\n", "out of range", nil},
		{"nodeCacheDir=cache\n", "absolute", nil},
		{"imageSource=http://gw:8000/images/default/\n", "", func(c *Config) bool { return c.ImageSource == "http://gw:8000/images/default" }},
		{"imageSource=https://mirror.example/x\n", "", func(c *Config) bool { return c.ImageSource == "https://mirror.example/x" }},
		{"imageSource=ftp://x/\n", "neither", nil},
		{"imageSource=http://user:pw@gw/\n", "neither", nil},
		{"imageSource=http://gw/?a=b\n", "neither", nil},
		{"imageSource=/var/lib/images\n", "neither", nil},
		{"shifterdSocket=\n", "", func(c *Config) bool { return c.ShifterdSocket == "" }},
		{"shifterdIdleUnmount=90\n", "", func(c *Config) bool { return c.ShifterdIdle == 90*time.Second }},
		{"shifterdIdleUnmount=1h30m\n", "", func(c *Config) bool { return c.ShifterdIdle == 90*time.Minute }},
		{"shifterdIdleUnmount=-5s\n", "not a duration", nil},
		{"shifterdMetrics=127.0.0.1:9157\n", "", func(c *Config) bool { return c.ShifterdMetrics == "127.0.0.1:9157" }},
		{"shifterdMetrics=9157\n", "host:port", nil},
		{"imageMount=shifterd\n", "", func(c *Config) bool { return c.ImageMount == ImageMountShifterd }},
	} {
		c, err := Parse("udiRoot.conf", []byte(tc.conf))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.conf, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.conf, err, tc.err)
		case tc.err == "" && !tc.chk(c):
			t.Errorf("%q: parsed %+v", tc.conf, c)
		}
	}
}
