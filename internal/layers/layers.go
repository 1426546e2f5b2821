// SPDX-License-Identifier: BSD-3-Clause

// Package layers is the table of the repository's parts and of the
// dependency arrows that must not exist between them: Rules. Its test
// checks the table against `go list -deps -json ./...` (production code,
// test files excluded) and checks that the diagram in docs/ARCHITECTURE.md
// draws only dependencies that exist and every import between the packages
// it draws.
//
// To change a layering rule, change Rules and the diagram together; the
// test says which arrow breaks which rule, through which imports.
package layers

import (
	"fmt"
	"slices"
	"strings"
)

// Module is the module path. Patterns whose first element has no dot are
// relative to it.
const Module = "github.com/shifter-go/shifter"

// Rule says what one part of the repository may, or may not, depend on in
// its whole transitive closure (imports of imports).
//
// A pattern is an import path, or a path ending in "/..." for that path and
// every package below it; "..." alone is every package of the module.
type Rule struct {
	// Part is the packages the rule binds.
	Part []string
	// Except leaves packages out of Part.
	Except []string
	// Only, when not nil, is everything outside the standard library the
	// part may depend on besides its own packages (empty: the standard
	// library only).
	Only []string
	// Never is what the part must not depend on. A package of Part that
	// Never matches itself is not bound by it.
	Never []string
	// Planned marks a part that does not exist yet: the rule binds it once
	// it does. Any other rule's Part must match a package, so that a
	// renamed package cannot leave its rule checking nothing.
	Planned bool
	// Why is the reason, given when the rule is broken.
	Why string
}

// serverCode is what the runtime side (the setuid shifter, the launcher,
// the user's commands) never links: the gateway's server and puller, the
// FUSE server, the node cache, and the libraries only servers need.
var serverCode = []string{
	"gateway",
	"gateway/pull/...",
	"fusefs",
	"nodecache/...",
	"shifterd",
	"cmd/shifterd/...",
	"github.com/dgraph-io/badger/...",
	"github.com/hanwen/go-fuse/...",
	"github.com/prometheus/...",
	"github.com/google/go-containerregistry/...",
}

// stdlibOnly is an Only list that allows nothing outside the standard
// library.
var stdlibOnly = []string{}

// Rules is the table. docs/ARCHITECTURE.md ("Packages and dependency
// direction") draws what it allows.
var Rules = []Rule{
	{
		Part: []string{"squashreader/..."},
		Only: []string{"github.com/anchore/go-lzo/..."},
		Why:  "squashreader is a leaf: the standard library and its own codecs (anchore/go-lzo for lzo); it knows nothing of FUSE, namespaces or the gateway",
	},
	{
		Part:  []string{"fusefs"},
		Never: []string{"mountns", "launcher", "gateway/...", "udiroot", "imagestore", "cmd/..."},
		Why:   "fusefs serves a squashreader.Reader; it knows nothing of namespaces, the runtime or the gateway",
	},
	{
		Part:  []string{"cmd/shifter-mount"},
		Never: []string{"mountns", "launcher", "gateway", "gateway/pull/...", "github.com/prometheus/...", "github.com/google/go-containerregistry/..."},
		Why:   "shifter-mount only serves an image: it never sets up a container nor pulls",
	},
	{
		Part: []string{"mountns"},
		Only: []string{"internal/mountinfo", "golang.org/x/sys/...", "github.com/cyphar/filepath-securejoin/..."},
		Why:  "mountns, in the setuid runtime, links only x/sys, filepath-securejoin and internal/mountinfo; never fusefs (fuse mode runs the shifter-mount binary), squashreader or the gateway",
	},
	{
		Part: []string{"udiroot"},
		Only: []string{"golang.org/x/sys/..."},
		Why:  "udiroot, linked by shifterimg and the setuid runtime, needs only x/sys",
	},
	{
		Part: []string{"imagestore", "internal/mountinfo", "gateway/api"},
		Only: stdlibOnly,
		Why:  "the image store contract, the mountinfo parser and the API types are linked by both halves: the standard library only",
	},
	{
		Part:  []string{"launcher", "gateway/client", "cmd/shifterimg"},
		Never: append([]string{"squashreader/..."}, serverCode...),
		Why:   "the runtime and the user's commands link no server code (gateway server, FUSE server, node cache, badger, go-fuse, prometheus, registry code)",
	},
	{
		Part:  []string{"cmd/shifter"},
		Never: append([]string{"squashreader/..."}, serverCode...),
		Why:   "the setuid shifter's closure holds no server code: no badger, go-fuse, prometheus, go-containerregistry, node cache",
	},
	{
		Part:  []string{"gateway/...", "cmd/shifter-gateway"},
		Never: []string{"mountns", "fusefs", "launcher", "github.com/hanwen/go-fuse/..."},
		Why:   "the gateway never mounts: no mountns, no fusefs",
	},
	{
		Part:  []string{"nodecache/..."},
		Never: []string{"squashreader/...", "fusefs", "mountns", "launcher", "gateway", "gateway/pull/...", "github.com/hanwen/go-fuse/..."},
		Why:   "the node cache holds image bytes (badger, imagestore): it knows nothing of squashfs, FUSE, namespaces or the gateway's server",
	},
	{
		Part:  []string{"shifterd", "cmd/shifterd"},
		Never: []string{"mountns", "launcher", "gateway", "gateway/pull/..."},
		Why:   "shifterd serves images through FUSE: it never sets up containers nor pulls",
	},
	{
		Part: []string{"shifterd/client", "shifterd/proto"},
		Only: []string{"imagestore", "golang.org/x/sys/..."},
		Why:  "the runtime links shifterd's client and protocol: the standard library, x/sys and the image store contract only",
	},
	{
		Part:   []string{"..."},
		Except: []string{"bench/...", "tests/..."},
		Never:  []string{"internal/testutil", "internal/sqtest"},
		Why:    "production code never links the test helpers",
	},
	{
		Part:  []string{"cmd/..."},
		Never: []string{"internal/demoimage", "internal/cmd/...", "bench/...", "tests/..."},
		Why:   "the shipped commands do not link the demo image, the demo registry or benchmark code",
	},
}

