// SPDX-License-Identifier: BSD-3-Clause

//go:build !linux

package main

import (
	"context"
	"errors"
)

func isTerminal(any) bool { return false }

func readPassword(context.Context, any) (string, error) { return "", errors.ErrUnsupported }

func termWidth(any) int { return 80 }
