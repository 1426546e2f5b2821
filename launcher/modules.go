// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"slices"

	"github.com/shifter-go/shifter/udiroot"
)

// selectModules returns the active modules, in order: requested (from
// --module or SHIFTER_MODULE) or, when nil, the configuration's
// defaultModules. "none" selects nothing. Unknown, disabled and
// conflicting modules are usage errors.
func selectModules(cfg *udiroot.Config, requested []string) ([]*udiroot.Module, error) {
	names := requested
	if names == nil {
		names = cfg.DefaultModules
	}
	if slices.Contains(names, "none") {
		return nil, nil
	}
	var out []*udiroot.Module
	for _, n := range names {
		m, ok := cfg.Modules[n]
		if !ok {
			return nil, failf(ExitUsage, "unknown shifter module %q", n)
		}
		if !m.Enabled {
			return nil, failf(ExitUsage, "shifter module %q is disabled by the site", n)
		}
		out = append(out, m)
	}
	for i, a := range out {
		for _, b := range out[i+1:] {
			if slices.Contains(a.Conflict, b.Name) || slices.Contains(b.Conflict, a.Name) {
				return nil, failf(ExitUsage, "shifter modules %q and %q conflict", a.Name, b.Name)
			}
		}
	}
	return out, nil
}
