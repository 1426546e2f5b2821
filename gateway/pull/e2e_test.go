// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
)

// startDistribution runs Debian's docker-registry (the distribution
// registry) on 127.0.0.1 with a temporary storage directory and returns
// its host:port.
func startDistribution(t *testing.T) string {
	t.Helper()
	bin := testutil.RequireTool(t, "docker-registry")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
`, filepath.Join(dir, "storage"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("docker-registry did not come up on %s: %v\n%s", addr, err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDistributionRegistry pushes images to the real distribution
// registry and pulls and converts them.
func TestDistributionRegistry(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "unsquashfs")
	host := startDistribution(t)
	layers := [][]ent{
		{dir("bin"), withMode(file("bin/busybox", "binary"), 0o755, 0, 0), dir("etc"), file("etc/os-release", "ID=e2e\n"), dir("var"), file("var/old", "old")},
		{hardlink("bin/sh", "bin/busybox"), whiteout("var", "old"), symlink("etc/mtab", "/proc/mounts")},
		{opaque("etc"), file("etc/os-release", "ID=e2e2\n"), withMode(file("home/u/.profile", "x"), 0o600, 1000, 1000),
			withXattr(file("xattr", "x"), "user.shifter", "yes")},
	}
	cfg := v1.Config{Env: []string{"PATH=/bin", "LANG=C"}, Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo hi"},
		WorkingDir: "/home/u", User: "1000:1000", Labels: map[string]string{"org.test": "e2e"}}
	docker := image(t, types.DockerManifestSchema2, cfg, nil, layers...)
	push(t, host+"/e2e/docker:1", docker)
	amd := image(t, types.OCIManifestSchema1, cfg, &v1.Platform{OS: "linux", Architecture: "amd64"}, layers...)
	arm := image(t, types.OCIManifestSchema1, v1.Config{}, &v1.Platform{OS: "linux", Architecture: "arm64"}, layers[0])
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	pushIndex(t, host+"/e2e/oci:1", idx)

	want := t.TempDir()
	applyReference(t, want, layers)
	wantTree := describeTree(t, want)
	for _, tc := range []struct{ ref, id string }{
		{host + "/e2e/docker:1", digestHex(t, docker)},
		{host + "/e2e/oci:1", digestHex(t, amd)},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			p := newPuller(t, nil, host)
			sq, m, err := buildImage(t, p, tc.ref)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			if m.ID != tc.id {
				t.Errorf("metadata ID = %s, want %s", m.ID, tc.id)
			}
			got := &cfgView{m.Env, m.Entrypoint, m.Cmd, m.WorkDir, m.User, m.Labels}
			wantCfg := &cfgView{cfg.Env, cfg.Entrypoint, cfg.Cmd, cfg.WorkingDir, cfg.User, cfg.Labels}
			if diff := cmp.Diff(wantCfg, got); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
			if err := m.Validate(); err != nil {
				t.Errorf("metadata does not validate: %v", err)
			}
			if diff := cmp.Diff(wantTree, describeTree(t, unsquash(t, sq))); diff != "" {
				t.Errorf("squashfs (unsquashfs) differs from the reference applier (-want +got):\n%s", diff)
			}
			// And as the runtime sees it: mounted by the kernel.
			if diff := cmp.Diff(wantTree, describeTree(t, sqtest.MountKernel(t, sq))); diff != "" {
				t.Errorf("squashfs (kernel mount) differs from the reference applier (-want +got):\n%s", diff)
			}
		})
	}
}

type cfgView struct {
	Env, Entrypoint, Cmd []string
	WorkDir, User        string
	Labels               map[string]string
}

func digestHex(t *testing.T, img v1.Image) string {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.Hex
}
