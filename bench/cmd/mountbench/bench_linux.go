// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
)

type benchImage = benchutil.Image

type runner struct {
	cfg     *config
	log     *slog.Logger
	res     *results
	methods []*method
	mnts    map[string]string // method -> mountpoint
	live    []*mounted        // unmounted on exit, whatever happens
}

func bench(ctx context.Context, cfg *config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (mounts, chroot, drop_caches)")
	}
	if cfg.Pin {
		if err := benchutil.PinToCPU0("MOUNTBENCH_PINNED"); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cache := &benchutil.Cache{Dir: cfg.CacheDir, Mirror: cfg.Mirror, Log: log}
	var imgs []*benchImage
	for _, c := range cfg.Comps {
		img, err := cache.Image(ctx, benchutil.ImageSpec{Comp: c, BigFiles: cfg.BigFiles, BigSize: cfg.BigSize, Extra: cfg.Extra})
		if err != nil {
			return err
		}
		imgs = append(imgs, img)
	}
	if cfg.Prepare {
		for _, img := range imgs {
			fmt.Println(img.Path)
		}
		return nil
	}
	r := &runner{cfg: cfg, log: log, res: newResults(cfg), mnts: map[string]string{}}
	tmp, err := os.MkdirTemp("", "mountbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	defer r.cleanup()
	for _, name := range cfg.Methods {
		m, err := methodFor(name, cfg.BinDir, cfg.MountOpts)
		if err != nil {
			r.res.Unavailable[name] = err.Error()
			log.Warn("method unavailable", "method", name, "err", err)
			continue
		}
		mnt := filepath.Join(tmp, name)
		if err := os.Mkdir(mnt, 0o755); err != nil {
			return err
		}
		r.methods = append(r.methods, m)
		r.mnts[name] = mnt
	}
	for _, img := range imgs {
		r.res.addImage(img)
	}
	// The verification pass reads everything once per method, untimed; a
	// method that cannot mount or read the image is dropped here.
	var ok []*method
	for _, m := range r.methods {
		good := true
		for _, img := range imgs {
			v, err := r.verifyOne(ctx, img, m)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.res.Unavailable[m.name] = err.Error()
				log.Warn("method dropped", "method", m.name, "err", err)
				good = false
				break
			}
			r.res.setVerify(img, m.name, v)
		}
		if good {
			ok = append(ok, m)
		}
	}
	r.methods = ok
	if len(r.methods) == 0 {
		return fmt.Errorf("no method can mount the image")
	}
	if cfg.DAMON == "pause" {
		restore, note, err := pauseDAMON(damonAdmin, log)
		if err != nil {
			return err
		}
		defer restore()
		r.res.DAMON = note
	}
	start := time.Now()
	// An interrupt (SIGINT, SIGTERM) ends the runs early; what was
	// measured so far is still reported.
reps:
	for rep := range cfg.Reps {
		if el := time.Since(start); cfg.Budget > 0 && rep > 0 && el+el/time.Duration(rep) > cfg.Budget {
			r.res.Interrupted = fmt.Sprintf("stopped after %d of %d repetitions (--time-budget %s)", rep, cfg.Reps, cfg.Budget)
			log.Warn("time budget reached", "reps", rep)
			break
		}
		for _, img := range imgs {
			for _, test := range cfg.Tests {
				if test == "mount" {
					if err := r.mountSamples(ctx, img, rep); err != nil {
						if ctx.Err() != nil {
							r.res.Interrupted = fmt.Sprintf("interrupted during repetition %d of %d; the figures are medians of what was measured", rep+1, cfg.Reps)
							log.Warn("interrupted: reporting what was measured")
							break reps
						}
						r.res.Errors = append(r.res.Errors, fmt.Sprintf("rep %d %s mount: %v", rep+1, img.Spec.Name(), err))
						log.Error("test failed", "image", img.Spec.Name(), "test", test, "err", err)
					}
					continue
				}
				for i := range r.methods {
					m := r.methods[(i+rep)%len(r.methods)] // rotate so no method always goes first
					if err := r.one(ctx, img, m, test); err != nil {
						if ctx.Err() != nil {
							r.res.Interrupted = fmt.Sprintf("interrupted during repetition %d of %d; the figures are medians of what was measured", rep+1, cfg.Reps)
							log.Warn("interrupted: reporting what was measured")
							break reps
						}
						r.res.Errors = append(r.res.Errors, fmt.Sprintf("rep %d %s %s %s: %v", rep+1, img.Spec.Name(), m.name, test, err))
						log.Error("test failed", "image", img.Spec.Name(), "method", m.name, "test", test, "err", err)
					}
				}
			}
		}
		log.Info("repetition done", "rep", rep+1, "of", cfg.Reps, "elapsed", time.Since(start).Round(time.Second))
	}
	r.res.finish(start, imgs, r.methods)
	md := r.res.markdown()
	fmt.Print(md)
	if cfg.ResultsDir != "" {
		paths, err := r.res.write(cfg.ResultsDir, md)
		if err != nil {
			return err
		}
		for _, p := range paths {
			log.Info("wrote results", "path", p)
		}
	}
	return nil
}

