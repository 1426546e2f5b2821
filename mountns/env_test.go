// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestApplyEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		ops  []EnvOp
		want []string
	}{
		{"nothing", nil, nil, []string{}},
		{"first of a name kept, malformed dropped", []string{"A=1", "B", "=x", "A=2", "C=3"}, nil, []string{"A=1", "C=3"}},
		{"set replaces in place, new at the end", []string{"A=1", "B=2"}, []EnvOp{{EnvSet, "A", "x"}, {EnvSet, "N", "n"}}, []string{"A=x", "B=2", "N=n"}},
		{"append and prepend", []string{"P=/bin"}, []EnvOp{{EnvAppend, "P", "/a"}, {EnvPrepend, "P", "/z"}}, []string{"P=/z:/bin:/a"}},
		{"append and prepend to unset or empty set", []string{"E="}, []EnvOp{{EnvAppend, "E", "/a"}, {EnvPrepend, "U", "/u"}}, []string{"E=/a", "U=/u"}},
		{"unset, then set again at the end", []string{"A=1", "B=2"}, []EnvOp{{EnvUnset, "A", ""}, {EnvUnset, "Z", ""}, {EnvSet, "A", "3"}}, []string{"B=2", "A=3"}},
		{"empty value", nil, []EnvOp{{EnvSet, "E", ""}}, []string{"E="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.env)
			got := ApplyEnv(tc.env, tc.ops)
			if !slices.Equal(got, tc.want) {
				t.Errorf("ApplyEnv(%q, %v) = %q, want %q", tc.env, tc.ops, got, tc.want)
			}
			if !slices.Equal(in, tc.env) {
				t.Errorf("ApplyEnv changed its input: %q", tc.env)
			}
		})
	}
}

func TestParseEnvFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []EnvOp
		wantErr string
	}{
		{"basic", "A=1\nB=two words\n", []EnvOp{{Name: "A", Value: "1"}, {Name: "B", Value: "two words"}}, ""},
		{"comments blanks crlf", "# c\n\n  # indented\r\n  C=3\r\nD=\n", []EnvOp{{Name: "C", Value: "3"}, {Name: "D", Value: ""}}, ""},
		{"quotes literal", `Q="x y"` + "\nS='z'\n", []EnvOp{{Name: "Q", Value: `"x y"`}, {Name: "S", Value: "'z'"}}, ""},
		{"equals in value", "O=a=b\n", []EnvOp{{Name: "O", Value: "a=b"}}, ""},
		{"no trailing newline", "A=1", []EnvOp{{Name: "A", Value: "1"}}, ""},
		{"no equals", "A=1\nBROKEN\n", nil, "f:2: want NAME=VALUE"},
		{"empty name", "=x\n", nil, "f:1:"},
		{"space in name", "A B=1\n", nil, "f:1:"},
		{"nul", "A=1\x00\n", nil, "f:1:"},
		{"too big", strings.Repeat("A=1234567\n", MaxEnvFile/10+1), nil, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEnvFile(strings.NewReader(tc.in), "f")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseEnvFile = %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("ParseEnvFile (-want +got):\n%s", d)
			}
		})
	}
	// 100k variables are parsed exactly.
	var b strings.Builder
	for i := range 100000 {
		b.WriteString("V")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString("=v\n")
	}
	got, err := ParseEnvFile(strings.NewReader(b.String()), "big")
	if err != nil || len(got) != 100000 {
		t.Errorf("100k variables: %d parsed, err %v", len(got), err)
	}
}
