// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux

package benchutil

import (
	"errors"
	"fmt"
)

// PinToCPU0 needs Linux (taskset).
func PinToCPU0(string) error { return fmt.Errorf("pin to CPU 0: %w", errors.ErrUnsupported) }

// CPUsAllowed is unknown outside Linux.
func CPUsAllowed() string { return "" }

// CPUsOnline is unknown outside Linux.
func CPUsOnline() string { return "" }
