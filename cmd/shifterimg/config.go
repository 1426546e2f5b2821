// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"github.com/shifter-go/shifter/udiroot"
)

// globalConfig is what shifterimg needs from udiRoot.conf.
type globalConfig struct {
	file     string
	gateways []string // imageGateway: space-separated URLs
	system   string   // system
}

// loadConfig reads udiRoot.conf (udiroot.DefaultPath when path is "")
// with the runtime's parser, so that both commands agree on the file.
func loadConfig(path string) (globalConfig, error) {
	if path == "" {
		path = udiroot.DefaultPath
	}
	c, err := udiroot.Load(path, false)
	if err != nil {
		return globalConfig{file: path}, err
	}
	return globalConfig{file: path, gateways: c.ImageGateway, system: c.System}, nil
}
