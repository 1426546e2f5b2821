// SPDX-License-Identifier: BSD-3-Clause

package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/internal/testutil"
)

// loadPackages runs go list -deps -json over the module. Without a go tool
// the test skips, except under CI=true; any other failure of go list fails
// the test.
func loadPackages(t *testing.T) []Package {
	t.Helper()
	// go test puts GOROOT/bin first on PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		testutil.Unavailable(t, "no go tool: "+err.Error())
		return nil
	}
	cmd := exec.Command(goTool, "list", "-deps", "-json=ImportPath,Standard,Imports,Deps", "./...")
	cmd.Dir = testutil.ModuleRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []Package
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p Package
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 || !slices.ContainsFunc(pkgs, func(p Package) bool { return p.ImportPath == Module+"/cmd/shifter" }) {
		t.Fatalf("go list listed %d packages, not cmd/shifter", len(pkgs))
	}
	return pkgs
}

// TestLayers checks the module against Rules.
func TestLayers(t *testing.T) {
	pkgs := loadPackages(t)
	for _, err := range Check(pkgs, Rules) {
		t.Error(err)
	}
}

// TestCheck runs Check on made-up graphs: each broken arrow is reported
// once with its import chain; allowed graphs pass.
func TestCheck(t *testing.T) {
	m := func(s string) string { return Module + "/" + s }
	graph := func(edges map[string][]string) []Package {
		// Deps: the transitive closure, as go list gives it.
		var pkgs []Package
		var names []string
		for n := range edges {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			seen := map[string]bool{}
			var walk func(string)
			walk = func(x string) {
				for _, y := range edges[x] {
					if !seen[y] {
						seen[y] = true
						walk(y)
					}
				}
			}
			walk(n)
			var deps []string
			for d := range seen {
				deps = append(deps, d)
			}
			slices.Sort(deps)
			pkgs = append(pkgs, Package{ImportPath: n, Standard: !strings.Contains(strings.Split(n, "/")[0], "."), Imports: edges[n], Deps: deps})
		}
		return pkgs
	}
	leaf := Rule{Part: []string{"a/..."}, Only: []string{"example.com/codec"}, Why: "leaf"}
	never := Rule{Part: []string{"cmd/x"}, Never: []string{"example.com/db/..."}, Why: "no db"}
	tests := []struct {
		name  string
		edges map[string][]string
		rules []Rule
		want  []string // substrings, one per error, in order
	}{
		{"leaf ok", map[string][]string{
			m("a"):              {m("a/internal/c"), "fmt", "example.com/codec"},
			m("a/internal/c"):   {"io"},
			"example.com/codec": nil, "fmt": {"io"}, "io": nil,
		}, []Rule{leaf}, nil},
		{"leaf broken through a dependency", map[string][]string{
			m("a"):              {"example.com/codec"},
			"example.com/codec": {"example.com/fuse"},
			"example.com/fuse":  nil,
		}, []Rule{leaf}, []string{"a depends on example.com/fuse (a -> example.com/codec -> example.com/fuse): rule 0 [a/...]: leaf"}},
		{"never, transitive", map[string][]string{
			m("cmd/x"):                {m("lib")},
			m("lib"):                  {"example.com/db/v4/table"},
			"example.com/db/v4/table": nil,
		}, []Rule{never}, []string{"cmd/x depends on example.com/db/v4/table (cmd/x -> lib -> example.com/db/v4/table)"}},
		{"never ok", map[string][]string{
			m("cmd/x"): {m("lib")}, m("lib"): {"example.com/dbx"}, "example.com/dbx": nil,
		}, []Rule{never}, nil},
		{"empty only is the standard library", map[string][]string{
			m("store"): {"os", "example.com/y"}, "os": nil, "example.com/y": nil,
		}, []Rule{{Part: []string{"store"}, Only: []string{}, Why: "stdlib"}}, []string{"store depends on example.com/y"}},
		{"part matching nothing", map[string][]string{m("b"): nil},
			[]Rule{{Part: []string{"gone"}, Never: []string{"b"}}}, []string{"matches no package"}},
		{"planned part", map[string][]string{m("b"): nil},
			[]Rule{{Part: []string{"gone"}, Never: []string{"b"}, Planned: true}}, nil},
		{"never matching the part itself, and except", map[string][]string{
			m("internal/t1"): {m("internal/t2")}, m("internal/t2"): nil, m("bench"): {m("internal/t1")}, m("prod"): nil,
		}, []Rule{{Part: []string{"..."}, Except: []string{"bench/..."}, Never: []string{"internal/t1", "internal/t2"}}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := Check(graph(tc.edges), tc.rules)
			if len(errs) != len(tc.want) {
				t.Fatalf("Check = %v, want %d errors", errs, len(tc.want))
			}
			for i, err := range errs {
				if !strings.Contains(err.Error(), tc.want[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, err, tc.want[i])
				}
			}
		})
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"fusefs", Module + "/fusefs", true},
		{"fusefs", Module + "/fusefs2", false},
		{"gateway/...", Module + "/gateway", true},
		{"gateway/...", Module + "/gateway/pull/flatten", true},
		{"gateway/...", Module + "/gatewayx", false},
		{"...", Module + "/cmd/shifter", true},
		{"...", "github.com/other/x", false},
		{"github.com/dgraph-io/badger/...", "github.com/dgraph-io/badger/v4/table", true},
		{"github.com/dgraph-io/badger/...", "github.com/dgraph-io/badgerx", false},
	} {
		if got := Match(tc.pattern, tc.path); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

// TestDiagram checks the diagram of docs/ARCHITECTURE.md ("Packages and
// dependency direction") against the module: every name it draws is a
// package (or a Planned part), every arrow is a dependency that exists,
// every import between two drawn packages is drawn (directly or through
// other drawn arrows), and every part the table names is drawn.
func TestDiagram(t *testing.T) {
	pkgs := loadPackages(t)
	doc, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "docs", "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	names, arrows, err := parseDiagram(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]Package{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	planned := func(name string) bool {
		for _, r := range Rules {
			if r.Planned && matchAny(r.Part, Module+"/"+name) {
				return true
			}
		}
		return false
	}
	drawn := map[string]bool{}
	for _, n := range names {
		if _, ok := byPath[Module+"/"+n]; ok {
			drawn[n] = true
		} else if !planned(n) {
			t.Errorf("the diagram names %q, which is no package of the module", n)
		}
	}
	reach := map[string][]string{}
	for _, a := range arrows {
		reach[a[0]] = append(reach[a[0]], a[1])
		if !drawn[a[0]] || !drawn[a[1]] {
			continue
		}
		if !slices.Contains(byPath[Module+"/"+a[0]].Deps, Module+"/"+a[1]) {
			t.Errorf("the diagram draws %s ─► %s, but %s does not depend on %s", a[0], a[1], a[0], a[1])
		}
	}
	reachable := func(from, to string) bool {
		seen := map[string]bool{from: true}
		stack := []string{from}
		for len(stack) > 0 {
			cur := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, n := range reach[cur] {
				if n == to {
					return true
				}
				if !seen[n] {
					seen[n] = true
					stack = append(stack, n)
				}
			}
		}
		return false
	}
	for n := range drawn {
		for _, imp := range byPath[Module+"/"+n].Imports {
			s := Short(imp)
			if drawn[s] && !reachable(n, s) {
				t.Errorf("%s imports %s, which the diagram does not draw", n, s)
			}
		}
	}
	for _, r := range Rules {
		if r.Planned {
			continue
		}
		for _, p := range r.Part {
			p = strings.TrimSuffix(p, "/...")
			if p == "..." || p == "cmd" || strings.HasPrefix(p, "internal/") {
				continue
			}
			if !drawn[p] {
				t.Errorf("the table binds %s, which the diagram does not draw", p)
			}
		}
	}
}

