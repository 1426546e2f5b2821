// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"context"
	"errors"
	"os"

	"github.com/shifter-go/shifter/imagestore"
)

// Progress states reported by Build.
const (
	StatePulling    = "PULLING"    // downloading layer blobs; done/total in bytes
	StateConversion = "CONVERSION" // flattening into mksquashfs; done/total in bytes
)

// Build downloads r's layers into the blob cache, flattens them and
// writes a squashfs into out (a temporary file in the image directory,
// from imagestore.CreateTemp, which mksquashfs overwrites by name). It
// reports progress (may be nil) with state StatePulling, then
// StateConversion. It returns the image's metadata without tags or ACLs
// (the caller adds them and publishes out with imagestore.Publish).
func (p *Puller) Build(ctx context.Context, r *Resolved, out *os.File, progress func(state, msg string, done, total int64)) (*imagestore.Metadata, error) {
	return nil, errors.New("build image: not implemented yet")
}
