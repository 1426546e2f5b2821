// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/shifter-go/shifter/gateway/pull"
	"github.com/shifter-go/shifter/imagestore"
)

// realPuller adapts gateway/pull to the Puller interface.
type realPuller struct{ p *pull.Puller }

// NewPuller returns the production Puller configured from c.
func NewPuller(c *Config, log *slog.Logger) (Puller, error) {
	regs := map[string]pull.Registry{}
	for host, r := range c.Registries {
		regs[host] = pull.Registry{Insecure: r.Insecure, CAFile: r.CAFile, AuthHosts: r.AuthHosts}
	}
	p, err := pull.New(pull.Options{
		CacheDir:           c.CacheDir,
		WorkDir:            c.WorkDir,
		Registries:         regs,
		DefaultRegistry:    c.DefaultRegistry,
		MaxImageSize:       c.MaxImageSize,
		MksquashfsArgs:     c.MksquashfsArgs,
		Platform:           c.Platform,
		Retries:            c.Retries,
		AllowInternalHosts: c.AllowInternalHosts,
		MinSpeed:           c.MinDownloadSpeed,
		SpeedWindow:        c.DownloadSpeedWindow.D(),
		Logger:             log,
	})
	if err != nil {
		return nil, fmt.Errorf("new puller: %w", err)
	}
	return realPuller{p}, nil
}

func mapPullErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pull.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, pull.ErrUnauthorized):
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	case errors.Is(err, pull.ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return err
}

func (r realPuller) Resolve(ctx context.Context, ref string, creds map[string]string) (*Resolved, error) {
	res, err := r.p.Resolve(ctx, ref, creds)
	if err != nil {
		return nil, mapPullErr(err)
	}
	return &Resolved{ID: res.ID, Ref: res.Ref, Impl: res}, nil
}

func (r realPuller) Build(ctx context.Context, res *Resolved, out *os.File, progress ProgressFunc) (*imagestore.Metadata, error) {
	pr, ok := res.Impl.(*pull.Resolved)
	if !ok {
		return nil, fmt.Errorf("build %s: not resolved by this puller", res.Ref)
	}
	m, err := r.p.Build(ctx, pr, out, progress)
	return m, mapPullErr(err)
}
