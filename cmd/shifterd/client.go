// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/gateway/client"
	"github.com/shifter-go/shifter/imagestore"
	sdclient "github.com/shifter-go/shifter/shifterd/client"
	"github.com/shifter-go/shifter/shifterd/proto"
)

// target is one image to warm.
type target struct {
	name string // as given (or the tag that --recent found)
	id   string
}

func (a *app) warm(ctx context.Context, args []string) error {
	fl := pflag.NewFlagSet("warm", pflag.ContinueOnError)
	fl.SetOutput(a.stderr)
	traceOnly := fl.Bool("trace-only", false, "fetch only the chunks of each image's start-up trace")
	recent := fl.Duration("recent", 0, "also warm every image pulled within this duration (from the gateway, else the image store)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if fl.NArg() == 0 && *recent == 0 {
		return errors.New("warm: name images ([docker:]TAG or id:ID) or give --recent")
	}
	var targets []target
	for _, arg := range fl.Args() {
		id, err := a.resolve(ctx, arg)
		if err != nil {
			return err
		}
		targets = append(targets, target{arg, id})
	}
	if *recent > 0 {
		more, err := a.recent(ctx, *recent)
		if err != nil {
			return err
		}
		for _, t := range more {
			if !slices.ContainsFunc(targets, func(x target) bool { return x.id == t.id }) {
				targets = append(targets, t)
			}
		}
	}
	tty := isTerminal(a.stdout)
	failed := 0
	for _, t := range targets {
		start := time.Now()
		var last proto.Progress
		err := sdclient.Warm(ctx, a.socket, t.id, *traceOnly, nil, func(p proto.Progress) {
			last = p
			if tty {
				fmt.Fprintf(a.stdout, "\r\x1b[2K%s", bar(t.name, p))
			}
		})
		if tty {
			fmt.Fprint(a.stdout, "\r\x1b[2K")
		}
		if err != nil {
			failed++
			fmt.Fprintf(a.stdout, "%s (%s): %v\n", t.name, short(t.id), err)
			continue
		}
		fmt.Fprintf(a.stdout, "%s (%s): warmed %d chunks, %s from the source, in %s\n",
			t.name, short(t.id), last.Done, mib(last.FromSource), time.Since(start).Round(time.Millisecond))
	}
	if failed > 0 {
		return fmt.Errorf("warm: %d of %d images failed", failed, len(targets))
	}
	return nil
}

func short(id string) string { return id[:min(12, len(id))] }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// bar is a progress line for a terminal.
func bar(name string, p proto.Progress) string {
	const width = 30
	filled := 0
	if p.Total > 0 {
		filled = int(p.Done * width / p.Total)
	}
	return fmt.Sprintf("%s [%s%s] %d/%d chunks, %s from the source", name,
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.Done, p.Total, mib(p.FromSource))
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// resolve turns [docker:]TAG or id:ID into an image id: the newest image
// of the store with that tag, else the gateway's answer.
func (a *app) resolve(ctx context.Context, ref string) (string, error) {
	typ, tag, ok := strings.Cut(ref, ":")
	if !ok || (typ != "id" && typ != "docker") {
		typ, tag = "docker", ref
	}
	if typ == "id" {
		if !imagestore.ValidID(tag) {
			return "", fmt.Errorf("%s: not an image id", ref)
		}
		return tag, nil
	}
	norm := imagestore.NormalizeTag(tag)
	m, err := imagestore.FindTag(a.cfg.ImagePath, norm)
	if err == nil {
		return m.ID, nil
	}
	if len(a.cfg.ImageGateway) == 0 {
		return "", fmt.Errorf("%s: %w", ref, err)
	}
	c, cerr := client.New(a.cfg.ImageGateway)
	if cerr != nil {
		return "", cerr
	}
	img, gerr := c.Lookup(ctx, a.cfg.System, "docker", tag)
	if gerr != nil {
		return "", fmt.Errorf("%s: %w", ref, gerr)
	}
	return img.ID, nil
}

// recent lists the images pulled within d: the gateway's READY images
// by their last pull, or, without a gateway, the store's by creation.
func (a *app) recent(ctx context.Context, d time.Duration) ([]target, error) {
	since := time.Now().Add(-d)
	var out []target
	if len(a.cfg.ImageGateway) > 0 {
		c, err := client.New(a.cfg.ImageGateway)
		if err != nil {
			return nil, err
		}
		imgs, err := c.List(ctx, a.cfg.System)
		if err != nil {
			return nil, fmt.Errorf("--recent: %w", err)
		}
		for _, img := range imgs {
			if img.Status == "READY" && img.ID != "" && img.LastPull >= float64(since.Unix()) {
				name := img.ID
				if len(img.Tag) > 0 {
					name = img.Tag[0]
				}
				out = append(out, target{name, img.ID})
			}
		}
		return out, nil
	}
	all, err := imagestore.List(a.cfg.ImagePath)
	if err != nil && len(all) == 0 {
		return nil, fmt.Errorf("--recent: %w", err)
	}
	for _, m := range all {
		if m.Created.After(since) {
			name := m.ID
			if len(m.Tags) > 0 {
				name = m.Tags[0]
			}
			out = append(out, target{name, m.ID})
		}
	}
	return out, nil
}

func (a *app) status(ctx context.Context, args []string) error {
	fl := pflag.NewFlagSet("status", pflag.ContinueOnError)
	fl.SetOutput(a.stderr)
	asJSON := fl.Bool("json", false, "print the status as JSON")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := sdclient.Status(ctx, a.socket)
	if err != nil {
		return err
	}
	if *asJSON {
		e := json.NewEncoder(a.stdout)
		e.SetIndent("", "  ")
		return e.Encode(st)
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "IMAGE\tREFS\tHOLDERS (pid/uid)\tMOUNTED\tIDLE")
	for _, m := range st.Mounts {
		var hs []string
		for _, h := range m.Refs {
			hs = append(hs, fmt.Sprintf("%d/%d", h.PID, h.UID))
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", short(m.ID), len(m.Refs), strings.Join(hs, " "),
			m.Since.Local().Format(time.DateTime), m.IdleFor)
	}
	w.Flush()
	if c := st.Cache; c != nil {
		rate := 0.0
		if c.Hits+c.Misses > 0 {
			rate = 100 * float64(c.Hits) / float64(c.Hits+c.Misses)
		}
		fmt.Fprintf(a.stdout, "cache %s: %s of %s, hit rate %.1f%% (%d hits, %d misses), %s from sources, %s evicted, %d verification failures\n",
			c.Dir, mib(c.Size), mib(c.Cap), rate, c.Hits, c.Misses, mib(c.SourceBytes), mib(c.EvictedBytes), c.VerifyFailure)
	} else {
		fmt.Fprintln(a.stdout, "no node cache")
	}
	return nil
}
