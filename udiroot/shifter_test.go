// SPDX-License-Identifier: BSD-3-Clause

package udiroot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Configurations written for NERSC Shifter load (issue #14), with
// Shifter's meaning for every key it accepts.

// shifterExample is Shifter's shipped udiRoot.conf.example
// (udiRoot.conf.example.in) with its build-time placeholders filled in as
// `make install` would, its optUdiImage set, and its commented module
// example enabled as a site would: module copyPath and roothook, and a
// second siteFs line.
const shifterExample = `# udiRoot.conf for shifter
udiMount=/var/udiMount
loopMount=/var/udiLoopMount
imagePath=/images
udiRootPath=/usr
optUdiImage=/usr/libexec/shifter/opt/udiImage
etcPath=/etc/shifter/shifter_etc_files
mountUdiRootWritable=1
populateEtcDynamically = 1
allowLibcPwdCalls = 1
maxGroupCount=31
modprobePath=/sbin/modprobe
insmodPath=/sbin/insmod
cpPath=/bin/cp
mvPath=/bin/mv
chmodPath=/bin/chmod
ddPath=/bin/dd
rootfsType=tmpfs
siteFs=/home:/home
siteFs=/global/cscratch1:/global/cscratch1;/var/opt/cray/alps:/var/opt/cray/alps:ro
siteEnv=SHIFTER_RUNTIME=1
siteEnvAppend=PATH=/opt/udiImage/bin
imageGateway=http://imagegwapi:5000
system=mycluster
defaultImageType=docker
module_mpich_userhook = /opt/udiImage/modules/mpich/bin/check
module_mpich_roothook = /etc/shifter/mpich_roothook.sh
module_mpich_siteEnvPrepend = LD_LIBRARY_PATH=/opt/udiImage/modules/mpich/lib64
module_mpich_siteFs = /opt/cray:/opt/cray:ro
module_mpich_copyPath = /usr/lib/shifter/modules/mpich
module_mpich_copypath = /path/to/stuff/to/copy/in
`

func TestShifterExample(t *testing.T) {
	c, err := Parse("udiRoot.conf", []byte(shifterExample))
	if err != nil {
		t.Fatal(err)
	}
	if c.OptUdiImage != "/usr/libexec/shifter/opt/udiImage" || c.ImagePath != "/images" || !c.PopulateEtcDynamically || !c.MountUdiRootWritable || c.RootfsType != "tmpfs" {
		t.Errorf("optUdiImage %q imagePath %q populateEtcDynamically %v mountUdiRootWritable %v rootfsType %q",
			c.OptUdiImage, c.ImagePath, c.PopulateEtcDynamically, c.MountUdiRootWritable, c.RootfsType)
	}
	if want := "/home:/home;/global/cscratch1:/global/cscratch1;/var/opt/cray/alps:/var/opt/cray/alps:ro"; c.SiteFs != want {
		t.Errorf("siteFs = %q, want both lines: %q", c.SiteFs, want)
	}
	m := c.Modules["mpich"]
	if m == nil || m.CopyPath != "/usr/lib/shifter/modules/mpich" || m.RootHook != "/etc/shifter/mpich_roothook.sh" ||
		m.UserHook != "/opt/udiImage/modules/mpich/bin/check" || m.SiteFs != "/opt/cray:/opt/cray:ro" {
		t.Fatalf("module mpich = %+v", m)
	}
	// Every key with no effect here, or a different one, is named once.
	for _, k := range []string{"loopMount", "udiRootPath", "mountUdiRootWritable", "allowLibcPwdCalls", "maxGroupCount",
		"modprobePath", "insmodPath", "cpPath", "mvPath", "chmodPath", "ddPath", `unknown module key "copypath"`} {
		n := 0
		for _, l := range c.Ignored {
			if strings.Contains(l, k) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s named %d times in Ignored: %q", k, n, c.Ignored)
		}
	}
	for _, l := range c.Ignored {
		if strings.Contains(l, "\n") || !strings.HasPrefix(l, "udiRoot.conf:") {
			t.Errorf("note %q is not one line naming the file and line", l)
		}
	}
}

// shifterEveryKey sets every key Shifter's parser (UdiRootConfig.c
// _assign and parse_ShifterModule_key) accepts, in the shape of Shifter's
// own test configuration (src/test/test_udiRoot.conf.in) and its Cray
// template (rootfsType=ramfs, perNodeCache*).
const shifterEveryKey = `nodeContextPrefix=
udiMount=/var/udiMount
loopMount=/var/loopUdiMount
imagePath=/usr/syscom/shifter
udiRootPath=/opt/shifter
perNodeCachePath=/tmp
perNodeCacheSizeLimit=100G
perNodeCacheAllowedFsType=xfs
perNodeCacheAllowedFsType=ext4
usersToImport=sshd
usersToImport=munge nobody
sitePreMountHook=/etc/shifter/premount.sh
sitePostMountHook=/etc/shifter/postmount.sh
optUdiImage=/opt/shifter/deps/udiImage
etcPath=/opt/shifter/etc_files
allowLocalChroot=1
allowLibcPwdCalls=0
optionalSshdAsRoot=1
populateEtcDynamically=1
autoLoadKernelModule=1
mountPropagationStyle=slave
mountUdiRootWritable=0
maxGroupCount=31
modprobePath=/sbin/modprobe
insmodPath=/sbin/insmod
cpPath=/bin/cp
mvPath=/bin/mv
chmodPath=/bin/chmod
ddPath=/bin/dd
mkfsXfsPath=/usr/sbin/mkfs.xfs
rootfsType=ramfs
gatewayTimeout=30
kmodBasePath=/opt/shifter/kmod
kmodCacheFile=/tmp/udiRootLoadedModules.txt
siteFs=/home;/mnt
siteEnv=SHIFTER_RUNTIME=1 \
        TEST_ENV=yes
siteEnv=MORE=1
siteEnvAppend=PATH=/opt/udiImage/bin\
              MANPATH=/opt/udiImage/share/man
siteEnvPrepend=PKG_CONFIG_PATH=/this/is/fake
siteEnvUnset=_LMFILES_ LOADEDMODULES
siteEnvUnset=MODULEPATH
imageGateway=http://localhost:5000
imageGateway=http://backup:5000 http://third:5000
batchType=slurm
system=testSystem
defaultImageType=docker
defaultModules = mpich
module_mpich_userhook = /path/to/userhook
module_mpich_roothook = /path/to/roothook
module_mpich_siteEnvPrepend = LD_LIBRARY_PATH=/opt/udiImage/mpich/lib64 \
                              PATH=/opt/udiImage/mpich/bin
module_mpich_siteEnvAppend = PATH=/opt/udiImage/mpich/sbin
module_mpich_siteEnv = SHIFTER_MODULE_MPICH=1
module_mpich_siteEnvUnset = FAKE_MPI_VARIABLE
module_mpich_siteFs = /mpich/a:/mpicha
module_mpich_siteFs = /mpich/b:/mpichb
module_mpich_copyPath = /path/to/localized/mpich/stuff
module_mpich_conflict = openmpi
module_mpich_enabled = 1
module_openmpi_userhook = /path/to/openmpi_userhook
module_openmpi_siteEnv = SHIFTER_MODULE_OPENMPI=1
module_openmpi_siteEnv = SHIFTER_MODULE_OPENMPI=2
module_openmpi_conflict = mpich
module_openmpi_enabled = 0
`

func TestShifterEveryKey(t *testing.T) {
	c, err := Parse("test.conf", []byte(shifterEveryKey))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"perNodeCachePath", c.PerNodeCachePath, "/tmp"},
		{"perNodeCacheSizeLimit", c.PerNodeCacheSizeLimit, int64(100 << 30)},
		{"perNodeCacheAllowedFsType appends", c.PerNodeCacheAllowedFsType, []string{"xfs", "ext4"}},
		{"mkfsXfsPath", c.MkfsXfsPath, "/usr/sbin/mkfs.xfs"},
		{"usersToImport appends", c.UsersToImport, []string{"sshd", "munge", "nobody"}},
		{"optUdiImage", c.OptUdiImage, "/opt/shifter/deps/udiImage"},
		{"rootfsType", c.RootfsType, "ramfs"},
		{"mountUdiRootWritable", c.MountUdiRootWritable, false},
		{"allowLocalChroot", c.AllowLocalChroot, true},
		{"mountPropagationStyle", c.MountPropagationStyle, "slave"},
		{"gatewayTimeout", c.GatewayTimeout, 30},
		{"siteEnv appends", c.Env.Set, []EnvVar{{"SHIFTER_RUNTIME", "1"}, {"TEST_ENV", "yes"}, {"MORE", "1"}}},
		{"siteEnvAppend", c.Env.Append, []EnvVar{{"PATH", "/opt/udiImage/bin"}, {"MANPATH", "/opt/udiImage/share/man"}}},
		{"siteEnvUnset appends", c.Env.Unset, []string{"_LMFILES_", "LOADEDMODULES", "MODULEPATH"}},
		{"imageGateway appends", c.ImageGateway, []string{"http://localhost:5000", "http://backup:5000", "http://third:5000"}},
		{"module siteFs appends", c.Modules["mpich"].SiteFs, "/mpich/a:/mpicha;/mpich/b:/mpichb"},
		{"module roothook", c.Modules["mpich"].RootHook, "/path/to/roothook"},
		{"module copyPath", c.Modules["mpich"].CopyPath, "/path/to/localized/mpich/stuff"},
		{"module siteEnv: the last wins, as in Shifter", c.Modules["openmpi"].Env.Set, []EnvVar{{"SHIFTER_MODULE_OPENMPI", "2"}}},
		{"module enabled=0", c.Modules["openmpi"].Enabled, false},
		{"defaultModules", c.DefaultModules, []string{"mpich"}},
	}
	for _, ch := range checks {
		if !cmp.Equal(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.what, ch.got, ch.want)
		}
	}
	notes := strings.Join(c.Ignored, "\n")
	for _, k := range []string{"rootfsType: ", "kmodBasePath: deprecated", "nodeContextPrefix: defunct", "module_openmpi_siteEnv: set again (first on line"} {
		if !strings.Contains(notes, k) {
			t.Errorf("no note for %s in:\n%s", k, notes)
		}
	}
	for _, k := range []string{"mountUdiRootWritable", "perNodeCache", "mkfsXfsPath"} {
		if strings.Contains(notes, k) {
			t.Errorf("%s has its meaning here, yet is noted:\n%s", k, notes)
		}
	}
}

