// SPDX-License-Identifier: BSD-3-Clause

package client

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// mungePayload is the JSON object a pull's munge credential carries, as
// in Shifter's auth.py.
type mungePayload struct {
	AuthorizedLocations map[string]string `json:"authorized_locations"`
}

// munge runs the munge command and returns the credential it prints.
// The payload, which may hold registry passwords, is written to munge's
// stdin, never put on its command line. A nil payload makes a credential
// without one (munge -n).
func (c *Client) munge(ctx context.Context, payload []byte) (string, error) {
	args := []string{}
	if c.mungeSocket != "" {
		args = append(args, "--socket="+c.mungeSocket)
	}
	if payload == nil {
		args = append(args, "-n")
	}
	cmd := exec.CommandContext(ctx, c.mungeCommand, args...)
	// A fixed environment: the caller's (perhaps a setuid program's)
	// must not steer munge.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	if payload != nil {
		cmd.Stdin = bytes.NewReader(payload)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// munge's stderr names the problem (no daemon, bad socket); it
		// never echoes the payload.
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("running %s: %w: %s", c.mungeCommand, err, msg)
		}
		return "", fmt.Errorf("running %s: %w", c.mungeCommand, err)
	}
	cred := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(cred, "MUNGE:") {
		return "", fmt.Errorf("running %s: output is not a munge credential", c.mungeCommand)
	}
	return cred, nil
}
