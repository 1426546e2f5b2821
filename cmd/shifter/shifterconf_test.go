// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/launcher"
)

// shifterStyleConfig writes a udiRoot.conf in the shape of NERSC
// Shifter's shipped udiRoot.conf.example (issue #14): its tool paths and
// loop mount point, optUdiImage, siteFs given twice, a module with
// copyPath, roothook, siteEnvPrepend and the example's misspelt copypath.
// It returns the config and the host directories it names.
func shifterStyleConfig(t *testing.T, f *fixture, mode string) (conf, home, scratch string) {
	t.Helper()
	// Every user can traverse it (nobody reads the configuration).
	dir, err := os.MkdirTemp("", "shifter-conf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opt, mpich := filepath.Join(dir, "udiImage"), filepath.Join(dir, "mpich")
	home, scratch = filepath.Join(dir, "home"), filepath.Join(dir, "scratch")
	for _, d := range []string{opt + "/bin", mpich + "/lib64", home, scratch} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		opt + "/bin/site-tool":     "site tool\n",
		mpich + "/lib64/libmpi.so": "stand-in MPI library\n",
		home + "/h":                "home\n",
		scratch + "/s":             "scratch\n",
		dir + "/mpich-roothook.sh": "test -f opt/udiImage/modules/mpich/lib64/libmpi.so && test -f etc/passwd && test -f home/h && pwd > roothook.log\n",
	}
	for p, c := range files {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf = filepath.Join(dir, "udiRoot.conf")
	body := fmt.Sprintf(`# in the shape of Shifter's udiRoot.conf.example
udiMount=/var/udiMount
loopMount=/var/udiLoopMount
imagePath=%s
udiRootPath=/usr
optUdiImage=%s
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
siteFs=%s:/home
siteFs=%s:/scratch:ro
siteEnv=SHIFTER_RUNTIME=1
siteEnvAppend=PATH=/opt/udiImage/bin
system=mycluster
defaultImageType=docker
imageMount=%s
module_mpich_siteEnvPrepend = LD_LIBRARY_PATH=/opt/udiImage/modules/mpich/lib64
module_mpich_copyPath = %s
module_mpich_roothook = %s
module_mpich_copypath = /path/to/stuff/to/copy/in
`, f.store, opt, home, scratch, mode, mpich, dir+"/mpich-roothook.sh")
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf, home, scratch
}

// TestShifterStyleConfig runs containers with a Shifter-style
// configuration: optUdiImage and the module's copyPath are read-only
// under /opt/udiImage, the roothook ran in the container root after the
// site mounts and /etc, both siteFs lines are mounted, /etc/nsswitch.conf
// is Shifter's generated one, and -v notes the keys with no effect.
func TestShifterStyleConfig(t *testing.T) {
	f := setup(t)
	script := `cat /opt/udiImage/bin/site-tool /opt/udiImage/modules/mpich/lib64/libmpi.so /home/h /scratch/s /roothook.log
head -1 /etc/nsswitch.conf; cat /etc/host.conf
echo "$LD_LIBRARY_PATH $PATH $SHIFTER_RUNTIME"
touch /opt/udiImage/bin/x 2>/dev/null && echo writable; touch /opt/udiImage/modules/mpich/x 2>/dev/null && echo writable
ls /opt/udiImage /opt/udiImage/modules | tr '\n' ' '; echo`
	// The roothook ran with the container root (udiMount on the host) as
	// its working directory.
	want := "site tool\nstand-in MPI library\nhome\nscratch\n/var/udiMount\npasswd: files\norder bind,hosts\nmulti on\n" +
		"/opt/udiImage/modules/mpich/lib64 /bin:/opt/udiImage/bin 1\n/opt/udiImage: bin modules  /opt/udiImage/modules: mpich \n"
	for _, mode := range []string{"loop", "fuse"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "loop" {
				testutil.RequireLoop(t)
			} else {
				testutil.RequireFUSE(t)
			}
			conf, _, _ := shifterStyleConfig(t, f, mode)
			cmd := exec.Command(f.shifter, "-v", "-i", "busybox", "-m", "mpich", "sh", "-c", script)
			cmd.Env = append(os.Environ(), "SHIFTER_CONFIG="+conf)
			out, errOut, code := run(t, cmd)
			if code != 0 || out != want {
				t.Fatalf("status %d stdout:\n%s\nwant:\n%s\nstderr: %s", code, out, want, errOut)
			}
			for _, k := range []string{"loopMount: not used", "mountUdiRootWritable: the container root is always", `unknown module key \"copypath\"`, "cpPath: not used"} {
				if strings.Count(errOut, k) != 1 {
					t.Errorf("-v notes %q %d times, want once:\n%s", k, strings.Count(errOut, k), errOut)
				}
			}
		})
	}
}

