// SPDX-License-Identifier: BSD-3-Clause

package benchutil

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultMirror is the Debian mirror debootstrap installs from.
const DefaultMirror = "http://deb.debian.org/debian"

// Cache builds and keeps the benchmark inputs under Dir (bench/cache):
//
//	rootfs/                        debootstrap --variant=minbase --include=python3 bookworm
//	big/<size>/big<N>, big<N>.crc  generated big files and their CRC-32C
//	images/<comp>-<n>x<size>.squashfs
//
// Everything is built once and reused; delete a file to rebuild it.
type Cache struct {
	Dir    string
	Mirror string       // default DefaultMirror
	Log    *slog.Logger // default discard
}

// BigFile is one generated file inside a benchmark image.
type BigFile struct {
	Name string // path inside the image, e.g. "bench-big/big0"
	Host string // the generated file in the cache
	Size int64
	CRC  uint32 // CRC-32C of the content
}

// ImageSpec selects a benchmark image.
type ImageSpec struct {
	Comp     string // mksquashfs -comp: gzip, zstd, xz, lz4, lzo
	BigFiles int    // number of big files under /bench-big
	BigSize  int64  // bytes of each big file
	// Extra mksquashfs options (e.g. "-b", "1M"); they are part of the
	// cache key.
	Extra []string
}

// Name is the image's file name in the cache (and its label in reports).
func (s ImageSpec) Name() string {
	n := s.Comp + "-rootfs"
	if s.BigFiles > 0 {
		n = fmt.Sprintf("%s-%dx%s", s.Comp, s.BigFiles, SizeLabel(s.BigSize))
	}
	for _, e := range s.Extra {
		n += "_" + strings.Trim(strings.ReplaceAll(e, "/", "_"), "-")
	}
	return n
}

// Image is a built benchmark image.
type Image struct {
	Spec ImageSpec
	Path string
	Big  []BigFile
}

func (c *Cache) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// Rootfs returns the debootstrap'd Debian bookworm minbase with python3,
// running debootstrap first (a few minutes, needs root and the mirror)
// when the cache does not hold it yet.
func (c *Cache) Rootfs(ctx context.Context) (string, error) {
	dir := filepath.Join(c.Dir, "rootfs")
	if _, err := os.Stat(filepath.Join(dir, "usr/bin/python3")); err == nil {
		return dir, nil
	}
	mirror := c.Mirror
	if mirror == "" {
		mirror = DefaultMirror
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("remove stale rootfs: %w", err)
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return "", fmt.Errorf("create cache: %w", err)
	}
	c.log().Info("building rootfs with debootstrap (a few minutes)", "path", dir, "mirror", mirror)
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include=python3", "bookworm", tmp, mirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("debootstrap: %w\n%s", err, tail(out, 2000))
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("install rootfs: %w", err)
	}
	return dir, nil
}

// BigFiles returns n generated files of size bytes each (seeds 0..n-1),
// generating the missing ones.
func (c *Cache) BigFiles(n int, size int64) ([]BigFile, error) {
	if n <= 0 {
		return nil, nil
	}
	dir := filepath.Join(c.Dir, "big", SizeLabel(size))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create big file cache: %w", err)
	}
	var out []BigFile
	for i := range n {
		name := fmt.Sprintf("big%d", i)
		bf := BigFile{Name: "bench-big/" + name, Host: filepath.Join(dir, name), Size: size}
		crcPath := bf.Host + ".crc"
		b, err := os.ReadFile(crcPath)
		st, serr := os.Stat(bf.Host)
		if err == nil && serr == nil && st.Size() == size {
			v, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 32)
			if perr == nil {
				bf.CRC = uint32(v)
				out = append(out, bf)
				continue
			}
		}
		c.log().Info("generating big file", "path", bf.Host, "size", size)
		crc, err := WriteGenerated(bf.Host, uint64(i), size)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(crcPath, fmt.Appendf(nil, "%08x\n", crc), 0o644); err != nil {
			return nil, fmt.Errorf("write big file checksum: %w", err)
		}
		bf.CRC = crc
		out = append(out, bf)
	}
	return out, nil
}

// Image returns the squashfs for spec, building it with mksquashfs (the
// rootfs plus the big files under /bench-big, added as pseudo files) when
// the cache does not hold it.
func (c *Cache) Image(ctx context.Context, spec ImageSpec) (*Image, error) {
	big, err := c.BigFiles(spec.BigFiles, spec.BigSize)
	if err != nil {
		return nil, err
	}
	path, err := filepath.Abs(filepath.Join(c.Dir, "images", spec.Name()+".squashfs"))
	if err != nil {
		return nil, err
	}
	img := &Image{Spec: spec, Big: big, Path: path}
	if _, err := os.Stat(img.Path); err == nil {
		return img, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("stat image: %w", err)
	}
	rootfs, err := c.Rootfs(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(img.Path), 0o755); err != nil {
		return nil, fmt.Errorf("create image cache: %w", err)
	}
	tmp := img.Path + ".tmp"
	pseudo := tmp + ".pf"
	var pf strings.Builder
	if len(big) > 0 {
		pf.WriteString("bench-big d 755 0 0\n")
	}
	for _, b := range big {
		abs, err := filepath.Abs(b.Host)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&pf, "%s f 644 0 0 cat %s\n", b.Name, abs)
	}
	if err := os.WriteFile(pseudo, []byte(pf.String()), 0o644); err != nil {
		return nil, fmt.Errorf("write pseudo file: %w", err)
	}
	defer os.Remove(pseudo)
	args := []string{rootfs, tmp, "-comp", spec.Comp, "-noappend", "-no-progress", "-quiet"}
	if len(big) > 0 {
		args = append(args, "-pf", pseudo)
	}
	args = append(args, spec.Extra...)
	c.log().Info("building image with mksquashfs", "image", img.Path)
	if out, err := exec.CommandContext(ctx, "mksquashfs", args...).CombinedOutput(); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("mksquashfs %s: %w\n%s", spec.Name(), err, tail(out, 2000))
	}
	if err := os.Rename(tmp, img.Path); err != nil {
		return nil, fmt.Errorf("install image: %w", err)
	}
	return img, nil
}

// SizeLabel writes a byte count compactly: 256M, 16M, 4K, 1000.
func SizeLabel(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return strconv.FormatInt(n, 10)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
