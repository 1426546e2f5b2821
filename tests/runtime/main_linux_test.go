// SPDX-License-Identifier: BSD-3-Clause

// Package runtime_test runs containers for real: images built with
// mksquashfs from Debian's busybox-static, mounted by loop device or FUSE,
// commands run as root, as an unprivileged user through a setuid binary,
// and in unprivileged mode, with mountns.Run driven by this test binary
// re-executed (driverEnv) and, when it is built, the real shifter command.
package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/mountns"
)

// driverEnv names the JSON file of a driverSpec: when set, the test binary
// is the driver: it calls mountns.Run and exits with its status.
const driverEnv = "SHIFTER_RUNTIME_TEST_DRIVER"

// installDir is the directory of the installed shifter (see install),
// removed when the tests end.
var installDir string

// driverSpec is what a test asks the driver to run. The credential is the
// driver's own real uid, gid and groups.
type driverSpec struct {
	Image         string            `json:"image,omitempty"`
	LocalRoot     string            `json:"localRoot,omitempty"`
	Mode          string            `json:"mode,omitempty"`
	MountHelper   string            `json:"mountHelper,omitempty"`
	UDIMount      string            `json:"udiMount"`
	Volumes       string            `json:"volumes,omitempty"`
	SiteVolumes   string            `json:"siteVolumes,omitempty"`
	EtcFiles      map[string]string `json:"etcFiles,omitempty"`
	PreMountHook  string            `json:"preMountHook,omitempty"`
	PostMountHook string            `json:"postMountHook,omitempty"`
	Argv          []string          `json:"argv"`
	Env           []string          `json:"env"`
	Workdir       string            `json:"workdir,omitempty"`
	Unprivileged  bool              `json:"unprivileged,omitempty"`
	Verbose       bool              `json:"verbose,omitempty"`
	CancelAfterMs int               `json:"cancelAfterMs,omitempty"` // cancel Run's context

	MountHelperArgs []string `json:"mountHelperArgs,omitempty"`
}

// Driver exit statuses for Run's setup errors (commands in the tests exit
// with small numbers).
var driverErrCodes = []struct {
	err  error
	code int
}{
	{mountns.ErrBadVolume, 201}, {mountns.ErrAccess, 202}, {mountns.ErrMount, 203},
	{mountns.ErrSpec, 204}, {mountns.ErrHook, 205}, {mountns.ErrUserNS, 206},
	{mountns.ErrFUSE, 207}, {mountns.ErrSetup, 208},
}

func TestMain(m *testing.M) {
	if f := os.Getenv(driverEnv); f != "" {
		os.Exit(driver(f))
	}
	code := m.Run()
	if image != nil {
		os.RemoveAll(image.dir)
	}
	if installDir != "" {
		os.RemoveAll(installDir)
	}
	os.Exit(code)
}

func driver(specFile string) int {
	if os.Geteuid() != os.Getuid() {
		// The setuid copy must not run specs (hooks run as root) that
		// anyone but the tests wrote.
		if err := trustedSpec(specFile); err != nil {
			fmt.Fprintln(os.Stderr, "driver:", err)
			return 250
		}
	}
	b, err := os.ReadFile(specFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		return 250
	}
	var ds driverSpec
	if err := json.Unmarshal(b, &ds); err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		return 250
	}
	level := slog.LevelWarn
	if ds.Verbose {
		level = slog.LevelDebug
	}
	uid, gid := os.Getuid(), os.Getgid()
	groups, _ := unix.Getgroups()
	cred := mountns.Credential{
		UID: uint32(uid), GID: uint32(gid), User: fmt.Sprintf("user%d", uid),
		Home: "/", Shell: "/bin/sh", GroupNames: map[uint32]string{},
	}
	for _, g := range groups {
		cred.Groups = append(cred.Groups, uint32(g))
		cred.GroupNames[uint32(g)] = fmt.Sprintf("grp%d", g)
	}
	cred.GroupNames[uint32(gid)] = fmt.Sprintf("grp%d", gid)
	spec := &mountns.Spec{
		LocalRoot: ds.LocalRoot, Mode: mountns.MountMode(ds.Mode), MountHelper: ds.MountHelper,
		UDIMount: ds.UDIMount, EtcFiles: ds.EtcFiles,
		PreMountHook: ds.PreMountHook, PostMountHook: ds.PostMountHook,
		Argv: ds.Argv, Env: ds.Env, Workdir: ds.Workdir, Cred: cred,
		Unprivileged: ds.Unprivileged, Setuid: os.Geteuid() != uid,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	spec.MountHelperArgs = ds.MountHelperArgs
	site, err := mountns.ParseSiteVolumes(ds.SiteVolumes)
	if err == nil {
		var user []mountns.Volume
		user, err = mountns.ParseVolumes(ds.Volumes)
		spec.Volumes = append(site, user...)
	}
	if err == nil && ds.Image != "" {
		spec.Image, err = os.Open(ds.Image)
		spec.ImagePath = ds.Image
	}
	code := -1
	if err == nil {
		ctx := context.Background()
		if ds.CancelAfterMs > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(ds.CancelAfterMs)*time.Millisecond)
			defer cancel()
		}
		code, err = mountns.Run(ctx, spec)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "driver: run:", err)
		for _, e := range driverErrCodes {
			if errors.Is(err, e.err) {
				return e.code
			}
		}
		return 250
	}
	return code
}

// trustedSpec accepts only a spec file that the tests wrote: in the
// driver's own directory tree, and it and its directory owned by root and
// writable by nobody else.
func trustedSpec(name string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	name = filepath.Clean(name)
	if !strings.HasPrefix(name, filepath.Dir(exe)+"/") {
		return fmt.Errorf("spec %s is not in %s", name, filepath.Dir(exe))
	}
	for _, p := range []string{name, filepath.Dir(name), filepath.Dir(exe)} {
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != 0 || st.Mode()&0o022 != 0 || st.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("spec %s: %s is not root's alone", name, p)
		}
	}
	return nil
}
