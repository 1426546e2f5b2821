// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/mountns"
	"github.com/shifter-go/shifter/udiroot"
)

// mountHelperArgs returns the node cache's options for the shifter-mount
// helper (mountns.Spec.MountHelperArgs) when udiRoot.conf sets
// nodeCacheDir and the image may be served through FUSE: the cache
// directory and size, --cache-optional (a cache held by another process,
// shifterd say, leaves the image served from its file, uncached), the
// image id (the helper gets the file as /proc/self/fd/4), its chunk list
// when the store has one, and --source when imageSource is an HTTP URL.
// mountns passes them only to a helper that runs as root: the cache
// directory is root's, and a helper running as the user serves the file
// uncached. Unprivileged mode (no root at all) and local images get none.
func mountHelperArgs(cfg *udiroot.Config, img *resolvedImage, runMode RunMode, mode mountns.MountMode, log *slog.Logger) []string {
	if cfg.NodeCacheDir == "" || runMode == ModeUser || img.File == nil || mode == mountns.MountLoop {
		return nil
	}
	if !imagestore.ValidID(img.ID) {
		return nil
	}
	args := []string{"--cache-dir=" + cfg.NodeCacheDir, "--cache-size=" + strconv.FormatInt(cfg.NodeCacheSize, 10),
		"--cache-optional", "--image-id=" + img.ID}
	p := imagestore.ChunksPath(filepath.Dir(img.Path), img.ID)
	haveChunks := fileExists(p)
	if haveChunks {
		args = append(args, "--chunks="+p)
	}
	if src := cfg.ImageSource; strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		// A chunk list from the source must be pinned: by the store's own
		// list, or by the digest the metadata records.
		switch {
		case haveChunks:
			args = append(args, "--source="+src)
		case img.Meta != nil && img.Meta.ChunksSHA256 != "":
			args = append(args, "--source="+src, "--chunks-sha256="+img.Meta.ChunksSHA256)
		default:
			log.Info("imageSource not used: the image's chunk list is neither in the store nor pinned by its metadata", "image", img.ID)
		}
	}
	log.Debug("fuse mode serves the image through the node cache when its helper runs as root", "args", strings.Join(args, " "))
	return args
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
