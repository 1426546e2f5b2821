// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"fmt"
	"os"
	"os/exec"
	"path"

	"golang.org/x/sys/unix"
)

// builder executes a plan (planRoot) in the namespace init.
type builder struct {
	cfg   *initConfig
	log   *initLogger
	image *os.File // the image file, if any
	srcs  []source // the volumes' sources (openSources), by volume index

	root *rootfs   // the container root, once the overlay is mounted
	fuse *exec.Cmd // the FUSE helper, if any
}

// run executes the operations of plan in order. On error the FUSE helper
// (if started) is left in b.fuse for the caller to stop.
func (b *builder) run(plan []op) error {
	for _, o := range plan {
		if err := b.do(o); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) do(o op) error {
	switch o.kind {
	case opStagingTmpfs:
		if err := stagingTmpfs(o, b.cfg.Unprivileged); err != nil {
			return err
		}
		b.log.step("staging tmpfs mounted")
	case opImage:
		fuse, err := mountImage(o, b.cfg, b.image, b.log)
		if err != nil {
			return err
		}
		b.fuse = fuse
		if b.image != nil {
			b.image.Close() // the loop device or the helper has its own reference
			b.image = nil
		}
		b.log.step("image mounted", "mode", string(b.cfg.Mode))
	case opUpper:
		if err := prepareUpper(b.cfg, path.Join(b.cfg.UDIMount, "lower"), o.dest, mountPoints(b.cfg, b.srcs)); err != nil {
			return err
		}
		b.log.step("upper layer prepared")
	case opOverlay:
		r, err := mountOverlay(o, b.cfg, b.log)
		if err != nil {
			return err
		}
		b.root = r
		b.log.step("overlay mounted")
	case opEtc:
		// The upper layer with no mount point made in it: those come later,
		// through the overlay.
		if err := prepareUpper(b.cfg, path.Join(b.cfg.UDIMount, "lower"), o.dest, nil); err != nil {
			return err
		}
		b.log.step("site files written")
	case opMount:
		if err := b.root.mountNew(o); err != nil {
			return err
		}
		b.log.step("mounted", "path", o.dest)
	case opBind:
		src, err := b.source(o.bind)
		if err != nil {
			return err
		}
		if o.bind.hostPath != "" {
			defer src.f.Close()
		}
		if err := b.root.bind(o.bind, src); err != nil {
			return err
		}
		b.log.step("bound", "path", o.dest)
	case opPerNodeCache:
		v := b.cfg.Volumes[o.bind.volume]
		if err := b.root.mountPerNodeCache(o, v.PerNodeCache, &b.cfg.PerNodeCache, b.cfg.Unprivileged); err != nil {
			return err
		}
		b.log.step("perNodeCache mounted", "path", o.dest)
	case opHook:
		if err := b.root.runHook(o.hookName, o.hook); err != nil {
			return err
		}
		b.log.step("hook done", "hook", o.hookName)
	case opReadOnly:
		if err := mount("", b.root.path, "", o.flags, ""); err != nil {
			return err
		}
		b.log.step("root read-only")
	default:
		return fmt.Errorf("%w: unknown operation %v", ErrSetup, o)
	}
	return nil
}

// source opens the host source of b, or returns the volume's.
func (b *builder) source(req bindReq) (bindSource, error) {
	if req.hostPath != "" {
		return openHostSource(req.hostPath)
	}
	if req.volume < 0 || req.volume >= len(b.srcs) {
		return bindSource{}, fmt.Errorf("%w: volume %d has no opened source", ErrSetup, req.volume)
	}
	s := b.srcs[req.volume]
	return bindSource{f: s.f, name: b.cfg.Volumes[req.volume].Source, isDir: s.isDir}, nil
}

// hostHas reports whether the host path p exists (for planRoot).
func hostHas(p string) bool {
	var st unix.Stat_t
	return unix.Stat(p, &st) == nil
}
