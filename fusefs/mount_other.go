// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux

package fusefs

import (
	"errors"
	"log/slog"
)

// MountOptions are the options of Mount (Linux only).
type MountOptions struct {
	FsName, Subtype          string
	AllowOther               bool
	MaxRead, KernelReadahead int
	MaxBackground            int
	Options                  []string
	Debug                    bool
	Logger                   *slog.Logger
}

// Server is a mounted FS (Linux only).
type Server struct{}

// Mount is only implemented on Linux.
func Mount(string, *FS, *MountOptions) (*Server, error) { return nil, errors.ErrUnsupported }