// TestShifterStyleConfigUnprivileged runs the same configuration with a
// non-setuid shifter as nobody: it loads and runs containers; only the
// module with a roothook, which must run as root, is refused.
func TestShifterStyleConfigUnprivileged(t *testing.T) {
	f := setup(t)
	testutil.RequireTool(t, "setpriv")
	if exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", "test -r /dev/fuse -a -w /dev/fuse").Run() != nil {
		testutil.Unavailable(t, "nobody cannot use /dev/fuse")
	}
	conf, _, _ := shifterStyleConfig(t, f, "auto")
	nobody := func(args ...string) (string, string, int) {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", f.shifter}, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "SHIFTER_CONFIG=" + conf}
		cmd.Dir = "/"
		return run(t, cmd)
	}
	out, errOut, code := nobody("-i", "busybox", "sh", "-c", "cat /opt/udiImage/bin/site-tool /home/h; id -u")
	if code == launcher.ExitUnavailable && strings.Contains(errOut, "user namespace") {
		testutil.Unavailable(t, "unprivileged containers: "+errOut)
	}
	if code != 0 || out != "site tool\nhome\n65534\n" {
		t.Errorf("status %d stdout %q stderr %q", code, out, errOut)
	}
	_, errOut, code = nobody("-i", "busybox", "-m", "mpich", "true")
	if code != launcher.ExitUnavailable || !strings.Contains(errOut, `module "mpich" has a roothook`) {
		t.Errorf("roothook module unprivileged: status %d stderr %q; want %d naming the roothook", code, errOut, launcher.ExitUnavailable)
	}
}

// TestCrayStyleConfig runs a container with a configuration in the shape
// of Shifter's Cray (CLE6) template: rootfsType=ramfs, perNodeCache*,
// etcPath without populateEtcDynamically (Shifter's default 0: the site's
// /etc files), a siteFs continued over two lines, and a perNodeCache
// volume as the template's users ask for one.
func TestCrayStyleConfig(t *testing.T) {
	f := setup(t)
	dir, err := os.MkdirTemp("", "shifter-cray-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	etc := filepath.Join(dir, "etc")
	for _, d := range []string{etc, dir + "/a", dir + "/b", dir + "/cache"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, c := range map[string]string{etc + "/nsswitch.conf": "passwd: files # site\n", etc + "/passwd": "ignored\n", dir + "/a/f": "a\n", dir + "/b/f": "b\n"} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "udiRoot.conf")
	body := fmt.Sprintf(`udiMount=/var/udiMount
loopMount=/var/udiLoopMount
imagePath=%s
udiRootPath=/opt/shifter/default
etcPath=%s
mountUdiRootWritable=1
maxGroupCount=31
modprobePath=/sbin/modprobe
insmodPath=/sbin/insmod
cpPath=/usr/bin/cp
mvPath=/usr/bin/mv
chmodPath=/usr/bin/chmod
ddPath=/usr/bin/dd
mkfsXfsPath=/sbin/mkfs.xfs
rootfsType=ramfs
siteFs=%s/a:/a;\
    %s/b:/b
siteEnv=SHIFTER_RUNTIME=1
siteEnvAppend=PATH=/opt/udiImage/bin
system=cray
defaultImageType=docker
perNodeCachePath=%s/cache
perNodeCacheSizeLimit=100G
perNodeCacheAllowedFsType=xfs
`, f.store, etc, dir, dir, dir)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(f.shifter, "-v", "-i", "busybox", "sh", "-c", "cat /etc/nsswitch.conf /a/f /b/f; id -u")
	cmd.Env = append(os.Environ(), "SHIFTER_CONFIG="+conf)
	out, errOut, code := run(t, cmd)
	if want := "passwd: files # site\na\nb\n0\n"; code != 0 || out != want {
		t.Fatalf("status %d stdout %q, want %q\nstderr: %s", code, out, want, errOut)
	}
	if !strings.Contains(errOut, "rootfsType: the container root") {
		t.Errorf("-v does not note rootfsType:\n%s", errOut)
	}
	if strings.Contains(errOut, "perNodeCache") || strings.Contains(errOut, "mkfsXfsPath") {
		t.Errorf("-v notes the perNodeCache keys, which have their meaning:\n%s", errOut)
	}
	if _, err := os.Stat("/sbin/mkfs.xfs"); err != nil {
		t.Logf("no /sbin/mkfs.xfs (the template's mkfsXfsPath): perNodeCache volume not tried")
		return
	}
	testutil.RequireLoop(t)
	cmd = exec.Command(f.shifter, "-i", "busybox", "-V", "/tmp:/cache:perNodeCache=size=10G", "sh", "-c",
		"echo x > /cache/f && cat /cache/f && stat -f -c %t /cache")
	cmd.Env = append(os.Environ(), "SHIFTER_CONFIG="+conf)
	out, errOut, code = run(t, cmd)
	if code != 0 || out != "x\n58465342\n" {
		t.Errorf("perNodeCache volume: status %d stdout %q, want x and xfs's magic\nstderr: %s", code, out, errOut)
	}
	if ents, _ := os.ReadDir(dir + "/cache"); len(ents) > 0 {
		t.Errorf("left in perNodeCachePath: %v", ents)
	}
	cmd = exec.Command(f.shifter, "-i", "busybox", "-V", "/tmp:/cache:perNodeCache=size=101G", "true")
	cmd.Env = append(os.Environ(), "SHIFTER_CONFIG="+conf)
	_, errOut, code = run(t, cmd)
	if code != launcher.ExitBadVolume || !strings.Contains(errOut, "perNodeCacheSizeLimit") {
		t.Errorf("perNodeCache volume over the limit: status %d stderr %q; want %d naming perNodeCacheSizeLimit", code, errOut, launcher.ExitBadVolume)
	}
}
