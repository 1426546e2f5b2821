// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/gateway/client"
)

// pollInterval is the time between two polls of a pull (Shifter's 0.5 s).
const pollInterval = 500 * time.Millisecond

// unreachableGrace is how long a pull keeps polling while no gateway
// answers (a gateway restart resumes its pulls).
var unreachableGrace = time.Minute

func runPull(ctx context.Context, a *app, args []string) error {
	return pull(ctx, a, args, true)
}

func runPullNB(ctx context.Context, a *app, args []string) error {
	return pull(ctx, a, args, false)
}

// pull asks the gateway for an image and, when wait is set, polls (by
// asking again, as Shifter does) until it is READY or FAILURE. It fails
// on FAILURE with the gateway's reason.
func pull(ctx context.Context, a *app, args []string, wait bool) error {
	name := "pullnb"
	if wait {
		name = "pull"
	}
	fs := subFlags(name)
	users := fs.StringSliceP("user", "u", nil, "users allowed to use the image (names or uids, comma-separated): makes it private")
	groups := fs.StringSliceP("group", "g", nil, "groups allowed to use the image (names or gids, comma-separated): makes it private")
	var timeout time.Duration
	if wait {
		fs.DurationVar(&timeout, "timeout", 0, "give up waiting after this long (0: wait until READY or FAILURE)")
	}
	usage := commands()[name].usage
	if err := parseSub(fs, args, 1, usage); err != nil {
		return err
	}
	itype, tag, err := imageRef(fs.Arg(0))
	if err != nil {
		return err
	}
	uids, err := resolveIDs(append(append([]string{}, a.users...), *users...), false)
	if err != nil {
		return &exitError{2, err}
	}
	gids, err := resolveIDs(append(append([]string{}, a.groups...), *groups...), true)
	if err != nil {
		return &exitError{2, err}
	}
	path, err := credsPath(a.getenv)
	if err != nil {
		return err
	}
	store, err := loadCreds(path)
	if err != nil {
		return err
	}
	req := api.PullRequest{AllowedUIDs: uids, AllowedGIDs: gids, AuthorizedLocations: store.authorizedLocations(tag)}
	if len(req.AuthorizedLocations) > 0 {
		a.log.Debug("sending stored registry credentials", "registry", client.RegistryHost(tag))
	}
	c, err := a.newClient()
	if err != nil {
		return err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	ref := itype + ":" + tag
	p := newProgress(a, ref)
	img, err := c.Pull(ctx, a.system, itype, tag, req)
	var downSince time.Time
	for {
		if err != nil {
			if !wait || downSince.IsZero() && p.last == nil || !errors.Is(err, client.ErrUnreachable) || ctx.Err() != nil {
				p.abort()
				if ctx.Err() != nil && timeout > 0 {
					return fmt.Errorf("%s: not READY after %v (last state %s)", ref, timeout, p.lastState())
				}
				return err
			}
			if downSince.IsZero() {
				downSince = time.Now()
				p.note("gateway unreachable, retrying")
			} else if time.Since(downSince) > unreachableGrace {
				p.abort()
				return err
			}
		} else {
			downSince = time.Time{}
			p.update(img)
			if !wait || img.Status == api.StateReady || img.Status == api.StateFailure {
				break
			}
		}
		select {
		case <-ctx.Done():
			p.abort()
			if timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s: not READY after %v (last state %s)", ref, timeout, p.lastState())
			}
			return fmt.Errorf("%s: %w (last state %s)", ref, ctx.Err(), p.lastState())
		case <-time.After(pollInterval):
		}
		img, err = c.Pull(ctx, a.system, itype, tag, req)
	}
	p.finish(img)
	if a.verbose {
		b, _ := json.MarshalIndent(img, "", "  ")
		fmt.Fprintf(a.stdout, "%s\n", b)
	}
	if img.Status == api.StateFailure {
		reason := img.StatusMessage
		if reason == "" {
			reason = "the gateway gave no reason"
		}
		return fmt.Errorf("%s: FAILURE: %s", ref, reason)
	}
	return nil
}
