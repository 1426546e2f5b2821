// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux

package udiroot

import (
	"errors"
	"fmt"
	"os"
)

// ErrUntrusted is wrapped by OpenTrusted's refusals.
var ErrUntrusted = errors.New("not trusted")

// OpenTrusted is only implemented on Linux.
func OpenTrusted(name string) (*os.File, error) {
	return nil, fmt.Errorf("open %s: %w", name, errors.ErrUnsupported)
}
