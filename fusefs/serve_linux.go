// SPDX-License-Identifier: BSD-3-Clause

package fusefs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/squashreader"
)

// Serve builds the file system of r, mounts it on mountpoint and serves it
// until it is unmounted (from outside, or by a signal from opts.Signals or
// the end of ctx, which unmount as SIGTERM does). r must stay open until
// Serve returns. Errors before opts.Ready was called mean nothing is
// mounted; Serve logs what ends it afterwards. A clean unmount returns nil.
// After a failed Ready or ErrAbandoned, the mount is detached but files
// opened on it may still be served: they fail once r is closed.
func Serve(ctx context.Context, r *squashreader.Reader, mountpoint string, opts *ServeOptions) error {
	var o ServeOptions
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	log := o.Logger
	step := o.Step
	if step == nil {
		step = func(string) {}
	}
	var fo Options
	if o.FS != nil {
		fo = *o.FS
	}
	if fo.Logger == nil {
		fo.Logger = log
	}
	var mo MountOptions
	if o.Mount != nil {
		mo = *o.Mount
	}
	if mo.Logger == nil {
		mo.Logger = log
	}

	fsys, err := New(r, &fo)
	if err != nil {
		if o.Name != "" {
			return fmt.Errorf("image %s: %w", o.Name, err)
		}
		return err
	}
	step("file system built")
	if o.NotBefore != nil {
		select {
		case <-o.NotBefore:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	srv, err := Mount(mountpoint, fsys, &mo)
	if err != nil {
		return err
	}
	mnt := srv.Mountpoint()
	step("mounted (FUSE INIT answered)")
	if o.Ready != nil {
		if err := o.Ready(mnt); err != nil {
			if uerr := srv.UnmountLazy(); uerr != nil {
				log.Error("unmount", "mountpoint", mnt, "err", uerr)
			}
			return err
		}
	}
	if o.PrefetchMetadata > 0 && runtime.GOMAXPROCS(0) > 1 {
		go func() {
			n, err := r.PrefetchMetadata(o.PrefetchMetadata)
			if err != nil {
				// The requests that need those blocks will say so.
				log.Debug("metadata prefetch", "blocks", n, "err", err)
				return
			}
			log.Debug("metadata prefetch", "blocks", n)
		}()
	}

	lazy := false
	// stop unmounts on a signal or the end of ctx.
	stop := func(attr slog.Attr) error {
		if lazy {
			log.Warn("second signal while detached: exiting, open files will fail", attr)
			return ErrAbandoned
		}
		log.Info("unmounting", attr, slog.String("mountpoint", mnt))
		err := srv.Unmount()
		if errors.Is(err, ErrBusy) {
			log.Warn("mount busy: detaching it, serving open files until they are closed", "mountpoint", mnt)
			err = srv.UnmountLazy()
			lazy = true
		}
		if err != nil {
			log.Error("unmount", "mountpoint", mnt, "err", err)
		}
		return err
	}
	ctxDone := ctx.Done()
	for {
		select {
		case <-srv.Done():
			log.Info("unmounted", "mountpoint", mnt)
			if o.Stats {
				logStats(log, fsys, r)
			}
			return nil
		case sig := <-o.Signals:
			if sig == unix.SIGUSR1 {
				logStats(log, fsys, r)
				continue
			}
			if err := stop(slog.String("signal", sig.String())); err != nil {
				return err
			}
		case <-ctxDone:
			ctxDone = nil
			if err := stop(slog.String("cause", context.Cause(ctx).Error())); err != nil {
				return err
			}
		}
	}
}

// logStats logs the requests fsys served and the blocks r decompressed.
func logStats(log *slog.Logger, fsys *FS, r *squashreader.Reader) {
	st := fsys.Stats()
	attrs := []any{"total", st.Total()}
	for k, v := range st {
		attrs = append(attrs, k, v)
	}
	log.Info("requests served", attrs...)
	rs := r.ReadStats()
	log.Info("blocks decompressed", "on_demand", rs.OnDemand, "direct", rs.Direct, "read_ahead", rs.ReadAhead, "waited", rs.Waited)
}
