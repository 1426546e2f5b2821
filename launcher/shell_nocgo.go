// SPDX-License-Identifier: BSD-3-Clause

//go:build !cgo && linux

package launcher

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// loginShell returns the user's login shell from /etc/passwd (without cgo
// there is no NSS), or "" when unknown.
func loginShell(uid uint32) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return ""
	}
	defer f.Close()
	want := strconv.FormatUint(uint64(uid), 10)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) == 7 && fields[2] == want {
			return fields[6]
		}
	}
	return ""
}
