// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/shifter-go/shifter/mountns"
	"github.com/shifter-go/shifter/shifterd/client"
	"github.com/shifter-go/shifter/udiroot"
)

// shifterdTimeout bounds asking shifterd for a mount (the first
// reference to an image on the node mounts it).
const shifterdTimeout = 30 * time.Second

// sharedMount asks shifterd for the node's shared mount of img, when the
// configuration lets shifterd serve it: imageMount auto or shifterd, a
// shifterdSocket, an image of the store, and a runtime that is root or
// setuid (a user namespace cannot bind the host's mount). It returns nil
// and the reason when the runtime should mount the image itself; with
// imageMount=shifterd that is an error. The returned release closes the
// caller's copy of the reference.
func sharedMount(ctx context.Context, cfg *udiroot.Config, mode RunMode, img *resolvedImage, cred *mountns.Credential, log *slog.Logger) (*mountns.Shared, func(), error) {
	required := cfg.ImageMount == udiroot.ImageMountShifterd
	why := ""
	switch {
	case cfg.ImageMount != udiroot.ImageMountAuto && !required:
		return nil, nil, nil
	case cfg.ShifterdSocket == "":
		why = "shifterdSocket is empty"
	case img.Meta == nil:
		why = "not an image of the store"
	case mode == ModeUser:
		why = "unprivileged mode mounts the image itself"
	}
	var ref *client.Ref
	if why == "" {
		ctx, cancel := context.WithTimeout(ctx, shifterdTimeout)
		defer cancel()
		caller := &client.Caller{UID: cred.UID, GIDs: append([]uint32{cred.GID}, cred.Groups...)}
		var err error
		ref, err = client.Mount(ctx, cfg.ShifterdSocket, img.Meta.ID, caller, os.Getpid())
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			why = "shifterd is not running (no socket " + cfg.ShifterdSocket + ")"
		default:
			why = err.Error()
		}
	}
	if why != "" {
		if required {
			return nil, nil, failf(ExitUnavailable, "image %s: imageMount=shifterd, but: %s", img.ID, why)
		}
		log.Info("image mount: not through shifterd, the image is mounted for this container", "reason", why)
		return nil, nil, nil
	}
	hold, err := ref.File()
	if err != nil {
		ref.Close()
		return nil, nil, fail(ExitSetup, fmt.Errorf("shifterd reference: %w", err))
	}
	log.Info("image mount: shifterd's shared mount", "image", img.Meta.ID, "source", ref.Source)
	return &mountns.Shared{Path: ref.Path, Root: ref.Root, Hold: hold}, func() {
		hold.Close()
		ref.Close()
	}, nil
}
