// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

const defaultConfigPath = "/etc/shifter/udiRoot.conf"

// globalConfig is what shifterimg needs from udiRoot.conf.
type globalConfig struct {
	file     string
	gateways []string // imageGateway: space-separated URLs
	system   string   // system
}

// loadConfig reads the imageGateway and system keys of udiRoot.conf
// ("key=value" lines, "#" comments; other keys are the runtime's).
func loadConfig(path string) (globalConfig, error) {
	if path == "" {
		path = defaultConfigPath
	}
	cfg := globalConfig{file: path}
	f, err := os.Open(path)
	if err != nil {
		return cfg, fmt.Errorf("reading configuration: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return cfg, fmt.Errorf("reading configuration %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue // the runtime reports syntax errors; we only need two keys
		}
		switch strings.TrimSpace(key) {
		case "imageGateway":
			cfg.gateways = strings.Fields(val)
		case "system":
			cfg.system = strings.TrimSpace(val)
		}
	}
	if err := sc.Err(); err != nil {
		return cfg, fmt.Errorf("reading configuration %s: %w", path, err)
	}
	return cfg, nil
}
