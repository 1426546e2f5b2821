// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openSources opens the source of every volume, in order: user volumes
// with the user's credentials, site volumes as the init. perNodeCache
// volumes have none (a source without a file).
func openSources(cfg *initConfig) ([]source, error) {
	var userPaths []string
	for _, v := range cfg.Volumes {
		if !v.Site && v.PerNodeCache == nil {
			userPaths = append(userPaths, v.Source)
		}
	}
	var user []source
	if len(userPaths) > 0 {
		var err error
		if user, err = openSourcesAsUser(userPaths, cfg.Cred, !cfg.Unprivileged); err != nil {
			return nil, err
		}
	}
	srcs := make([]source, 0, len(cfg.Volumes))
	for _, v := range cfg.Volumes {
		if v.PerNodeCache != nil {
			// Its source is ignored, as in Shifter: nothing to open.
			srcs = append(srcs, source{isDir: true})
			continue
		}
		if !v.Site {
			srcs = append(srcs, user[0])
			user = user[1:]
			continue
		}
		f, err := os.OpenFile(v.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		var st os.FileInfo
		if err == nil {
			st, err = f.Stat()
		}
		if err != nil {
			closeSources(srcs)
			closeSources(user)
			return nil, fmt.Errorf("%w: site volume %s: %v", ErrMount, v.Source, err)
		}
		srcs = append(srcs, source{f: f, isDir: st.IsDir()})
	}
	return srcs, nil
}

func closeSources(srcs []source) {
	for _, s := range srcs {
		if s.f != nil {
			s.f.Close()
		}
	}
}
