// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
)

// EnvOpKind is what an EnvOp does to a variable.
type EnvOpKind uint8

const (
	EnvSet     EnvOpKind = iota // NAME=Value
	EnvAppend                   // NAME=cur:Value, or Value when unset or empty
	EnvPrepend                  // NAME=Value:cur, or Value when unset or empty
	EnvUnset                    // NAME removed
)

// EnvOp is one change to an environment (Shifter's siteEnv, siteEnvAppend,
// siteEnvPrepend, siteEnvUnset, --env, an --env-file line).
type EnvOp struct {
	Kind        EnvOpKind
	Name, Value string
}

// ApplyEnv returns env (NAME=VALUE entries; of a name given twice the
// first is kept, as getenv(3) sees it) with ops applied in order. A
// variable that is replaced keeps its place; a new one goes at the end.
func ApplyEnv(env []string, ops []EnvOp) []string {
	var names []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			names = append(names, k)
		}
		vals[k] = v
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if _, dup := vals[k]; !ok || k == "" || dup {
			continue
		}
		set(k, v)
	}
	for _, op := range ops {
		cur := vals[op.Name]
		switch op.Kind {
		case EnvSet:
			set(op.Name, op.Value)
		case EnvAppend:
			if cur != "" {
				set(op.Name, cur+":"+op.Value)
			} else {
				set(op.Name, op.Value)
			}
		case EnvPrepend:
			if cur != "" {
				set(op.Name, op.Value+":"+cur)
			} else {
				set(op.Name, op.Value)
			}
		case EnvUnset:
			if _, ok := vals[op.Name]; ok {
				delete(vals, op.Name)
				names = slices.DeleteFunc(names, func(n string) bool { return n == op.Name })
			}
		}
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, n+"="+vals[n])
	}
	return out
}

// MaxEnvFile bounds an --env-file.
const MaxEnvFile = 4 << 20

// ParseEnvFile reads an --env-file as Shifter does: NAME=VALUE lines;
// blank lines and lines whose first non-blank character is '#' are
// skipped; leading white space is ignored; the value is taken literally
// (quotes included). Anything else is an error naming the line; so is a
// file larger than MaxEnvFile. The result is one EnvSet a line.
func ParseEnvFile(r io.Reader, name string) ([]EnvOp, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxEnvFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > MaxEnvFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxEnvFile)
	}
	var out []EnvOp
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, MaxEnvFile+1)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimLeft(strings.TrimSuffix(sc.Text(), "\r"), " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, "= \t\n\r\x00") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("%s:%d: want NAME=VALUE", name, n)
		}
		out = append(out, EnvOp{Kind: EnvSet, Name: k, Value: v})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}
