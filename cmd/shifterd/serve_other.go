// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux

package main

import (
	"context"
	"errors"
)

func (a *app) serve(context.Context, []string) error { return errors.ErrUnsupported }
