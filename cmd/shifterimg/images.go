// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
)

// imageRow is one line of the images table: one tag of one image.
type imageRow struct {
	tag string
	img *api.Image
}

// runImages lists the READY images the caller may use: a table with one
// line per tag, sorted by tag, in Shifter's columns (system, type,
// status, short id, last pull, tag), or the records as JSON with --json.
func runImages(ctx context.Context, a *app, args []string) error {
	fs := subFlags("images")
	asJSON := fs.Bool("json", false, "print the image records as a JSON array")
	if err := parseSub(fs, args, 0, commands()["images"].usage); err != nil {
		return err
	}
	c, err := a.newClient()
	if err != nil {
		return err
	}
	list, err := c.List(ctx, a.system)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []api.Image{}
		}
		b, err := json.MarshalIndent(list, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding images: %w", err)
		}
		fmt.Fprintf(a.stdout, "%s\n", b)
		return nil
	}
	var rows []imageRow
	for i := range list {
		for _, t := range list[i].Tag {
			rows = append(rows, imageRow{t, &list[i]})
		}
		if len(list[i].Tag) == 0 {
			rows = append(rows, imageRow{"", &list[i]})
		}
	}
	slices.SortFunc(rows, func(x, y imageRow) int { return cmp.Compare(x.tag, y.tag) })
	if len(rows) == 0 {
		fmt.Fprintln(a.stderr, "no images")
		return nil
	}
	for _, r := range rows {
		id := r.img.ID
		if len(id) > 10 {
			id = id[:10]
		}
		pulled := "-"
		if r.img.LastPull > 0 {
			sec := int64(r.img.LastPull)
			pulled = time.Unix(sec, int64((r.img.LastPull-float64(sec))*1e9)).Format("2006-01-02T15:04:05")
		}
		fmt.Fprintf(a.stdout, "%-10s %-10s %-8s %-10s   %s %s\n", r.img.System, r.img.Itype, r.img.Status, id, pulled, r.tag)
	}
	return nil
}
