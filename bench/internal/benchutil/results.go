// SPDX-License-Identifier: BSD-3-Clause

package benchutil

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Stamp names a run's result files after its start time (UTC).
func Stamp(t time.Time) string { return t.UTC().Format("20060102-150405") }

// WriteResults stores a run's results in dir as NAME.json (res, indented)
// and NAME.md (the markdown report md), creating dir, and returns the two
// paths, markdown first.
func WriteResults(dir, name string, res any, md string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create results directory: %w", err)
	}
	base := filepath.Join(dir, name)
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(base+".md", []byte(md), 0o644); err != nil {
		return nil, fmt.Errorf("write results: %w", err)
	}
	return []string{base + ".md", base + ".json"}, nil
}
