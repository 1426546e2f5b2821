// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shifter-go/shifter/mountns"
	"github.com/shifter-go/shifter/udiroot"
)

// Shifter's udiRoot.conf keys mapped onto mountns.Spec (issue #14).

func TestUdiImageVolumes(t *testing.T) {
	opt := t.TempDir()
	for _, d := range []string{"bin", "etc", "modules/mpich", "modules/other"} {
		must(t, os.MkdirAll(filepath.Join(opt, d), 0o755))
	}
	must(t, os.WriteFile(filepath.Join(opt, "README"), nil, 0o644))
	must(t, os.Symlink("bin", filepath.Join(opt, "sbin")))       // inside: bound as its target
	must(t, os.Symlink("/usr/lib", filepath.Join(opt, "lib")))   // leads out: left out
	must(t, os.Symlink("../x", filepath.Join(opt, "modules/x"))) // leads out: left out
	mpich := t.TempDir()
	vol := func(src, dst string) mountns.Volume {
		return mountns.Volume{Source: src, Dest: dst, ReadOnly: true, Site: true, Propagation: "private"}
	}
	tests := []struct {
		name    string
		conf    string
		modules []string
		want    []mountns.Volume
		wantErr string
	}{
		{"none", "", nil, nil, ""},
		{"optUdiImage entry by entry", "optUdiImage=" + opt, nil, []mountns.Volume{
			vol(opt+"/README", "/opt/udiImage/README"), vol(opt+"/bin", "/opt/udiImage/bin"),
			vol(opt+"/etc", "/opt/udiImage/etc"), vol(opt+"/modules", "/opt/udiImage/modules"),
			vol(opt+"/sbin", "/opt/udiImage/sbin"),
		}, ""},
		{"copyPath replaces optUdiImage's module of its name", "optUdiImage=" + opt + "\nmodule_mpich_copyPath=" + mpich, []string{"mpich"}, []mountns.Volume{
			vol(opt+"/README", "/opt/udiImage/README"), vol(opt+"/bin", "/opt/udiImage/bin"),
			vol(opt+"/etc", "/opt/udiImage/etc"), vol(opt+"/modules/other", "/opt/udiImage/modules/other"),
			vol(opt+"/sbin", "/opt/udiImage/sbin"), vol(mpich, "/opt/udiImage/modules/mpich"),
		}, ""},
		{"copyPath of an inactive module", "optUdiImage=" + opt + "\nmodule_mpich_copyPath=" + mpich + "\nmodule_x_enabled=1", []string{"x"}, []mountns.Volume{
			vol(opt+"/README", "/opt/udiImage/README"), vol(opt+"/bin", "/opt/udiImage/bin"),
			vol(opt+"/etc", "/opt/udiImage/etc"), vol(opt+"/modules", "/opt/udiImage/modules"),
			vol(opt+"/sbin", "/opt/udiImage/sbin"),
		}, ""},
		{"copyPath without optUdiImage", "module_mpich_copyPath=" + mpich, []string{"mpich"}, []mountns.Volume{vol(mpich, "/opt/udiImage/modules/mpich")}, ""},
		{"missing optUdiImage", "\noptUdiImage=/nonexistent/udiImage", nil, nil, "t.conf:2: optUdiImage: open /nonexistent/udiImage"},
		{"missing copyPath", "module_mpich_copyPath=/nonexistent/mpich", []string{"mpich"}, nil, "t.conf:1: module_mpich_copyPath"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := udiroot.Parse("t.conf", []byte(tc.conf+"\n"))
			must(t, err)
			mods, err := selectModules(cfg, tc.modules)
			must(t, err)
			var logs strings.Builder
			got, err := udiImageVolumes(cfg, mods, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || ExitCode(err) != ExitConfig {
					t.Fatalf("error %v, want exit %d containing %q", err, ExitConfig, tc.wantErr)
				}
				return
			}
			must(t, err)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("volumes (-want +got):\n%s", d)
			}
			if strings.Contains(tc.conf, "optUdiImage") && !strings.Contains(logs.String(), "path="+opt+"/lib") {
				t.Errorf("the link out of optUdiImage is not reported: %q", logs.String())
			}
			// Each volume is one mountns accepts as a site volume.
			for _, v := range got {
				if _, err := mountns.ParseSiteVolumes(v.Source + ":" + v.Dest + ":ro"); err != nil {
					t.Errorf("volume %v: %v", v, err)
				}
			}
		})
	}
}

