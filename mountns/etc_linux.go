// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"os"
)

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
