// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/mountns"
	"github.com/shifter-go/shifter/udiroot"
)

// writeConfig writes a udiRoot.conf for a test store.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "udiRoot.conf")
	must(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

// runMain runs Main with SHIFTER_CONFIG=cfg and a Run that records the
// spec instead of building a container (mountns.Run is tested in
// mountns and tests/).
func runMain(t *testing.T, cfg string, args []string, runCode int, runErr error) (code int, spec *mountns.Spec, stdout, stderr string) {
	t.Helper()
	t.Setenv("SHIFTER_CONFIG", cfg)
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, Deps{
		Run: func(_ context.Context, s *mountns.Spec) (int, error) {
			spec = s
			if s.Image != nil {
				if _, err := s.Image.Stat(); err != nil {
					t.Errorf("image file not open during Run: %v", err)
				}
			}
			return runCode, runErr
		},
		ParseVolumes: mountns.ParseVolumes,
		Version:      "test",
		Stdout:       &out,
		Stderr:       &errOut,
	})
	return code, spec, out.String(), errOut.String()
}

func TestMainSpec(t *testing.T) {
	store := t.TempDir()
	id := publish(t, store, "spec", time.Now(), []string{"ubuntu:22.04"}, nil, nil)
	etc := t.TempDir()
	must(t, os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 x\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(etc, "passwd"), []byte("root:x:0:0::/:/bin/sh\n"), 0o644))
	cfg := writeConfig(t, fmt.Sprintf(`imagePath=%s
udiMount=/var/udiMount-test
siteFs=/home;/scratch:/global/scratch:ro:slave
siteEnv=SHIFTER_RUNTIME=1
siteEnvAppend=PATH=/opt/udiImage/bin
sitePreMountHook=/etc/shifter/pre.sh
populateEtcDynamically=0
etcPath=%s
imageMount=fuse
mountPropagationStyle=private
module_gpu_siteFs=/opt/nvidia:/opt/nvidia:ro
module_gpu_siteEnvPrepend=LD_LIBRARY_PATH=/opt/nvidia/lib
module_gpu_userhook=/opt/nvidia/check.sh
defaultModules=gpu
`, store, etc))
	envFile := filepath.Join(t.TempDir(), "env")
	must(t, os.WriteFile(envFile, []byte("FROMFILE=1\nX=file\n"), 0o644))
	t.Setenv("X", "host")
	t.Setenv("SHIFTER_VOLUME", "/ignored:/ignored")

	code, spec, _, stderr := runMain(t, cfg, []string{"--image=ubuntu:22.04", "-V", "/data:/data:ro", "-e", "X=flag", "--env-file=" + envFile, "--workdir=/w", "echo", "hi"}, 7, nil)
	if code != 7 {
		t.Fatalf("Main = %d (stderr %q), want the command's 7", code, stderr)
	}
	sq, _ := imagestore.Paths(store, id)
	if spec.ImagePath != sq || spec.Mode != mountns.MountFUSE || spec.UDIMount != "/var/udiMount-test" || spec.PreMountHook != "/etc/shifter/pre.sh" {
		t.Errorf("spec image %s mode %s udiMount %s hook %s", spec.ImagePath, spec.Mode, spec.UDIMount, spec.PreMountHook)
	}
	wantVols := []mountns.Volume{
		{Source: "/home", Dest: "/home", Site: true, Propagation: "private"},
		{Source: "/scratch", Dest: "/global/scratch", ReadOnly: true, Site: true, Propagation: "slave"},
		{Source: "/opt/nvidia", Dest: "/opt/nvidia", ReadOnly: true, Site: true, Propagation: "private"},
		{Source: "/data", Dest: "/data", ReadOnly: true},
	}
	if d := cmp.Diff(wantVols, spec.Volumes); d != "" {
		t.Errorf("volumes (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]string{"hosts": filepath.Join(etc, "hosts")}, spec.EtcFiles); d != "" {
		t.Errorf("etc files (-want +got):\n%s", d)
	}
	if spec.Workdir != "/w" {
		t.Errorf("workdir %q", spec.Workdir)
	}
	if n := len(spec.Argv); n < 3 || !slices.Equal(spec.Argv[n-2:], []string{"echo", "hi"}) || !slices.Contains(spec.Argv, "/opt/nvidia/check.sh") {
		t.Errorf("argv %q, want the userhook wrapper around echo hi", spec.Argv)
	}
	// The env file is read in the container (mountns): the Spec names
	// it, with the environment before it and the changes after it.
	if !slices.Equal(spec.EnvFiles, []string{envFile}) {
		t.Errorf("env files %q, want %q", spec.EnvFiles, envFile)
	}
	env := envMap(mountns.ApplyEnv(append(spec.Env, "FROMFILE=1", "X=file"), spec.EnvAfter))
	for k, v := range map[string]string{"X": "flag", "FROMFILE": "1", "IMG": "spec", "SHIFTER_RUNTIME": "1", "LD_LIBRARY_PATH": "/opt/nvidia/lib",
		"SHIFTER_IMAGE": id, "SHIFTER_IMAGEREQUEST": "ubuntu:22.04"} {
		if env[k] != v {
			t.Errorf("env %s=%q, want %q", k, env[k], v)
		}
	}
	if _, ok := envMap(spec.Env)["FROMFILE"]; ok {
		t.Errorf("the env file was read on the host: %q", spec.Env)
	}
	if !strings.HasSuffix(env["PATH"], ":/opt/udiImage/bin") {
		t.Errorf("PATH %q lacks the site append", env["PATH"])
	}
	self, err := CallerCredential()
	must(t, err)
	if d := cmp.Diff(self, spec.Cred); d != "" {
		t.Errorf("credential (-want +got):\n%s", d)
	}
	wantMode := os.Geteuid() != 0
	if spec.Unprivileged != wantMode || spec.Setuid {
		t.Errorf("Unprivileged %v Setuid %v", spec.Unprivileged, spec.Setuid)
	}
}

