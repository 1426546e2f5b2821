// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/shifter-go/shifter/mountns"
	"github.com/shifter-go/shifter/udiroot"
)

// mkfsCandidates are where the mkfs programs of perNodeCache volumes are
// looked for (xfs: unless udiRoot.conf's mkfsXfsPath names one). ext4's
// is mke2fs, run with -t ext4 (mkfs.ext4 is a link to it).
var mkfsCandidates = map[string][]string{
	"xfs":  {"/usr/sbin/mkfs.xfs", "/sbin/mkfs.xfs"},
	"ext4": {"/usr/sbin/mke2fs", "/sbin/mke2fs"},
}

// perNodeCacheConfig is the Spec's perNodeCache setting, from
// udiRoot.conf, when vols has perNodeCache volumes (else the zero
// value); it applies the site's rules to each of them now (mountns.Run
// does again), so that a refused one fails before anything is mounted.
func perNodeCacheConfig(cfg *udiroot.Config, vols []mountns.Volume, mode RunMode, log *slog.Logger) (mountns.PerNodeCacheConfig, error) {
	var c mountns.PerNodeCacheConfig
	var want []mountns.Volume
	for _, v := range vols {
		if v.PerNodeCache != nil {
			want = append(want, v)
		}
	}
	if len(want) == 0 {
		return c, nil
	}
	c = mountns.PerNodeCacheConfig{
		Dir:            cfg.PerNodeCachePath,
		SizeLimit:      cfg.PerNodeCacheSizeLimit,
		AllowedFsTypes: cfg.PerNodeCacheAllowedFsType,
		Mkfs:           map[string]string{},
	}
	for _, v := range want {
		fs := v.PerNodeCache.FsType
		if _, done := c.Mkfs[fs]; done {
			continue
		}
		candidates := mkfsCandidates[fs]
		if fs == "xfs" && cfg.MkfsXfsPath != "" {
			candidates = []string{cfg.MkfsXfsPath}
		}
		c.Mkfs[fs] = findMkfs(candidates, mode, log)
	}
	for _, v := range want {
		if err := c.Check(v, mode == ModeUser); err != nil {
			if v.Site {
				err = fmt.Errorf("%s: siteFs: %w", cfg.File, err)
			} else {
				err = fmt.Errorf("--volume: %w", err)
			}
			return c, runError(err)
		}
	}
	return c, nil
}

// findMkfs returns the first candidate that is an executable regular
// file (symlinks resolved) and, for a setuid shifter, root's and reached
// only through directories that are root's and not writable by others
// (udiroot.OpenTrusted), or "".
func findMkfs(candidates []string, mode RunMode, log *slog.Logger) string {
	for _, p := range candidates {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			log.Debug("mkfs not found", "path", p, "err", err)
			continue
		}
		var st os.FileInfo
		if mode == ModeSetuid {
			f, err := udiroot.OpenTrusted(real)
			if err != nil {
				log.Debug("mkfs not usable", "path", real, "err", err)
				continue
			}
			st, err = f.Stat()
			f.Close()
			if err != nil {
				continue
			}
		} else if st, err = os.Stat(real); err != nil {
			continue
		}
		if st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return real
		}
	}
	return ""
}
