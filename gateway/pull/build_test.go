// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
)

// buildImage resolves and builds ref with p into a temporary squashfs and
// returns its path and metadata.
func buildImage(t *testing.T, p *Puller, ref string) (string, *imagestore.Metadata, error) {
	t.Helper()
	testutil.RequireTool(t, "mksquashfs")
	r, err := p.Resolve(context.Background(), ref, nil)
	if err != nil {
		return "", nil, err
	}
	out, err := imagestore.CreateTemp(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	m, err := p.Build(context.Background(), r, out, nil)
	return out.Name(), m, err
}

func TestBuildSmoke(t *testing.T) {
	host := testRegistry(t, nil)
	img := image(t, types.DockerManifestSchema2, v1.Config{Env: []string{"A=1"}, Cmd: []string{"sh"}}, nil,
		[]ent{dir("etc"), file("etc/os-release", "ID=test\n"), file("etc/gone", "x")},
		[]ent{whiteout("etc", "gone"), hardlink("etc/hl", "etc/os-release")})
	push(t, host+"/smoke:1", img)
	p := newPuller(t, nil, host)
	sq, m, err := buildImage(t, p, host+"/smoke:1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := exec.Command("unsquashfs", "-lln", sq).CombinedOutput()
	t.Logf("%s\n%+v", b, m)
	_ = filepath.Join
	_ = os.Stat
}
