// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// writeEtc writes the site files of /etc: passwd, group, the copied ones,
// and the mtab link. An existing entry of the image is replaced, never
// written through.
func (r *rootfs) writeEtc(cfg *initConfig) error {
	root, err := os.OpenRoot(r.path)
	if err != nil {
		return fmt.Errorf("%w: opening the container root: %v", ErrSetup, err)
	}
	defer root.Close()
	if err := root.MkdirAll("etc", 0o755); err != nil {
		return fmt.Errorf("%w: creating /etc: %v", ErrSetup, err)
	}
	files, err := etcFiles(cfg)
	if err != nil {
		return err
	}
	for name, b := range files {
		p := "etc/" + name
		if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: replacing /%s: %v", ErrSetup, p, err)
		}
		f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("%w: writing /%s: %v", ErrSetup, p, err)
		}
		_, werr := f.Write(b)
		cerr := f.Chmod(0o644)
		if err := errors.Join(werr, cerr, f.Close()); err != nil {
			return fmt.Errorf("%w: writing /%s: %v", ErrSetup, p, err)
		}
	}
	if err := root.Remove("etc/mtab"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: replacing /etc/mtab: %v", ErrSetup, err)
	}
	if err := root.Symlink("/proc/mounts", "etc/mtab"); err != nil {
		return fmt.Errorf("%w: linking /etc/mtab: %v", ErrSetup, err)
	}
	return nil
}

// etcFiles returns the content of the site files of /etc, by name.
func etcFiles(cfg *initConfig) (map[string][]byte, error) {
	files := map[string][]byte{"passwd": passwdFile(cfg.Cred, cfg.ImportUsers), "group": groupFile(cfg.Cred, cfg.ImportUsers)}
	for name, host := range cfg.EtcFiles {
		b, err := os.ReadFile(host)
		if err != nil {
			return nil, fmt.Errorf("%w: reading site file for /etc/%s: %v", ErrSetup, name, err)
		}
		files[name] = b
	}
	for name, b := range cfg.EtcData {
		files[name] = b
	}
	return files, nil
}
