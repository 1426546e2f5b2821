// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/internal/sqtest"
)

// TestLargeTables builds an image whose lookup tables span several
// metadata blocks: more than 512 fragments (16 bytes each) and more than
// 2048 ids (4 bytes each), with a pseudo file setting the owners (no root
// needed), and checks it against unsquashfs -lln and unsquashfs -d.
func TestLargeTables(t *testing.T) {
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var pf strings.Builder
	for i := 0; i < 600; i++ { // one 3000-byte tail per 4K fragment block
		b := make([]byte, 3000)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		name := fmt.Sprintf("frag%04d", i)
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(src, "ids"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2100; i++ {
		name := fmt.Sprintf("ids/u%04d", i)
		if err := os.WriteFile(filepath.Join(src, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&pf, "%s m 644 %d %d\n", name, 100000+i, 200000+i)
	}
	pseudo := filepath.Join(t.TempDir(), "pseudo")
	if err := os.WriteFile(pseudo, []byte(pf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	img := sqtest.Build(t, src, "-b", "4K", "-pf", pseudo)
	r, err := OpenFile(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	sb := r.Superblock()
	r.Close()
	if sb.Fragments <= 512 || len(r.ids) <= 2048 {
		t.Fatalf("image has %d fragments and %d ids: not enough to span table blocks", sb.Fragments, len(r.ids))
	}
	checkImage(t, img)
}
