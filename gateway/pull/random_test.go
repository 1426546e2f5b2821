// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/shifter-go/shifter/internal/testutil"
)

// randomLayers generates layers the way image builders produce them
// (parents declared before children, links to files that exist), with
// files replacing directories and back, hard links across layers,
// whiteouts and opaque markers, applying each layer to the reference
// directory as it goes so the next layer can refer to the current tree.
func randomLayers(t *testing.T, rng *rand.Rand, ref string) [][]ent {
	parents := []string{"a", "b", "c"}
	leaves := []string{"a", "b", "c", "f", "g"}
	randPath := func() string {
		var comps []string
		for d := rng.IntN(3); d > 0; d-- {
			comps = append(comps, parents[rng.IntN(len(parents))])
		}
		return path.Join(append(comps, leaves[rng.IntN(len(leaves))])...)
	}
	var layers [][]ent
	for li, nl := 0, 1+rng.IntN(5); li < nl; li++ {
		// The tree as it stands before this layer.
		var files, all, dirs []string
		fs.WalkDir(os.DirFS(ref), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == "." {
				return err
			}
			all = append(all, p)
			if d.Type().IsRegular() {
				files = append(files, p)
			} else if d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		touched := map[string]bool{}
		var ents []ent
		emitParents := func(p string) {
			for d := path.Dir(p); d != "."; d = path.Dir(d) {
				defer func(d string) {
					ents = append(ents, dir(d))
					touched[d] = true
				}(d)
			}
		}
		untouched := func(p string) bool {
			for q := p; q != "."; q = path.Dir(q) {
				if touched[q] {
					return false
				}
			}
			return true
		}
		for k, n := 0, 1+rng.IntN(12); k < n; k++ {
			switch op := rng.IntN(100); {
			case op < 40:
				p := randPath()
				emitParents(p)
				e := file(p, strings.Repeat(fmt.Sprint(rng.IntN(1000)), 1+rng.IntN(50)))
				e.mode = []int64{0o644, 0o755, 0o600, 0o4755}[rng.IntN(4)]
				e.uid = []int{0, 1000}[rng.IntN(2)]
				ents = append(ents, e)
				touched[p] = true
			case op < 50:
				p := randPath()
				emitParents(p)
				ents = append(ents, dir(p))
				touched[p] = true
			case op < 70:
				if len(files) == 0 {
					continue
				}
				p := randPath()
				if !untouched(path.Dir(p)) && path.Dir(p) != "." {
					continue
				}
				for try := 0; try < 5; try++ {
					target := files[rng.IntN(len(files))]
					if target == p || !untouched(target) || strings.HasPrefix(target, p+"/") || strings.HasPrefix(p, target+"/") {
						continue
					}
					emitParents(p)
					ents = append(ents, hardlink(p, target))
					touched[p] = true
					break
				}
			case op < 78:
				d := path.Dir(randPath())
				emitParents(d + "/x")
				p := path.Join(d, fmt.Sprintf("l%d", rng.IntN(3)))
				ents = append(ents, symlink(p, []string{"a", "/b/f", "../c", "nowhere"}[rng.IntN(4)]))
				touched[p] = true
			case op < 92:
				if len(all) == 0 {
					continue
				}
				p := all[rng.IntN(len(all))]
				if !untouched(p) {
					continue
				}
				d, b := path.Split(p)
				ents = append(ents, whiteout(strings.TrimSuffix(d, "/"), b))
				touched[p] = true
			default:
				if len(dirs) == 0 {
					continue
				}
				d := dirs[rng.IntN(len(dirs))]
				if !untouched(d) {
					continue
				}
				ents = append(ents, opaque(d))
				touched[d] = true
			}
		}
		if len(ents) == 0 {
			ents = append(ents, file("empty-layer-filler", ""))
		}
		applyReference(t, ref, [][]ent{ents})
		layers = append(layers, ents)
	}
	return layers
}

// TestBuildRandomLayers is a differential test: random layer stacks,
// flattened and converted, against the reference applier.
func TestBuildRandomLayers(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "unsquashfs")
	n := 30
	if testing.Short() {
		n = 5
	}
	if s := os.Getenv("PULL_RANDOM_SEEDS"); s != "" { // longer local runs
		fmt.Sscan(s, &n)
	}
	host := testRegistry(t, nil)
	p := newPuller(t, nil, host)
	for seed := range n {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 42))
			want := t.TempDir()
			layers := randomLayers(t, rng, want)
			ref := fmt.Sprintf("%s/random:%d", host, seed)
			push(t, ref, image(t, types.OCIManifestSchema1, v1.Config{}, nil, layers...))
			sq, _, err := buildImage(t, p, ref)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			wantTree := describeTree(t, want)
			if testing.Verbose() {
				kinds := map[string]int{}
				for _, l := range layers {
					for _, e := range l {
						switch {
						case strings.Contains(e.name, ".wh..wh..opq"):
							kinds["opaque"]++
						case strings.Contains(e.name, ".wh."):
							kinds["whiteout"]++
						default:
							kinds[string(rune(e.typ))]++
						}
					}
				}
				t.Logf("%d layers, entries by kind %v, %d paths in the result", len(layers), kinds, len(wantTree))
			}
			if diff := cmp.Diff(wantTree, describeTree(t, unsquash(t, sq))); diff != "" {
				var b strings.Builder
				for i, l := range layers {
					fmt.Fprintf(&b, "layer %d:\n", i)
					for _, e := range l {
						fmt.Fprintf(&b, "  %c %s %s\n", e.typ, e.name, e.link)
					}
				}
				t.Errorf("squashfs differs from the reference applier (-want +got):\n%s\n%s", diff, b.String())
			}
		})
	}
}
