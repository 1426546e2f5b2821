// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// damonAdmin is DAMON's sysfs interface (Linux 5.18+).
const damonAdmin = "/sys/kernel/mm/damon/admin/kdamonds"

// pauseDAMON turns off every running kdamond that applies a pageout or
// lru_deprio scheme, and returns a function that turns them back on (with
// the parameters still in sysfs) and what it did, for the report. Such a
// scheme pages out page cache left unaccessed for a while: a warm figure
// that follows a long cold run is then partly cold, for whichever method
// happens to run when it strikes (seen on the development VM). Dropping the
// caches between runs is the same kind of intervention.
func pauseDAMON(root string, log *slog.Logger) (restore func(), note string, err error) {
	dirs, _ := filepath.Glob(filepath.Join(root, "[0-9]*"))
	var paused []string
	restore = func() {
		for _, d := range paused {
			if err := os.WriteFile(filepath.Join(d, "state"), []byte("on\n"), 0); err != nil {
				log.Error("turn DAMON back on: do it by hand (echo on > STATE)", "state", filepath.Join(d, "state"), "err", err)
				continue
			}
			log.Info("DAMON back on", "kdamond", d)
		}
		paused = nil
	}
	for _, d := range dirs {
		state, err := os.ReadFile(filepath.Join(d, "state"))
		if err != nil || strings.TrimSpace(string(state)) != "on" {
			continue
		}
		actions, _ := filepath.Glob(filepath.Join(d, "contexts", "*", "schemes", "*", "action"))
		var evict []string
		for _, a := range actions {
			b, err := os.ReadFile(a)
			if err != nil {
				continue
			}
			if act := strings.TrimSpace(string(b)); act == "pageout" || act == "lru_deprio" {
				evict = append(evict, act)
			}
		}
		if len(evict) == 0 {
			continue
		}
		if err := os.WriteFile(filepath.Join(d, "state"), []byte("off\n"), 0); err != nil {
			restore()
			return nil, "", fmt.Errorf("pause DAMON %s (or run with --damon=keep): %w", d, err)
		}
		log.Info("DAMON paused for the run", "kdamond", d, "schemes", evict)
		paused = append(paused, d)
	}
	if len(paused) > 0 {
		note = fmt.Sprintf("DAMON page-out paused during the run (%d kdamond(s), turned back on after)", len(paused))
	}
	return restore, note, nil
}
