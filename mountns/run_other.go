// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux

package mountns

import (
	"context"
	"errors"
)

// Run is only implemented on Linux.
func Run(ctx context.Context, spec *Spec) (int, error) {
	return -1, errors.ErrUnsupported
}

// WarmSignals does nothing off Linux.
func WarmSignals() {}
