// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
)

// benchImage is a 3-layer image of about 64 MiB: half compressible text,
// half random bytes, in ~2000 files, with some overwrites and whiteouts.
func benchImage(b *testing.B) v1.Image {
	rng := rand.New(rand.NewPCG(1, 2))
	mk := func(prefix string, n, size int) []ent {
		var ents []ent
		for i := 0; i < n; i++ {
			buf := make([]byte, size)
			if i%2 == 0 {
				for j := range buf {
					buf[j] = byte(rng.Uint32())
				}
			} else {
				for j := range buf {
					buf[j] = "abcdefgh \n"[rng.IntN(10)]
				}
			}
			ents = append(ents, file(fmt.Sprintf("%s/d%02d/f%04d", prefix, i%50, i), string(buf)))
		}
		return ents
	}
	l1 := mk("usr", 1000, 32<<10)
	l2 := append(mk("opt", 800, 32<<10), whiteout("usr/d01", "f0001"))
	l3 := mk("usr", 200, 16<<10)
	return image(b, types.OCIManifestSchema1, v1.Config{}, nil, l1, l2, l3)
}

// BenchmarkBuild measures Build with a warm blob cache (flatten +
// mksquashfs) against the floor: go-containerregistry's mutate.Extract
// piped into the same mksquashfs.
func BenchmarkBuild(b *testing.B) {
	testutil.RequireTool(b, "mksquashfs")
	host := testRegistry(b, nil)
	img := benchImage(b)
	push(b, host+"/bench:1", img)
	p := newPuller(b, nil, host)
	r, err := p.Resolve(context.Background(), host+"/bench:1", nil)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	b.Run("pull-convert-warm-cache", func(b *testing.B) {
		b.SetBytes(r.Size)
		for b.Loop() {
			out, err := imagestore.CreateTemp(dir)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.Build(context.Background(), r, out, nil); err != nil {
				b.Fatal(err)
			}
			out.Close()
			os.Remove(out.Name())
		}
	})
	b.Run("floor-extract-mksquashfs", func(b *testing.B) {
		b.SetBytes(r.Size)
		for b.Loop() {
			out := filepath.Join(dir, "floor.sqfs")
			cmd := exec.Command("mksquashfs", "-", out, "-tar", "-noappend", "-quiet", "-no-progress")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			rc := mutate.Extract(img)
			_, cerr := io.Copy(stdin, rc)
			rc.Close()
			stdin.Close()
			if err := cmd.Wait(); err != nil || cerr != nil {
				b.Fatal(err, cerr)
			}
			os.Remove(out)
		}
	})
	b.Run("pull-convert-cold-cache", func(b *testing.B) {
		b.SetBytes(r.Size)
		for b.Loop() {
			b.StopTimer()
			os.RemoveAll(p.blobDir)
			os.MkdirAll(p.blobDir, 0o700)
			out, err := imagestore.CreateTemp(dir)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := p.Build(context.Background(), r, out, nil); err != nil {
				b.Fatal(err)
			}
			out.Close()
			os.Remove(out.Name())
		}
	})
}