func TestMainDefaults(t *testing.T) {
	store := t.TempDir()
	publish(t, store, "d", time.Now(), []string{"busybox:latest"}, nil, nil)
	cfg := writeConfig(t, "imagePath="+store+"\n")
	dir := t.TempDir()
	t.Chdir(dir)
	code, spec, _, stderr := runMain(t, cfg, []string{"-i", "busybox"}, 0, nil)
	if code != 0 {
		t.Fatalf("Main = %d: %s", code, stderr)
	}
	if !slices.Equal(spec.Argv, []string{"/bin/sh"}) || spec.Workdir != dir || spec.Mode != mountns.MountAuto {
		t.Errorf("argv %q workdir %q mode %s", spec.Argv, spec.Workdir, spec.Mode)
	}
	for _, n := range etcSiteFiles {
		if st, err := os.Stat("/etc/" + n); err == nil && st.Mode().IsRegular() && spec.EtcFiles[n] != "/etc/"+n {
			t.Errorf("EtcFiles[%s] = %q", n, spec.EtcFiles[n])
		}
	}
}

// TestMainFailures checks the exit status and the one line on stderr of
// each kind of setup failure.
func TestMainFailures(t *testing.T) {
	store := t.TempDir()
	id := publish(t, store, "f", time.Now(), []string{"img:1"}, []uint32{54321}, nil)
	publish(t, store, "pub", time.Now(), []string{"pub:1"}, nil, nil)
	good := writeConfig(t, "imagePath="+store+"\nmodule_a_conflict=b\nmodule_b_enabled=1\n")
	tests := []struct {
		name   string
		cfg    string
		args   []string
		runErr error
		code   int
		msg    string
	}{
		{"missing config", "/nonexistent/udiRoot.conf", []string{"-i", "pub:1"}, nil, ExitConfig, "/nonexistent/udiRoot.conf"},
		{"bad config", writeConfig(t, "bogus=1\n"), []string{"-i", "pub:1"}, nil, ExitConfig, `udiRoot.conf:1: unknown key "bogus"`},
		{"bad siteFs", writeConfig(t, "imagePath="+store+"\n\nsiteFs=/a:/etc\n"), []string{"-i", "pub:1"}, nil, ExitConfig, "udiRoot.conf:3: siteFs"},
		{"bad second siteFs line", writeConfig(t, "imagePath="+store+"\nsiteFs=/home\nsiteFs=/a:/etc\n"), []string{"-i", "pub:1"}, nil, ExitConfig, "udiRoot.conf:3: siteFs"},
		{"perNodeCache siteFs without perNodeCachePath", writeConfig(t, "imagePath="+store+"\nsiteFs=/home\n\nsiteFs=/tmp:/c:perNodeCache=size=1G\n"), []string{"-i", "pub:1"}, nil, ExitUnavailable, "udiRoot.conf: siteFs: mountns: not available on this host: perNodeCache volume /c: perNodeCachePath is not set"},
		{"perNodeCache over the limit", writeConfig(t, "imagePath="+store+"\nperNodeCachePath=/tmp\nperNodeCacheSizeLimit=1G\n"), []string{"-i", "pub:1", "-V", "/x:/c:perNodeCache=size=1025M"}, nil, ExitBadVolume, "size 1074790400 bytes is above the site's limit, perNodeCacheSizeLimit, of 1073741824 bytes"},
		{"perNodeCache file system not allowed", writeConfig(t, "imagePath="+store+"\nperNodeCachePath=/tmp\n"), []string{"-i", "pub:1", "-V", "/x:/c:perNodeCache=size=1G,fs=ext4"}, nil, ExitBadVolume, "file system ext4 is not allowed here (perNodeCacheAllowedFsType: xfs)"},
		{"perNodeCache bad size", good, []string{"-i", "pub:1", "-V", "/x:/c:perNodeCache=size=lots"}, nil, ExitBadVolume, `perNodeCache: size: "lots" is not a size`},
		{"gateway without system", writeConfig(t, "imagePath="+store+"\nimageGateway=unix:/x\n"), []string{"-i", "pub:1"}, nil, ExitConfig, "system is not"},
		{"usage", good, []string{"--nope"}, nil, ExitUsage, "unknown flag"},
		{"no image", good, []string{"ls"}, nil, ExitUsage, "no image"},
		{"module conflict", good, []string{"-i", "pub:1", "-m", "a,b"}, nil, ExitUsage, "conflict"},
		{"bad volume syntax", good, []string{"-i", "pub:1", "-V", "/a"}, nil, ExitBadVolume, "--volume"},
		{"volume into /etc", good, []string{"-i", "pub:1", "-V", "/a:/var/../etc"}, nil, ExitBadVolume, "--volume"},
		{"volume into /opt/udiImage", good, []string{"-i", "pub:1", "-V", "/a:/opt/udiImage/x"}, nil, ExitBadVolume, "--volume"},
		{"unknown image", good, []string{"-i", "nope:1"}, nil, ExitUnknownImage, "not found"},
		{"denied image", good, []string{"-i", "id:" + id}, nil, ExitNoPerm, "access denied"},
		{"env file missing in the container", good, []string{"-i", "pub:1", "--env-file=/nonexistent"}, fmt.Errorf("%w: --env-file /nonexistent: not found in the container", mountns.ErrEnvFile), ExitUsage, "--env-file /nonexistent: not found"},
		{"env file not readable in the container", good, []string{"-i", "pub:1", "--env-file=/secret"}, fmt.Errorf("%w: --env-file /secret: not readable", mountns.ErrAccess), ExitNoPerm, "--env-file /secret: not readable"},
		{"entrypoint missing", good, []string{"-i", "pub:1", "--entrypoint", "--workdir"}, nil, 0, ""},
		{"run: bad volume", good, []string{"-i", "pub:1"}, fmt.Errorf("%w: dest resolves to /etc", mountns.ErrBadVolume), ExitBadVolume, "resolves to /etc"},
		{"run: access", good, []string{"-i", "pub:1"}, fmt.Errorf("%w: /secret", mountns.ErrAccess), ExitNoPerm, "/secret"},
		{"run: userns", good, []string{"-i", "pub:1"}, mountns.ErrUserNS, ExitUnavailable, "user namespaces"},
		{"run: fuse", good, []string{"-i", "pub:1"}, mountns.ErrFUSE, ExitUnavailable, "FUSE"},
		{"run: mount", good, []string{"-i", "pub:1"}, fmt.Errorf("%w: squashfs\nsecond line", mountns.ErrMount), ExitSetup, "squashfs; second line"},
		{"run: spec", good, []string{"-i", "pub:1"}, mountns.ErrSpec, ExitConfig, "invalid spec"},
	}
	if os.Geteuid() == 0 {
		// root may use any image
		tests = slices.DeleteFunc(tests, func(tc struct {
			name   string
			cfg    string
			args   []string
			runErr error
			code   int
			msg    string
		}) bool {
			return tc.name == "denied image"
		})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stdout, stderr := runMain(t, tc.cfg, tc.args, 0, tc.runErr)
			if code != tc.code {
				t.Fatalf("Main = %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			if tc.code == 0 {
				return
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "shifter: ") || !strings.Contains(stderr, tc.msg) {
				t.Errorf("stderr %q, want one line \"shifter: ...%s...\"", stderr, tc.msg)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
}

func TestMainHelpVersion(t *testing.T) {
	// No configuration needed.
	code, _, stdout, _ := runMain(t, "/nonexistent", []string{"--help"}, 0, nil)
	if code != 0 || !strings.Contains(stdout, "Usage: shifter") || !strings.Contains(stdout, strconv.Itoa(ExitNoPerm)) {
		t.Errorf("--help: %d %q", code, stdout)
	}
	code, _, stdout, _ = runMain(t, "/nonexistent", []string{"--version"}, 0, nil)
	if code != 0 || stdout != "shifter test\n" {
		t.Errorf("--version: %d %q", code, stdout)
	}
}

// TestCallerCredential compares with id(1) and getent(1).
func TestCallerCredential(t *testing.T) {
	c, err := CallerCredential()
	must(t, err)
	out := func(args ...string) string {
		b, err := exec.Command(args[0], args[1:]...).Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := strconv.Itoa(int(c.UID)); got != out("id", "-u") {
		t.Errorf("uid %s, id -u %s", got, out("id", "-u"))
	}
	if got := strconv.Itoa(int(c.GID)); got != out("id", "-g") {
		t.Errorf("gid %s, id -g %s", got, out("id", "-g"))
	}
	if c.User != out("id", "-un") {
		t.Errorf("user %s, id -un %s", c.User, out("id", "-un"))
	}
	want := map[uint32]bool{c.GID: true}
	for _, g := range c.Groups {
		want[g] = true
	}
	for _, f := range strings.Fields(out("id", "-G")) {
		n, _ := strconv.Atoi(f)
		if !want[uint32(n)] {
			t.Errorf("id -G lists %d, credential has %v", n, c.Groups)
		}
		delete(want, uint32(n))
	}
	if len(want) != 0 {
		t.Errorf("credential has groups %v that id -G does not", want)
	}
	pw := strings.Split(out("getent", "passwd", strconv.Itoa(int(c.UID))), ":")
	if len(pw) == 7 && (c.Shell != pw[6] || c.Home != pw[5]) {
		t.Errorf("shell %q home %q, getent says %q %q", c.Shell, c.Home, pw[6], pw[5])
	}
	if g, err := user.LookupGroupId(strconv.Itoa(int(c.GID))); err == nil && c.GroupNames[c.GID] != g.Name {
		t.Errorf("group name %q, want %q", c.GroupNames[c.GID], g.Name)
	}
}

// The setuid tests run a copy of the test binary that makes itself look
// like a setuid-root program started by nobody (real uid 65534,
// effective uid 0), then checks what must hold in that mode.
const setuidHelperEnv = "LAUNCHER_TEST_SETUID_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(setuidHelperEnv) != "" {
		os.Exit(setuidHelper())
	}
	os.Exit(m.Run())
}

func TestSetuidMode(t *testing.T) {
	testutil.RequireRoot(t)
	dir, err := os.MkdirTemp("", "launcher-setuid-") // t.TempDir's parent is 0700
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	privDir := filepath.Join(dir, "private-root")
	must(t, os.Mkdir(privDir, 0o700))
	cfg := filepath.Join(dir, "user.conf")
	must(t, os.WriteFile(cfg, []byte("imagePath=/x\n"), 0o644))

	sibling, pathHelper := fakeHelpers(t)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), setuidHelperEnv+"=1", "T_SIBLING="+sibling, "T_PATHHELPER="+pathHelper,
		"PATH="+filepath.Dir(pathHelper)+":"+os.Getenv("PATH"),
		"T_PRIVDIR="+privDir, "SHIFTER_CONFIG="+cfg,
		"LD_PRELOAD=/nonexistent/evil.so")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("setuid helper: %v\n%s", err, out)
	}
	t.Logf("setuid helper:\n%s", out)
}