// TestPostMountHook runs the composed hook as mountns runs a hook that
// is not a file: /bin/sh -c HOOK, in the container root.
func TestPostMountHook(t *testing.T) {
	dir := t.TempDir()
	root := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	site := script("post.sh", "pwd > site.log\n")
	rh1 := script("rh 1.sh", "echo one >> site.log\n")
	rh2 := script("rh2.sh", "echo two >> site.log\n")
	bad := script("bad.sh", "exit 5\n")
	cfg := func(conf string) *udiroot.Config {
		c, err := udiroot.Parse("t.conf", []byte(conf))
		must(t, err)
		return c
	}
	mods := func(c *udiroot.Config, names ...string) []*udiroot.Module {
		m, err := selectModules(c, names)
		must(t, err)
		return m
	}
	if got := postMountHook(cfg("sitePostMountHook="+site+"\n"), nil); got != site {
		t.Errorf("without roothooks the site hook is passed as it is: %q", got)
	}
	if got := postMountHook(cfg(""), nil); got != "" {
		t.Errorf("no hooks: %q", got)
	}
	tests := []struct {
		name    string
		conf    string
		modules []string
		code    int
		log     string
		stderr  string
	}{
		{"site hook then roothooks in module order", fmt.Sprintf("sitePostMountHook=%s\nmodule_b_roothook=%s\nmodule_a_roothook=%s\n", site, rh2, rh1),
			[]string{"b", "a"}, 0, root + "\ntwo\none\n", ""},
		{"roothooks only", fmt.Sprintf("module_a_roothook=%s\n", rh1), []string{"a"}, 0, "one\n", ""},
		{"a failing roothook stops", fmt.Sprintf("module_a_roothook=%s\nmodule_b_roothook=%s\n", bad, rh1), []string{"a", "b"}, 5, "",
			"shifter: module a roothook " + bad + " failed (status 5)"},
		{"a failing site hook stops", fmt.Sprintf("sitePostMountHook=%s\nmodule_a_roothook=%s\n", bad, rh1), []string{"a"}, 5, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(root, "site.log"))
			c := cfg(tc.conf)
			hook := postMountHook(c, mods(c, tc.modules...))
			cmd := exec.Command("/bin/sh", "-c", hook)
			cmd.Dir = root
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(filepath.Join(root, "site.log"))
			if code != tc.code || string(b) != tc.log || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("status %d log %q stderr %q; want %d %q %q\nhook:\n%s", code, b, stderr.String(), tc.code, tc.log, tc.stderr, hook)
			}
		})
	}
}

// TestMainShifterKeys runs Main on Shifter-style keys and checks the
// spec: optUdiImage and copyPath volumes, the roothook in the post-mount
// hook, the generated /etc files, perNodeCache volumes refused without
// perNodeCachePath, and the one-line notes under -v.
func TestMainShifterKeys(t *testing.T) {
	store := t.TempDir()
	publish(t, store, "s", time.Now(), []string{"busybox:latest"}, nil, nil)
	opt := t.TempDir()
	must(t, os.Mkdir(filepath.Join(opt, "bin"), 0o755))
	mpich := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`imagePath=%s
loopMount=/var/udiLoopMount
optUdiImage=%s
populateEtcDynamically=1
rootfsType=ramfs
mountUdiRootWritable=1
siteFs=/home
siteFs=/scratch:/scratch:ro
module_mpich_copyPath=%s
module_mpich_roothook=/etc/shifter/mpich.sh
module_mpich_copypath=/ignored
`, store, opt, mpich))
	if os.Geteuid() != 0 {
		code, _, _, stderr := runMain(t, cfg, []string{"-i", "busybox", "-m", "mpich", "true"}, 0, nil)
		if code != ExitUnavailable || !strings.Contains(stderr, "roothook") {
			t.Errorf("unprivileged with a roothook: %d %q; want %d naming the roothook", code, stderr, ExitUnavailable)
		}
		return
	}
	t.Setenv("SHIFTER_CONFIG", cfg)
	var spec *mountns.Spec
	var nsswitch []byte
	var errOut bytes.Buffer
	code := Main(context.Background(), []string{"-v", "-i", "busybox", "-m", "mpich", "true"}, Deps{
		Run: func(_ context.Context, s *mountns.Spec) (int, error) {
			spec = s
			nsswitch = s.EtcData["nsswitch.conf"]
			return 0, nil
		},
		ParseVolumes: mountns.ParseVolumes,
		Stdout:       &errOut,
		Stderr:       &errOut,
	})
	stderr := errOut.String()
	if code != 0 {
		t.Fatalf("Main = %d: %s", code, stderr)
	}
	var dests []string
	for _, v := range spec.Volumes {
		dests = append(dests, v.Dest)
	}
	if want := []string{"/home", "/scratch", "/opt/udiImage/bin", "/opt/udiImage/modules/mpich"}; !cmp.Equal(dests, want) {
		t.Errorf("volume destinations %q, want %q", dests, want)
	}
	if !strings.Contains(spec.PostMountHook, "/bin/sh '/etc/shifter/mpich.sh'") {
		t.Errorf("post-mount hook %q does not run the roothook", spec.PostMountHook)
	}
	if !strings.HasPrefix(string(nsswitch), "passwd: files\ngroup: files\nhosts: files dns\n") {
		t.Errorf("nsswitch.conf %q, want Shifter's files-only one", nsswitch)
	}
	if _, ok := spec.EtcFiles["nsswitch.conf"]; ok {
		t.Errorf("nsswitch.conf both copied from %s and generated", spec.EtcFiles["nsswitch.conf"])
	}
	for _, k := range []string{"loopMount: not used", "rootfsType: the container root", "mountUdiRootWritable: the container root is always", `unknown module key \"copypath\"`} {
		n := 0
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(l, k) && strings.Contains(l, "level=INFO") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines note %q under -v, want 1:\n%s", n, k, stderr)
		}
	}
	_, _, _, quiet := runMain(t, cfg, []string{"-i", "busybox", "-m", "mpich", "true"}, 0, nil)
	if quiet != "" {
		t.Errorf("notes without -v: %q", quiet)
	}
	code, _, _, stderr = runMain(t, cfg, []string{"-i", "busybox", "-V", "/tmp:/cache:perNodeCache=size=10G", "true"}, 0, nil)
	if code != ExitUnavailable || !strings.Contains(stderr, "perNodeCachePath is not set") {
		t.Errorf("perNodeCache volume: %d %q", code, stderr)
	}
}