// Package is what the check needs of a package (go list's fields).
type Package struct {
	ImportPath string
	Standard   bool
	Imports    []string // direct imports, test files excluded
	Deps       []string // the transitive closure of Imports
}

// expand makes a pattern absolute.
func expand(p string) string {
	if p == "..." {
		return Module + "/..."
	}
	first, _, _ := strings.Cut(p, "/")
	if !strings.Contains(first, ".") {
		return Module + "/" + p
	}
	return p
}

// Match reports whether import path path matches pattern.
func Match(pattern, path string) bool {
	p := expand(pattern)
	if pattern == "..." {
		return path == Module || strings.HasPrefix(path, Module+"/")
	}
	if prefix, ok := strings.CutSuffix(p, "/..."); ok {
		return path == prefix || strings.HasPrefix(path, prefix+"/")
	}
	return path == p
}

func matchAny(patterns []string, path string) bool {
	for _, p := range patterns {
		if Match(p, path) {
			return true
		}
	}
	return false
}

// Short drops the module prefix of path.
func Short(path string) string {
	if s, ok := strings.CutPrefix(path, Module+"/"); ok {
		return s
	}
	return path
}

// Check checks pkgs (go list -deps's output: the module's packages and
// everything they depend on) against rules and returns one error per
// broken arrow, naming the chain of imports that makes it.
func Check(pkgs []Package, rules []Rule) []error {
	byPath := make(map[string]*Package, len(pkgs))
	for i := range pkgs {
		byPath[pkgs[i].ImportPath] = &pkgs[i]
	}
	var errs []error
	for i, r := range rules {
		bound := 0
		for _, p := range pkgs {
			if !matchAny(r.Part, p.ImportPath) || matchAny(r.Except, p.ImportPath) {
				continue
			}
			bound++
			if matchAny(r.Never, p.ImportPath) {
				continue
			}
			for _, d := range p.Deps {
				dp := byPath[d]
				if dp != nil && dp.Standard {
					continue
				}
				var broken bool
				switch {
				case r.Only != nil:
					broken = !matchAny(r.Part, d) && !matchAny(r.Only, d)
				default:
					broken = matchAny(r.Never, d)
				}
				if broken {
					errs = append(errs, fmt.Errorf("%s depends on %s (%s): rule %d %v: %s",
						Short(p.ImportPath), Short(d), strings.Join(chain(byPath, p.ImportPath, d), " -> "), i, r.Part, r.Why))
				}
			}
		}
		if bound == 0 && !r.Planned {
			errs = append(errs, fmt.Errorf("rule %d %v matches no package: renamed? (mark it Planned if it is yet to come)", i, r.Part))
		}
	}
	return errs
}

// chain returns a shortest chain of imports from one package to another.
func chain(byPath map[string]*Package, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			var out []string
			for p := to; p != ""; p = prev[p] {
				out = append(out, Short(p))
			}
			slices.Reverse(out)
			return out
		}
		if p := byPath[cur]; p != nil {
			for _, next := range p.Imports {
				if _, seen := prev[next]; !seen {
					prev[next] = cur
					queue = append(queue, next)
				}
			}
		}
	}
	return []string{Short(from), "...", Short(to)}
}
