// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux

package nodecache

import (
	"errors"
	"os"
)

func lockDir(dir string) (*os.File, error) { return nil, errors.ErrUnsupported }

const oNoFollow = 0

func allocated(info os.FileInfo) int64 { return info.Size() }