// setuidHelper runs in the child of TestSetuidMode.
func setuidHelper() int {
	failed := false
	check := func(ok bool, format string, args ...any) {
		if !ok {
			failed = true
			fmt.Printf("FAIL: "+format+"\n", args...)
		} else {
			fmt.Printf("ok: "+format+"\n", args...)
		}
	}
	if err := becomeSetuidNobody(); err != nil {
		fmt.Println("set up:", err)
		return 1
	}
	mode, err := DetectMode()
	check(err == nil && mode == ModeSetuid, "DetectMode = %v, %v", mode, err)

	// asCaller (gateway lookups) gives the privileges back.
	err = asCaller(ModeSetuid, func() error {
		if os.Geteuid() != 65534 {
			return fmt.Errorf("euid %d inside asCaller", os.Geteuid())
		}
		return nil
	})
	check(err == nil && os.Geteuid() == 0 && os.Getegid() == 65534, "privileges restored after asCaller: %v, euid %d egid %d", err, os.Geteuid(), os.Getegid())

	// A local image the caller cannot reach is refused.
	cfg := udiroot.Default()
	cfg.AllowLocalChroot = true
	r := &imageResolver{cfg: cfg, cred: &mountns.Credential{UID: 65534, GID: 65534}, mode: ModeSetuid}
	_, err = r.resolve(context.Background(), ImageRef{Type: "local", Tag: os.Getenv("T_PRIVDIR")})
	check(ExitCode(err) == ExitNoPerm, "local image in a root-only directory: %v", err)

	// SHIFTER_CONFIG is ignored, and the configuration must be trusted.
	udiroot.DefaultPath = "/nonexistent-default/udiRoot.conf"
	var stderr bytes.Buffer
	code := Main(context.Background(), []string{"-i", "x", "true"}, Deps{Stderr: &stderr, Stdout: &stderr})
	check(code == ExitConfig && strings.Contains(stderr.String(), "/nonexistent-default/udiRoot.conf") && !strings.Contains(stderr.String(), "user.conf"),
		"setuid ignores SHIFTER_CONFIG: %d %q", code, stderr.String())
	udiroot.DefaultPath = os.Getenv("SHIFTER_CONFIG") // under /tmp, world-writable
	stderr.Reset()
	code = Main(context.Background(), []string{"-i", "x", "true"}, Deps{Stderr: &stderr, Stdout: &stderr})
	check(code == ExitConfig && strings.Contains(stderr.String(), "not trusted"), "untrusted config refused: %d %q", code, stderr.String())

	// The caller's loader variables do not reach the container.
	env := buildEnv(envInputs{Caller: os.Environ(), Setuid: true})
	check(!slices.ContainsFunc(env, func(s string) bool { return strings.HasPrefix(s, "LD_PRELOAD=") }), "LD_PRELOAD dropped")

	// The mount helper is never taken from PATH, nor from next to the
	// binary when that directory is not trusted.
	h := findMountHelper(ModeSetuid, discardLog())
	check(h != os.Getenv("T_SIBLING") && h != os.Getenv("T_PATHHELPER"), "setuid mount helper %q is neither the untrusted sibling nor from PATH", h)
	if failed {
		return 1
	}
	return 0
}

