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
	itype, tag, c, err := a.tagSubcommand("lookup", args)
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
