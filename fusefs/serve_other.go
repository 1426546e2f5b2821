// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux

package fusefs

import (
	"context"
	"errors"

	"github.com/shifter-go/shifter/squashreader"
)

// Serve is only implemented on Linux.
func Serve(context.Context, *squashreader.Reader, string, *ServeOptions) error {
	return errors.ErrUnsupported
}
