// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"fmt"
)

// runExpire expires the image a tag names (gateway admins only) and
// prints the gateway's answer.
func runExpire(ctx context.Context, a *app, args []string) error {
	itype, tag, c, err := a.tagSubcommand("expire", args)
	if err != nil {
		return err
	}
	out, err := c.Expire(ctx, a.system, itype, tag)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "expired %s:%s", itype, tag)
	if len(out) > 0 {
		fmt.Fprintf(a.stdout, ": %s", out)
	}
	fmt.Fprintln(a.stdout)
	return nil
}

// runAutoExpire removes the system's expired images (gateway admins
// only) and prints the gateway's answer.
func runAutoExpire(ctx context.Context, a *app, args []string) error {
	fs := subFlags("autoexpire")
	if err := parseSub(fs, args, 0, commands()["autoexpire"].usage); err != nil {
		return err
	}
	c, err := a.newClient()
	if err != nil {
		return err
	}
	out, err := c.AutoExpire(ctx, a.system)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "autoexpire on %s", a.system)
	if len(out) > 0 {
		fmt.Fprintf(a.stdout, ": %s", out)
	}
	fmt.Fprintln(a.stdout)
	return nil
}
