// SPDX-License-Identifier: BSD-3-Clause

package benchutil

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteResults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "results")
	res := map[string]float64{"floor": 1.5}
	name := "x-" + Stamp(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	paths, err := WriteResults(dir, name, res, "# x\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "x-20260102-030405.md"), filepath.Join(dir, "x-20260102-030405.json")}
	if len(paths) != 2 || paths[0] != want[0] || paths[1] != want[1] {
		t.Fatalf("WriteResults paths = %v, want %v", paths, want)
	}
	if b, err := os.ReadFile(paths[0]); err != nil || string(b) != "# x\n" {
		t.Errorf("markdown = %q, %v", b, err)
	}
	var got map[string]float64
	b, err := os.ReadFile(paths[1])
	if err != nil || json.Unmarshal(b, &got) != nil || got["floor"] != 1.5 {
		t.Errorf("json = %q, %v", b, err)
	}
}
