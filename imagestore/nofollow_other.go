// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux

package imagestore

import (
	"errors"
	"os"
)

// openNoFollow is Linux-only.
func openNoFollow(string) (*os.File, error) { return nil, errors.ErrUnsupported }
