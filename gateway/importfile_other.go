// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux

package gateway

import (
	"errors"
	"fmt"
	"os"
)

var errNotRegular = errors.New("not a regular file")

// openAsUser needs Linux (per-thread file-system identities).
func openAsUser(p string, uid, gid uint32, groups []uint32) (*os.File, error) {
	return nil, fmt.Errorf("import %s: %w", p, errors.ErrUnsupported)
}

type fileStat struct {
	Uid  uint32
	Size int64
}

func fstat(f *os.File) (fileStat, error) { return fileStat{}, errors.ErrUnsupported }
