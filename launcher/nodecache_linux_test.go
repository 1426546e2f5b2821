// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/mountns"
	"github.com/shifter-go/shifter/udiroot"
)

func TestMountHelperArgs(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	store := t.TempDir()
	for _, name := range []string{id + ".squashfs", id + ".chunks", other + ".squashfs"} {
		if err := os.WriteFile(filepath.Join(store, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(filepath.Join(store, id+".squashfs"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	withChunks := &resolvedImage{File: f, ID: id, Path: filepath.Join(store, id+".squashfs")}
	noChunks := &resolvedImage{File: f, ID: other, Path: filepath.Join(store, other+".squashfs")}
	pinned := &resolvedImage{File: f, ID: other, Path: filepath.Join(store, other+".squashfs"), Meta: &imagestore.Metadata{ID: other, ChunksSHA256: id}}
	local := &resolvedImage{ID: "/some/dir", Path: "/some/dir", LocalRoot: "/some/dir"}
	cache := func(c *udiroot.Config) *udiroot.Config {
		c.NodeCacheDir, c.NodeCacheSize = "/var/cache/shifter", 20<<30
		return c
	}
	base := []string{"--cache-dir=/var/cache/shifter", "--cache-size=21474836480", "--cache-optional"}
	tests := []struct {
		name    string
		cfg     *udiroot.Config
		img     *resolvedImage
		runMode RunMode
		mode    mountns.MountMode
		want    []string
	}{
		{"no cache configured", &udiroot.Config{NodeCacheSize: 10 << 30, ImageSource: "file"}, withChunks, ModeSetuid, mountns.MountFUSE, nil},
		{"fuse, chunk list in the store", cache(&udiroot.Config{ImageSource: "file"}), withChunks, ModeSetuid, mountns.MountFUSE,
			append(slices.Clone(base), "--image-id="+id, "--chunks="+filepath.Join(store, id+".chunks"))},
		{"auto (FUSE fallback), run by root", cache(&udiroot.Config{ImageSource: "file"}), withChunks, ModeRoot, mountns.MountAuto,
			append(slices.Clone(base), "--image-id="+id, "--chunks="+filepath.Join(store, id+".chunks"))},
		{"no chunk list", cache(&udiroot.Config{ImageSource: "file"}), noChunks, ModeSetuid, mountns.MountFUSE,
			append(slices.Clone(base), "--image-id="+other)},
		{"http source, the store's chunk list", cache(&udiroot.Config{ImageSource: "https://gw.example/images/cori"}), withChunks, ModeSetuid, mountns.MountFUSE,
			append(slices.Clone(base), "--image-id="+id, "--chunks="+filepath.Join(store, id+".chunks"), "--source=https://gw.example/images/cori")},
		{"http source, pinned by the metadata", cache(&udiroot.Config{ImageSource: "https://gw.example/images/cori"}), pinned, ModeSetuid, mountns.MountFUSE,
			append(slices.Clone(base), "--image-id="+other, "--source=https://gw.example/images/cori", "--chunks-sha256="+id)},
		{"http source, nothing to pin it", cache(&udiroot.Config{ImageSource: "https://gw.example/images/cori"}), noChunks, ModeSetuid, mountns.MountFUSE,
			append(slices.Clone(base), "--image-id="+other)},
		{"loop mode", cache(&udiroot.Config{ImageSource: "file"}), withChunks, ModeSetuid, mountns.MountLoop, nil},
		{"unprivileged", cache(&udiroot.Config{ImageSource: "file"}), withChunks, ModeUser, mountns.MountFUSE, nil},
		{"local image", cache(&udiroot.Config{ImageSource: "file"}), local, ModeSetuid, mountns.MountFUSE, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mountHelperArgs(tc.cfg, tc.img, tc.runMode, tc.mode, slog.New(slog.DiscardHandler))
			if !slices.Equal(got, tc.want) {
				t.Errorf("mountHelperArgs = %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestBuildSpecMountHelperArgs: a spec built from udiRoot.conf with
// nodeCacheDir carries the cache's helper options (mountns passes them to
// a helper that runs as root).
func TestBuildSpecMountHelperArgs(t *testing.T) {
	store := t.TempDir()
	id := publish(t, store, "cached", time.Unix(1, 0), []string{"app:1"}, nil, nil)
	cfg := udiroot.Default()
	cfg.ImagePath = store
	cfg.ImageMount = string(mountns.MountFUSE)
	cfg.NodeCacheDir = "/var/cache/shifter/node"
	cfg.ImageSource = "http://gw:8000/images/sys"
	cred, err := CallerCredential()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := ParseArgs([]string{"-i", "app:1", "true"}, nil, "docker")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []RunMode{ModeRoot, ModeUser} {
		in := &buildInput{Opts: opts, Cfg: cfg, Mode: mode, Cred: cred, Cwd: "/", Environ: []string{"PATH=/bin"}, Log: discardLog()}
		spec, err := buildSpec(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		spec.Image.Close()
		// The image has no chunk list, nor a pin for one: the source is
		// not used (its chunk list could not be checked).
		want := []string{"--cache-dir=/var/cache/shifter/node", "--cache-size=10737418240", "--cache-optional",
			"--image-id=" + id}
		if mode == ModeUser {
			want = nil
		}
		if !slices.Equal(spec.MountHelperArgs, want) {
			t.Errorf("%v: MountHelperArgs = %q, want %q", mode, spec.MountHelperArgs, want)
		}
	}
}
