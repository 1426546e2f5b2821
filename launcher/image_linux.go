// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/mountns"
	"github.com/shifter-go/shifter/udiroot"
)

// Lookup resolves a tag through the image gateway and returns the image
// id. It runs with the caller's credentials (see asCaller).
type Lookup func(ctx context.Context, itype, tag string) (id string, err error)

// resolvedImage is the image a container is built from.
type resolvedImage struct {
	Meta      *imagestore.Metadata // nil for local images
	File      *os.File             // the open squashfs; nil for local images
	Path      string               // squashfs path, or the local directory
	LocalRoot string
	ID        string // SHIFTER_IMAGE: the id, or the local path
	// Untrusted says why the image file may not be given to the kernel's
	// squashfs driver ("" when it may): see untrustedImage.
	Untrusted string
}

// imageResolver finds images for one caller.
type imageResolver struct {
	cfg    *udiroot.Config
	cred   *mountns.Credential
	mode   RunMode
	lookup Lookup // nil: no gateway
	log    *slog.Logger
}

// gids is the caller's primary and supplementary groups.
func (r *imageResolver) gids() []uint32 {
	return append([]uint32{r.cred.GID}, r.cred.Groups...)
}

// resolve finds the image named by ref, checks that the caller may use
// it, and opens it.
func (r *imageResolver) resolve(ctx context.Context, ref ImageRef) (*resolvedImage, error) {
	switch ref.Type {
	case "local":
		return r.local(ref)
	case "id":
		m, err := imagestore.LoadOrShifterMeta(r.cfg.ImagePath, ref.Tag) // or Shifter's <id>.meta
		if err != nil {
			return nil, storeError(ref, err)
		}
		if !m.Allowed(r.cred.UID, r.gids()) {
			return nil, failf(ExitNoPerm, "image %s: access denied", ref)
		}
		return r.open(m)
	case "docker":
		m, err := r.findTag(ctx, ref)
		if err != nil {
			return nil, err
		}
		return r.open(m)
	case "custom":
		// An imported image's tag is the gateway's alone (it is not in
		// <id>.json, where it could pass for a docker tag).
		if r.lookup == nil {
			return nil, failf(ExitUnknownImage, "image %s: custom images are found through the image gateway, and udiRoot.conf sets no imageGateway (use id:ID)", ref)
		}
		m, err := r.viaGateway(ctx, ref)
		if err != nil {
			return nil, err
		}
		return r.open(m)
	}
	return nil, failf(ExitUsage, "image %s: unknown image type %q", ref, ref.Type)
}

// findTag resolves a tag: the newest image in the store that carries the
// tag and that the caller may use; when there is none and a gateway is
// configured, the gateway's answer. An image that exists but that the
// caller may not use is reported as not found, so that a tag's private
// images are not revealed.
func (r *imageResolver) findTag(ctx context.Context, ref ImageRef) (*imagestore.Metadata, error) {
	all, listErr := imagestore.List(r.cfg.ImagePath)
	if listErr != nil && len(all) == 0 && errors.Is(listErr, fs.ErrPermission) {
		return nil, fail(ExitNoPerm, fmt.Errorf("image %s: %w", ref, listErr))
	}
	if listErr != nil {
		r.log.Debug("image store has unreadable entries", "err", listErr)
	}
	for _, m := range all {
		if m.HasTag(ref.Tag) && m.Allowed(r.cred.UID, r.gids()) {
			r.log.Debug("tag found in the image store", "image", ref.String(), "id", m.ID)
			return m, nil
		}
	}
	if r.lookup == nil {
		return nil, failf(ExitUnknownImage, "image %s not found in %s (or not usable by you); pull it with shifterimg pull %s", ref, r.cfg.ImagePath, ref)
	}
	return r.viaGateway(ctx, ref)
}

// viaGateway resolves a tag through the gateway's lookup; the image must
// be in the store and usable by the caller (else it is not found, as in
// findTag).
func (r *imageResolver) viaGateway(ctx context.Context, ref ImageRef) (*imagestore.Metadata, error) {
	hint := "pull it with shifterimg pull " + ref.String()
	if ref.Type == "custom" {
		hint = "import it through the gateway's doimport"
	}
	notFound := failf(ExitUnknownImage, "image %s not found in %s (or not usable by you); %s", ref, r.cfg.ImagePath, hint)
	id, err := r.lookup(ctx, ref.Type, ref.Tag)
	if err != nil {
		r.log.Debug("gateway lookup failed", "image", ref.String(), "err", err)
		return nil, notFound
	}
	m, err := imagestore.LoadOrShifterMeta(r.cfg.ImagePath, id)
	if err != nil {
		r.log.Debug("gateway's image is not in the store", "image", ref.String(), "id", id, "err", err)
		return nil, notFound
	}
	if !m.Allowed(r.cred.UID, r.gids()) {
		return nil, notFound
	}
	r.log.Debug("tag resolved by the gateway", "image", ref.String(), "id", m.ID)
	return m, nil
}

