// SPDX-License-Identifier: BSD-3-Clause

package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:               "/plain",
		`/a\040b`:              "/a b",
		`/tab\011nl\012bs\134`: "/tab\tnl\nbs\\",
		`/back\134s`:           `/back\s`,
		`/short\04`:            `/short\04`,
		`/end\04`:              `/end\04`,
		`/not\999octal`:        `/not\999octal`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
