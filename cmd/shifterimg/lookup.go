// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"encoding/json"
	"fmt"
)

// runLookup prints the id of the READY image a tag names, alone on the
// last line (with -v, the record first). Exit 1 when there is none.
func runLookup(ctx context.Context, a *app, args []string) error {
	fs := subFlags("lookup")
	if err := parseSub(fs, args, 1, commands()["lookup"].usage); err != nil {
		return err
	}
	itype, tag, err := imageRef(fs.Arg(0))
	if err != nil {
		return err
	}
	c, err := a.newClient()
	if err != nil {
		return err
	}
	img, err := c.Lookup(ctx, a.system, itype, tag)
	if err != nil {
		return err
	}
	if a.verbose {
		b, _ := json.MarshalIndent(img, "", "  ")
		fmt.Fprintf(a.stdout, "%s\n", b)
	}
	if img.ID == "" {
		return fmt.Errorf("%s:%s: the gateway's record has no id", itype, tag)
	}
	fmt.Fprintln(a.stdout, img.ID)
	return nil
}