func (r *runner) mount(ctx context.Context, img *benchImage, m *method) (*mounted, float64, error) {
	mt, el, err := m.mount(ctx, img.Path, r.mnts[m.name])
	if err != nil {
		return nil, 0, err
	}
	r.live = append(r.live, mt)
	return mt, el, nil
}

func (r *runner) unmount(mt *mounted) error {
	for i, l := range r.live {
		if l == mt {
			r.live = append(r.live[:i], r.live[i+1:]...)
			break
		}
	}
	return mt.unmount()
}

func (r *runner) cleanup() {
	for _, mt := range r.live {
		if err := mt.unmount(); err != nil {
			r.log.Error("cleanup", "err", err)
		}
	}
	r.live = nil
}

func (r *runner) verifyOne(ctx context.Context, img *benchImage, m *method) (*verification, error) {
	mt, _, err := r.mount(ctx, img, m)
	if err != nil {
		return nil, err
	}
	v := r.verify(ctx, mt.mnt, img)
	r.res.noteHWM(img, m.name, mt.hwm())
	return v, r.unmount(mt)
}

// mountSamples times cfg.MountReps rounds of mounts. In each round every
// method, in turn (rotated from round to round), mounts once after the
// caches are dropped (cold) and once right after unmounting (warm): the
// methods share the machine's moments of noise.
func (r *runner) mountSamples(ctx context.Context, img *benchImage, rep int) error {
	n := len(r.methods)
	for s := range r.cfg.MountReps {
		for i := range n {
			m := r.methods[(i+s+rep)%n]
			if err := dropCaches(); err != nil {
				return err
			}
			for _, phase := range []string{"cold", "warm"} {
				mt, el, err := r.mount(ctx, img, m)
				if err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
				r.res.add(img, m.name, "mount", phase, el)
				r.res.noteHWM(img, m.name, mt.hwm())
				if err := r.unmount(mt); err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
			}
		}
	}
	return nil
}

// one runs test (not mount: see mountSamples) on a fresh mount, with
// the caches dropped before the mount or, with --drop-after-mount, right
// after it: the first run is the cold figure, the second the warm one.
func (r *runner) one(ctx context.Context, img *benchImage, m *method, test string) error {
	if !r.cfg.DropAfter {
		if err := dropCaches(); err != nil {
			return err
		}
	}
	mt, _, err := r.mount(ctx, img, m)
	if err != nil {
		return err
	}
	if r.cfg.DropAfter {
		if err := dropCaches(); err != nil {
			r.unmount(mt)
			return err
		}
	}
	f := r.testFunc(test, img)
	for _, phase := range []string{"cold", "warm"} {
		el, err := f(ctx, mt.mnt)
		if err != nil {
			r.unmount(mt)
			return err
		}
		r.res.add(img, m.name, test, phase, el)
	}
	r.res.noteHWM(img, m.name, mt.hwm())
	return r.unmount(mt)
}
