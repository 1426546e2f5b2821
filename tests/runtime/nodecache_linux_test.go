// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
)

// TestFUSENodeCache: the node cache's helper options (Spec.MountHelperArgs,
// which the launcher fills from nodeCacheDir) reach a helper that runs as
// root, which then serves the image through the cache; a helper that runs
// as the user gets none of them.
func TestFUSENodeCache(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "fuse")
	testutil.Binary(t, "shifter-mount-cache")
	b, err := os.ReadFile(h.img.squashfs)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	id := hex.EncodeToString(sum[:])
	store := filepath.Join(h.dir, "store")
	if err := os.Mkdir(store, 0o700); err != nil {
		t.Fatal(err)
	}
	rootOnly := filepath.Join(store, id+".squashfs")
	if err := os.WriteFile(rootOnly, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cl, err := imagestore.ComputeChunkListFile(rootOnly, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := imagestore.WriteChunkList(store, id, cl); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, image string
		cached      bool
	}{
		{"root-only-image", rootOnly, true},
		{"readable-image", h.img.squashfs, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			cache := filepath.Join(h.dir, "cache-"+tc.name)
			ds := h.spec("fuse", "sh", "-c", `cat /etc/image-marker; for d in /proc/[0-9]*; do
				case "$(tr '\0' ' ' < $d/cmdline 2>/dev/null)" in *"--fsname=`+tc.image+` "*) tr '\0' ' ' < $d/cmdline; echo;; esac; done`)
			ds.Image = tc.image
			ds.MountHelperArgs = []string{"--cache-dir=" + cache, "--cache-size=64M", "--cache-optional", "--image-id=" + id,
				"--chunks=" + imagestore.ChunksPath(store, id)}
			out := h.must(ds, asUser)
			if !strings.HasPrefix(out, "from-the-image\n") {
				t.Fatalf("output %q", out)
			}
			if got := strings.Contains(out, "--cache-dir="+cache); got != tc.cached {
				t.Errorf("helper command line %q: --cache-dir passed %v, want %v", out, got, tc.cached)
			}
			_, err := os.Stat(filepath.Join(cache, "db"))
			if tc.cached && err != nil {
				t.Errorf("the helper did not open the cache: %v", err)
			}
			if !tc.cached && err == nil {
				t.Errorf("a helper running as the user made the cache %s", cache)
			}
		})
	}
}