func TestRepeatedKeys(t *testing.T) {
	c, err := Parse("r.conf", []byte("system=a\nsiteFs=/a\nsiteFs=\nsiteFs=/b:/c:ro\nsystem=b\nmodule_m_siteEnv=A=1\nmodule_m_siteEnv=B=2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.System != "b" || c.SiteFs != "/a;/b:/c:ro" || !cmp.Equal(c.Modules["m"].Env.Set, []EnvVar{{"B", "2"}}) {
		t.Errorf("system %q siteFs %q module env %v", c.System, c.SiteFs, c.Modules["m"].Env.Set)
	}
	want := []string{
		"r.conf:5: system: set again (first on line 1): the last value wins, as in Shifter",
		"r.conf:7: module_m_siteEnv: set again (first on line 6): the last value wins, as in Shifter",
	}
	if !cmp.Equal(c.Ignored, want) {
		t.Errorf("Ignored = %q, want %q", c.Ignored, want)
	}
	if c.Lines["system"] != 1 || c.Lines["siteFs"] != 2 {
		t.Errorf("Lines = %v, want the first line of each key", c.Lines)
	}
}

func TestBoolValues(t *testing.T) {
	for in, want := range map[string]bool{"0": false, "1": true, "2": true, "-1": true, "00": false, "true": true, "No": false} {
		c, err := Parse("b.conf", []byte("allowLocalChroot="+in+"\n"))
		if err != nil || c.AllowLocalChroot != want {
			t.Errorf("allowLocalChroot=%s: %v, %v; want %v", in, c.AllowLocalChroot, err, want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"100", 100, true},
		{"100b", 100, true},
		{"4k", 4096, true},
		{"4K", 4096, true},
		{"100G", 100 << 30, true},
		{"1.5m", 3 << 19, true},
		{"2t", 2 << 40, true},
		{"1p", 1 << 50, true},
		{"1e", 1 << 60, true},
		{"8e", 0, false},
		{"", 0, false},
		{"g", 0, false},
		{"1x", 0, false},
		{"1gb", 0, false},
		{"-5", 0, false},
		{"NaN", 0, false},
		{"inf", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseBytes(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestExampleConfigQuiet: the shipped example sets every key this
// implementation reads at values that differ in nothing from Shifter's,
// so shifter -v has nothing to note for it.
func TestExampleConfigQuiet(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "etc", "udiRoot.conf.example"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("example", b)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Ignored) != 0 {
		t.Errorf("notes for the example: %q", c.Ignored)
	}
}

// TestPopulateEtcDefault: without populateEtcDynamically, a file that
// sets etcPath gets Shifter's default (0: the etcPath files); one that
// does not keeps this implementation's default (1).
func TestPopulateEtcDefault(t *testing.T) {
	for in, want := range map[string]bool{
		"":                                       true,
		"etcPath=/etc/shifter/etc\n":             false,
		"etcPath=/e\npopulateEtcDynamically=1\n": true,
		"populateEtcDynamically=1\netcPath=/e\n": true,
		"etcPath=/e\npopulateEtcDynamically=0\n": false,
	} {
		c, err := Parse("p.conf", []byte(in))
		if err != nil || c.PopulateEtcDynamically != want {
			t.Errorf("%q: populateEtcDynamically %v, %v; want %v", in, c.PopulateEtcDynamically, err, want)
		}
	}
}

func TestSiteFsLines(t *testing.T) {
	c, err := Parse("l.conf", []byte("siteFs=/a\n# c\nsiteFs=/b:/c;/d\nmodule_m_siteFs=/e\nmodule_m_siteFs=/f\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]KeyLine{
		"siteFs":          {{1, "/a"}, {3, "/b:/c;/d"}},
		"module_m_siteFs": {{4, "/e"}, {5, "/f"}},
	}
	if d := cmp.Diff(want, c.SiteFsLines); d != "" {
		t.Errorf("SiteFsLines (-want +got):\n%s", d)
	}
}