// parseDiagram returns the package names drawn in the first code block
// after the "## Packages and dependency direction" heading, and its
// arrows. A line is a chain "a ─► b, c ─► d"; a line starting with ├─► or
// └─► (after any │ of other branches) continues from the name above its
// first character. Parenthesised text is a comment.
func parseDiagram(doc string) (names []string, arrows [][2]string, err error) {
	_, rest, ok := strings.Cut(doc, "## Packages and dependency direction\n")
	if !ok {
		return nil, nil, errors.New("docs/ARCHITECTURE.md: no \"## Packages and dependency direction\" section")
	}
	_, rest, ok = strings.Cut(rest, "```\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		return nil, nil, errors.New("docs/ARCHITECTURE.md: no diagram block in \"Packages and dependency direction\"")
	}
	var lines [][]rune
	for _, l := range strings.Split(strings.TrimRight(block, "\n"), "\n") {
		lines = append(lines, []rune(l))
	}
	isBox := func(r rune) bool { return strings.ContainsRune("─►├└│┬┴┼", r) }
	seen := map[string]bool{}
	for i, l := range lines {
		// Drop comments, keeping columns.
		depth := 0
		cl := make([]rune, len(l))
		for j, r := range l {
			switch {
			case r == '(':
				depth++
			case r == ')' && depth > 0:
				depth--
				r = ' '
			}
			if depth > 0 {
				r = ' '
			}
			cl[j] = r
		}
		s := string(cl)
		// Vertical lines on the left belong to branches further down.
		trimmed := strings.TrimLeft(s, " │")
		var srcs []string
		if strings.HasPrefix(trimmed, "├─►") || strings.HasPrefix(trimmed, "└─►") {
			col := len(cl) - len([]rune(trimmed))
			src := ""
			for k := i - 1; k >= 0 && src == ""; k-- {
				up := lines[k]
				if col >= len(up) || up[col] == ' ' {
					return nil, nil, fmt.Errorf("diagram line %d: nothing above its branch", i+1)
				}
				if isBox(up[col]) {
					continue
				}
				a, b := col, col
				for a > 0 && up[a-1] != ' ' && !isBox(up[a-1]) {
					a--
				}
				for b < len(up) && up[b] != ' ' && !isBox(up[b]) && up[b] != ',' {
					b++
				}
				src = string(up[a:b])
			}
			if src == "" {
				return nil, nil, fmt.Errorf("diagram line %d: no name above its branch", i+1)
			}
			srcs = []string{src}
			trimmed = strings.TrimPrefix(strings.TrimPrefix(trimmed, "├─►"), "└─►")
		}
		for j, seg := range strings.Split(trimmed, "─►") {
			var dsts []string
			for _, n := range strings.Split(seg, ",") {
				if n = strings.TrimSpace(n); n != "" {
					if strings.ContainsFunc(n, func(r rune) bool { return r == ' ' || isBox(r) }) {
						return nil, nil, fmt.Errorf("diagram line %d: cannot read %q", i+1, n)
					}
					dsts = append(dsts, n)
				}
			}
			if j > 0 || srcs != nil {
				for _, a := range srcs {
					for _, b := range dsts {
						arrows = append(arrows, [2]string{a, b})
					}
				}
			}
			for _, n := range dsts {
				if !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
			srcs = dsts
		}
	}
	return names, arrows, nil
}

// TestParseDiagram reads a small diagram with branches and comments.
func TestParseDiagram(t *testing.T) {
	doc := "x\n## Packages and dependency direction\n\n```\n" +
		"cmd/a ─► b ─► c ─► (x/sys, d)\n" +
		"         ├─► e           (comment)\n" +
		"         │   └─► i\n" +
		"         └─► f, g ─► h\n" +
		"cmd/z ─► b\n" +
		"```\n"
	names, arrows, err := parseDiagram(doc)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"cmd/a", "b", "c", "e", "i", "f", "g", "h", "cmd/z"}
	wantArrows := [][2]string{{"cmd/a", "b"}, {"b", "c"}, {"b", "e"}, {"e", "i"}, {"b", "f"}, {"b", "g"}, {"f", "h"}, {"g", "h"}, {"cmd/z", "b"}}
	if !slices.Equal(names, wantNames) {
		t.Errorf("names = %q, want %q", names, wantNames)
	}
	if !slices.Equal(arrows, wantArrows) {
		t.Errorf("arrows = %q, want %q", arrows, wantArrows)
	}
}
