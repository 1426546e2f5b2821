// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"errors"

	"github.com/shifter-go/shifter/squashreader/internal/xz"
)

// xzDec decodes the xz streams mksquashfs writes (one stream per block,
// LZMA2 with an optional BCJ filter) buffer to buffer with the project's
// own decoder (squashreader/internal/xz and internal/lzma2): the output
// buffer is the LZMA2 dictionary, so there is no reader state, no
// dictionary to allocate and no copy.
type xzDec struct{}

func (xzDec) decompress(dst, src []byte) ([]byte, error) {
	out, err := xz.Decode(dst[:0], src)
	if errors.Is(err, xz.ErrTooLong) {
		return nil, errTooLong
	}
	return out, err
}
