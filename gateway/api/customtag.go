// SPDX-License-Identifier: BSD-3-Clause

package api

import (
	"fmt"
	"strings"
)

// MaxCustomTagLen bounds a custom tag.
const MaxCustomTagLen = 256

// ParseCustomTag validates the tag of a custom (imported) image and
// returns its normalized form: the characters Shifter's runtime accepts
// in a custom tag ([A-Za-z0-9_:.+@-], no "/"), starting with a letter,
// digit or "_", with ":latest" added when it has no ":" (as Shifter's
// gateway adds it).
func ParseCustomTag(raw string) (string, error) {
	if raw == "" || len(raw) > MaxCustomTagLen {
		return "", fmt.Errorf("custom tag: length %d out of range 1..%d", len(raw), MaxCustomTagLen)
	}
	for i, c := range raw {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
			(i > 0 && strings.ContainsRune(":.+@-", c))
		if !ok {
			return "", fmt.Errorf("custom tag %q: character %q not allowed here (letters, digits and _ : . + @ -, no /)", raw, c)
		}
	}
	if strings.HasSuffix(raw, ":") {
		return "", fmt.Errorf("custom tag %q: empty version after ':'", raw)
	}
	if !strings.Contains(raw, ":") {
		raw += ":latest"
	}
	if len(raw) > MaxCustomTagLen { // normalized forms parse again
		return "", fmt.Errorf("custom tag %q: longer than %d characters with its version", raw, MaxCustomTagLen)
	}
	return raw, nil
}
