// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import "strconv"

// parseDecimal parses a canonical non-negative decimal (no sign, no
// leading zero, at most 18 digits).
func parseDecimal(s string) (int64, bool) {
	if s == "" || len(s) > 18 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}