// fakeHelpers puts an executable shifter-mount next to the test binary
// and another in a directory for PATH.
func fakeHelpers(t *testing.T) (sibling, inPath string) {
	t.Helper()
	exe, err := os.Executable()
	must(t, err)
	sibling = filepath.Join(filepath.Dir(exe), "shifter-mount")
	if _, err := os.Stat(sibling); err == nil {
		t.Fatalf("%s exists already", sibling)
	}
	must(t, os.WriteFile(sibling, []byte("#!/bin/sh\n"), 0o755))
	t.Cleanup(func() { os.Remove(sibling) })
	inPath = filepath.Join(t.TempDir(), "shifter-mount")
	must(t, os.WriteFile(inPath, []byte("#!/bin/sh\n"), 0o755))
	return sibling, inPath
}

func TestFindMountHelper(t *testing.T) {
	sibling, inPath := fakeHelpers(t)
	if got := findMountHelper(ModeUser, discardLog()); got != sibling {
		t.Errorf("findMountHelper = %q, want the sibling %q", got, sibling)
	}
	must(t, os.Remove(sibling))
	old := DefaultMountHelper
	DefaultMountHelper = "/nonexistent/shifter-mount"
	t.Cleanup(func() { DefaultMountHelper = old })
	t.Setenv("PATH", filepath.Dir(inPath))
	if got := findMountHelper(ModeUser, discardLog()); got != inPath {
		t.Errorf("findMountHelper without sibling = %q, want %q from PATH", got, inPath)
	}
	if got := findMountHelper(ModeSetuid, discardLog()); got != "" {
		t.Errorf("setuid findMountHelper = %q, want none (PATH is not used)", got)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func setgroups(g []int) error     { return syscall.Setgroups(g) }
func setresgid(r, e, s int) error { return syscall.Setresgid(r, e, s) }
func setresuid(r, e, s int) error { return syscall.Setresuid(r, e, s) }

// becomeSetuidNobody gives the process the credentials of a setuid-root
// program run by nobody: real uid and gid 65534, effective uid 0.
func becomeSetuidNobody() error {
	if err := setgroups([]int{65534}); err != nil {
		return err
	}
	if err := setresgid(65534, 65534, 65534); err != nil {
		return err
	}
	return setresuid(65534, 0, 0)
}

// TestImportUsers compares the accounts of usersToImport with what
// getent reads from the host's NSS, and checks that Main puts them in the
// Spec.
func TestImportUsers(t *testing.T) {
	getent := testutil.RequireTool(t, "getent")
	field := func(db, key string) []string {
		b, err := exec.Command(getent, db, key).Output()
		if err != nil {
			t.Skipf("getent %s %s: %v", db, key, err)
		}
		return strings.Split(strings.TrimSpace(string(b)), ":")
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	got, err := ImportUsers([]string{"daemon", "no-such-user-xyz", "bin"}, log)
	must(t, err)
	var want []mountns.Account
	for _, name := range []string{"daemon", "bin"} {
		pw := field("passwd", name)
		uid, _ := strconv.Atoi(pw[2])
		gid, _ := strconv.Atoi(pw[3])
		want = append(want, mountns.Account{Name: pw[0], UID: uint32(uid), GID: uint32(gid), Gecos: pw[4], Home: pw[5], Shell: pw[6],
			GroupName: field("group", pw[3])[0]})
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ImportUsers (-getent +got):\n%s", d)
	}
	if !strings.Contains(logs.String(), "no-such-user-xyz") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no warning about the unknown user: %q", logs.String())
	}

	store := t.TempDir()
	publish(t, store, "imp", time.Now(), []string{"ubuntu:22.04"}, nil, nil)
	cfg := writeConfig(t, fmt.Sprintf("imagePath=%s\nudiMount=/var/udiMount-test\nusersToImport=daemon  bin\n", store))
	code, spec, _, stderr := runMain(t, cfg, []string{"--image=ubuntu:22.04", "true"}, 0, nil)
	if code != 0 {
		t.Fatalf("Main = %d: %s", code, stderr)
	}
	if d := cmp.Diff(want, spec.ImportUsers); d != "" {
		t.Errorf("spec.ImportUsers (-want +got):\n%s", d)
	}
}
