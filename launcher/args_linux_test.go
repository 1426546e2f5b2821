// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"bytes"
	"errors"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestWrapAddressSpace runs the wrapper with /bin/sh, as the container
// does, under the raised limit a setuid runtime has (unlimited here), and
// checks that the command sees the caller's limits.
func TestWrapAddressSpace(t *testing.T) {
	same, err := wrapAddressSpace([]string{"a"}, nil)
	if err != nil || !cmp.Equal(same, []string{"a"}) {
		t.Errorf("wrapAddressSpace without a raised limit = %q, %v", same, err)
	}
	if _, err := wrapAddressSpace(nil, &Limit{Cur: 1 << 30, Max: Unlimited}); err == nil {
		t.Error("wrapAddressSpace of no command: no error")
	}
	var cur unix.Rlimit
	must(t, unix.Getrlimit(unix.RLIMIT_AS, &cur))
	if cur.Max != unix.RLIM_INFINITY {
		t.Skip("needs an unlimited RLIMIT_AS hard limit")
	}
	tests := []struct {
		name  string
		limit Limit
		argv  []string
		code  int
		out   string
	}{
		{"soft only", Limit{Cur: 256 << 20, Max: Unlimited}, []string{"sh", "-c", "ulimit -S -v; ulimit -H -v"}, 0, "262144\nunlimited\n"},
		{"soft and hard", Limit{Cur: 512 << 20, Max: 1 << 30}, []string{"sh", "-c", "ulimit -S -v; ulimit -H -v"}, 0, "524288\n1048576\n"},
		{"KiB rounded down", Limit{Cur: 256<<20 + 1023, Max: 256<<20 + 1023}, []string{"sh", "-c", "ulimit -S -v; ulimit -H -v"}, 0, "262144\n262144\n"},
		{"arguments and status kept", Limit{Cur: 1 << 30, Max: Unlimited}, []string{"sh", "-c", `echo "$0|$1"; exit 7`, "a b", "c"}, 7, "a b|c\n"},
		{"command not found", Limit{Cur: 1 << 30, Max: Unlimited}, []string{"/nonexistent/cmd"}, 127, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			argv, err := wrapAddressSpace(tc.argv, &tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(argv[0], argv[1:]...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || stdout.String() != tc.out {
				t.Errorf("status %d stdout %q stderr %q; want %d, %q", code, stdout.String(), stderr.String(), tc.code, tc.out)
			}
		})
	}
}
