// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"errors"
	"fmt"
)

// ErrFormat is wrapped by every error that reports a corrupt or unsupported
// image.
var ErrFormat = errors.New("squashfs: corrupt or unsupported image")

// ErrNoXattr is wrapped by Xattr's error when the inode has no such xattr.
var ErrNoXattr = errors.New("no such xattr")

// FormatError says what is wrong in an image and where: Off is the byte
// offset in the image of the structure (or of the metadata block holding
// it), -1 when unknown.
type FormatError struct {
	Off  int64
	What string
}

func (e *FormatError) Error() string {
	if e.Off < 0 {
		return "squashfs: " + e.What
	}
	return fmt.Sprintf("squashfs: %s (at offset 0x%x)", e.What, e.Off)
}

// Unwrap returns ErrFormat.
func (e *FormatError) Unwrap() error { return ErrFormat }

func formatErr(off int64, format string, args ...any) error {
	return &FormatError{Off: off, What: fmt.Sprintf(format, args...)}
}
