// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// meteredBody counts the bytes read from a blob response.
type meteredBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (m *meteredBody) Read(b []byte) (int, error) {
	n, err := m.ReadCloser.Read(b)
	m.n.Add(int64(n))
	return n, err
}

// watchSpeed enforces Options.MinSpeed on one blob download: once
// SpeedGrace has passed, whenever the bytes of the last SpeedWindow fall
// below MinSpeed × SpeedWindow it cancels ctx with an ErrTooSlow cause
// naming the registry. It returns the function that stops watching.
func (p *Puller) watchSpeed(ctx context.Context, cancel context.CancelCauseFunc, body *meteredBody, registry, digest string) (stop func()) {
	window, grace, minSpeed := p.opts.SpeedWindow, p.opts.SpeedGrace, p.opts.MinSpeed
	step := max(window/8, time.Millisecond)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(step)
		defer t.Stop()
		start := time.Now()
		type sample struct {
			at time.Time
			n  int64
		}
		var samples []sample // the last window's samples, oldest first
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				if now.Sub(start) < grace {
					continue
				}
				samples = append(samples, sample{now, body.n.Load()})
				for len(samples) > 1 && now.Sub(samples[1].at) >= window {
					samples = samples[1:]
				}
				first, last := samples[0], samples[len(samples)-1]
				el := last.at.Sub(first.at)
				if el < window {
					continue
				}
				if got := last.n - first.n; float64(got) < float64(minSpeed)*el.Seconds() {
					cancel(fmt.Errorf("%w: registry %s sent %d bytes of blob %s in the last %s, below the minimum of %d bytes/s",
						ErrTooSlow, registry, got, digest, el.Round(time.Millisecond), minSpeed))
					return
				}
			}
		}
	}()
	return func() { close(done) }
}
