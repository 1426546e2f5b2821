// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux

package main

import (
	"context"
	"errors"
)

func bench(context.Context, *config) error { return errors.ErrUnsupported }
