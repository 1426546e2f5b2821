// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// layerSplit puts usr/ in the second layer and everything else in the
// first, so the image has two layers like most real ones.
var layerSplit = []struct {
	name string
	keep func(rel string) bool
}{
	{"base", func(rel string) bool { return rel != "usr" && !strings.HasPrefix(rel, "usr/") }},
	{"usr", func(rel string) bool { return rel == "usr" || strings.HasPrefix(rel, "usr/") }},
}

// rootfsImage returns a two-layer Docker image of the rootfs directory,
// writing the gzip'd layers into dir once.
func rootfsImage(rootfs, dir string) (v1.Image, int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, fmt.Errorf("create layer cache: %w", err)
	}
	var layers []v1.Layer
	var compressed int64
	for _, s := range layerSplit {
		p := filepath.Join(dir, s.name+".tar.gz")
		if _, err := os.Stat(p); err != nil {
			if err := writeLayer(rootfs, p, s.keep); err != nil {
				return nil, 0, err
			}
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, 0, err
		}
		compressed += st.Size()
		l, err := tarball.LayerFromFile(p)
		if err != nil {
			return nil, 0, fmt.Errorf("open layer %s: %w", p, err)
		}
		layers = append(layers, l)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"/bin/bash"},
		},
	})
	if err != nil {
		return nil, 0, fmt.Errorf("make image config: %w", err)
	}
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, 0, fmt.Errorf("append layers: %w", err)
	}
	return img, compressed, nil
}

// writeLayer writes the entries of root that keep selects as a gzip'd tar
// (owners, modes, mtimes, symlinks, hard links and devices kept).
func writeLayer(root, path string, keep func(string) bool) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create layer: %w", err)
	}
	defer os.Remove(tmp)
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	links := map[uint64]string{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." || !keep(rel) {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		var target string
		if info.Mode()&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, target)
		if err != nil {
			return err
		}
		h.Name, h.Uname, h.Gname = rel, "", ""
		if d.IsDir() {
			h.Name += "/"
		}
		st := info.Sys().(*syscall.Stat_t)
		h.Uid, h.Gid = int(st.Uid), int(st.Gid)
		if info.Mode().IsRegular() && st.Nlink > 1 {
			if first, ok := links[st.Ino]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			} else {
				links[st.Ino] = rel
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write layer %s: %w", path, err)
	}
	return nil
}
