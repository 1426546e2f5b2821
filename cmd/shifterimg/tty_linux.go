// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is an *os.File on a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(file.Fd()), unix.TCGETS)
	return err == nil
}

// readPassword reads one line from the terminal f with echo turned off,
// restoring the terminal afterwards. When ctx ends first (Ctrl-C), it
// restores the terminal and exits with status 130: the blocked read
// cannot be interrupted, and the terminal must not stay without echo.
func readPassword(ctx context.Context, f any) (string, error) {
	file, ok := f.(*os.File)
	if !ok {
		return "", errors.New("reading password: not a terminal")
	}
	fd := int(file.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("reading terminal settings: %w", err)
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", fmt.Errorf("turning off echo: %w", err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			unix.IoctlSetTermios(fd, unix.TCSETS, old)
			fmt.Fprintln(os.Stderr)
			os.Exit(130)
		case <-done:
		}
	}()
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	line, err := readLineFrom(file)
	if err != nil {
		return "", fmt.Errorf("reading password: %w", err)
	}
	return line, nil
}

// termWidth returns the width of the terminal f, or 80.
func termWidth(f any) int {
	if file, ok := f.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(file.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			return int(ws.Col)
		}
	}
	return 80
}
