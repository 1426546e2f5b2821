// SPDX-License-Identifier: BSD-3-Clause

//go:build shiftercache

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/nodecache"
)

// This is the build with the node cache, shifter-mount-cache (-tags
// shiftercache): the plain shifter-mount execs it for --cache-dir (see
// cache_exec_linux.go), so that the packages of the cache (badger,
// net/http: 7 MB of code and their initialisation) cost nothing to a
// mount without one.
const cacheBuild = true

// execCacheBuild is never needed here.
func execCacheBuild([]string, int) error { return nil }

// nodeCache is the node cache an image is served through.
type nodeCache struct {
	c   *nodecache.Cache
	im  *nodecache.Image
	src string // the source's name (a redacted URL or the file)
}

// heapBudget is what the node cache may keep on the heap (0 without one).
func (nc *nodeCache) heapBudget() int64 {
	if nc == nil {
		return 0
	}
	return nc.c.HeapBudget()
}

// logStats logs the cache's counters (this process's: the cache serves
// only this image here).
func (nc *nodeCache) logStats(log *slog.Logger) {
	if nc == nil {
		return
	}
	st := nc.c.Stats()
	log.Info("node cache", "hits", st.Hits, "misses", st.Misses, "source_bytes", st.SourceBytes,
		"evicted_bytes", st.EvictedBytes, "verify_failures", st.VerifyFailures,
		"cached", nc.im.Cached(), "chunks", st.Chunks, "bytes", st.Bytes, "size", st.Size)
}

// imageID is the id of the image: --image-id, IMAGE with --source, or
// the name of the image file, <id>.squashfs.
func imageID(image string, cfg *config) (string, error) {
	switch {
	case cfg.imageID != "":
		return cfg.imageID, nil
	case cfg.source != "":
		return cfg.image, nil
	}
	id, ok := strings.CutSuffix(filepath.Base(image), ".squashfs")
	if !ok || !imagestore.ValidID(id) {
		return "", fmt.Errorf("--cache-dir: image %s is not named <id>.squashfs: give its id with --image-id", image)
	}
	return id, nil
}

// openCached opens the image through the node cache. It returns a nil
// reader, and no error, when the image is to be served as without a
// cache: the cache is unavailable and --cache-optional is given.
func openCached(image string, cfg *config, log *slog.Logger) (ra io.ReaderAt, size int64, nc *nodeCache, closeFn func(), err error) {
	id, err := imageID(image, cfg)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	c, err := nodecache.Open(cfg.cacheDir, nodecache.Options{Size: cfg.cacheSize, Logger: log.With("component", "nodecache")})
	if err != nil {
		if !cfg.cacheOptional {
			return nil, 0, nil, nil, fmt.Errorf("node cache: %w", err)
		}
		if cfg.source != "" && cfg.imageID == "" {
			return nil, 0, nil, nil, fmt.Errorf("node cache: %w (an HTTP source is read only through the cache, which verifies it)", err)
		}
		log.Warn("node cache unavailable: serving the image file uncached", "err", err)
		return nil, 0, nil, nil, nil
	}
	closeAll := []func() error{c.Close}
	closeEverything := func() {
		for i := len(closeAll) - 1; i >= 0; i-- {
			closeAll[i]()
		}
	}
	// Not the named result: an error return sets it to nil first.
	defer func() {
		if err != nil {
			closeEverything()
		}
	}()
	var src nodecache.Source
	var chunks *imagestore.ChunkList
	if cfg.source != "" {
		hs, err := nodecache.NewHTTPSource(cfg.source, id, nil)
		if err != nil {
			return nil, 0, nil, nil, err
		}
		if cfg.chunks != "" {
			chunks, err = loadChunks(image, id, cfg)
		} else if chunks, err = hs.ChunkList(context.Background()); err == nil && chunks.Digest() != cfg.chunksSHA256 {
			err = fmt.Errorf("the source's chunk list has sha256 %s, --chunks-sha256 pins %s", chunks.Digest(), cfg.chunksSHA256)
		}
		if err != nil {
			return nil, 0, nil, nil, fmt.Errorf("image %s: %w", id, err)
		}
		src = hs
	} else {
		f, err := os.Open(image)
		if err != nil {
			return nil, 0, nil, nil, fmt.Errorf("open image: %w", err)
		}
		closeAll = append(closeAll, f.Close)
		st, err := f.Stat()
		if err != nil {
			return nil, 0, nil, nil, fmt.Errorf("stat image: %w", err)
		}
		if !st.Mode().IsRegular() {
			return nil, 0, nil, nil, fmt.Errorf("image %s is not a regular file", image)
		}
		src = nodecache.NewFileSource(f, st.Size(), image)
		if chunks, err = loadChunks(image, id, cfg); err != nil {
			return nil, 0, nil, nil, err
		}
		if chunks == nil {
			log.Debug("no chunk list: the image is read through, uncached", "image", image, "id", id)
		}
	}
	im, err := c.Image(id, src, chunks)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	return im, im.Size(), &nodeCache{c: c, im: im, src: src.String()}, closeEverything, nil
}

// loadChunks returns the image's chunk list: --chunks, else the one
// beside the image file, else the one shifterd made in the cache
// directory; nil when there is none.
func loadChunks(image, id string, cfg *config) (*imagestore.ChunkList, error) {
	if cfg.chunks != "" {
		f, err := os.OpenFile(cfg.chunks, os.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, fmt.Errorf("chunk list: %w", err)
		}
		defer f.Close()
		cl, err := imagestore.ReadChunkList(f)
		if err != nil {
			return nil, fmt.Errorf("chunk list %s: %w", cfg.chunks, err)
		}
		return cl, nil
	}
	for _, dir := range []string{filepath.Dir(image), filepath.Join(cfg.cacheDir, "chunklists")} {
		cl, err := imagestore.LoadChunkList(dir, id)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		return cl, nil
	}
	return nil, nil
}