// open opens the image's squashfs: after the ACL check, with the
// runtime's own credentials (the store may be readable by root only),
// without following a symlink, and checks that it is a regular file of
// the recorded size.
func (r *imageResolver) open(m *imagestore.Metadata) (*resolvedImage, error) {
	sq, _ := imagestore.Paths(r.cfg.ImagePath, m.ID)
	fd, err := unix.Open(sq, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		code := ExitUnknownImage
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			code = ExitNoPerm
		}
		return nil, fail(code, fmt.Errorf("open image %s: %w", m.ID, &os.PathError{Op: "open", Path: sq, Err: err}))
	}
	f := os.NewFile(uintptr(fd), sq)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, failf(ExitUnknownImage, "stat image %s: %v", sq, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, failf(ExitUnknownImage, "image %s: %s is not a regular file", m.ID, sq)
	}
	if m.Size > 0 && st.Size != m.Size {
		f.Close()
		return nil, failf(ExitUnknownImage, "image %s: %s has %d bytes, the metadata says %d (incomplete or replaced)", m.ID, sq, st.Size, m.Size)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		f.Close()
		return nil, failf(ExitSoftware, "image %s: %v", sq, err)
	}
	storeOwner := uint32(0)
	if dst, err := os.Stat(r.cfg.ImagePath); err == nil {
		storeOwner = dst.Sys().(*syscall.Stat_t).Uid
	}
	return &resolvedImage{Meta: m, File: f, Path: sq, ID: m.ID, Untrusted: untrustedImage(&st, storeOwner)}, nil
}

// untrustedImage says why an image file, as its open descriptor's stat
// shows it, is one an ordinary user could have written, or "" when only
// root and the image store's owner (the gateway's account, which owns the
// store directory) can: owned by anyone else, or writable by its group or
// by everyone (a POSIX ACL that grants writing shows in the group bits,
// as its mask). The kernel's squashfs driver is not hardened against
// crafted images, so such a file is never loop-mounted: it is served by
// the FUSE helper, whose reader checks every offset, or refused.
func untrustedImage(st *unix.Stat_t, storeOwner uint32) string {
	switch {
	case st.Uid != 0 && st.Uid != storeOwner:
		return fmt.Sprintf("owned by uid %d, neither root nor the image store's owner (uid %d)", st.Uid, storeOwner)
	case st.Mode&0o002 != 0:
		return "writable by every user"
	case st.Mode&0o020 != 0:
		return fmt.Sprintf("writable by group %d", st.Gid)
	}
	return ""
}

// local checks a local:/dir image: allowed by the site, a directory the
// caller can open.
func (r *imageResolver) local(ref ImageRef) (*resolvedImage, error) {
	if !r.cfg.AllowLocalChroot {
		return nil, failf(ExitNoPerm, "image %s: local images are not allowed here (udiRoot.conf allowLocalChroot=0)", ref)
	}
	// The caller must be able to open the directory: the root of their
	// container is not a place they could not look into on the host.
	var st os.FileInfo
	err := asCaller(r.mode, func() error {
		f, err := os.Open(ref.Tag)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err = f.Stat()
		return err
	})
	switch {
	case errors.Is(err, fs.ErrPermission):
		return nil, fail(ExitNoPerm, fmt.Errorf("image %s: %w", ref, err))
	case err != nil:
		return nil, fail(ExitUnknownImage, fmt.Errorf("image %s: %w", ref, err))
	case !st.IsDir():
		return nil, failf(ExitUnknownImage, "image %s: not a directory", ref)
	}
	return &resolvedImage{Path: ref.Tag, LocalRoot: ref.Tag, ID: ref.Tag}, nil
}

// storeError maps an image store error to an exit status.
func storeError(ref ImageRef, err error) error {
	switch {
	case errors.Is(err, imagestore.ErrNotFound):
		return failf(ExitUnknownImage, "image %s not found", ref)
	case errors.Is(err, fs.ErrPermission):
		return fail(ExitNoPerm, fmt.Errorf("image %s: %w", ref, err))
	}
	return fail(ExitUnknownImage, fmt.Errorf("image %s: %w", ref, err))
}
