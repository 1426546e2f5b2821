// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"errors"
	"fmt"
)

// Exit statuses of setup failures, from sysexits.h. Any other status is
// the command's own (128+N when it died of signal N, 127 when it could not
// be executed, 126 when it was not executable).
const (
	ExitUsage        = 64 // bad command line or environment (EX_USAGE)
	ExitBadVolume    = 65 // a --volume that is malformed or not allowed (EX_DATAERR)
	ExitUnknownImage = 66 // image not found, or not one the caller may use (EX_NOINPUT)
	ExitUnknownUser  = 67 // the calling user or group is unknown to NSS (EX_NOUSER)
	ExitUnavailable  = 69 // the container cannot be built on this host (EX_UNAVAILABLE)
	ExitSoftware     = 70 // internal error (EX_SOFTWARE)
	ExitSetup        = 71 // building the container failed: mounts, hooks (EX_OSERR)
	ExitNoPerm       = 77 // access denied: image ACL, local images, unreadable files (EX_NOPERM)
	ExitConfig       = 78 // udiRoot.conf missing, invalid or unsafe (EX_CONFIG)
)

// exitCodes documents the statuses for --help and docs.
var exitCodes = []struct {
	code int
	text string
}{
	{ExitUsage, "usage: bad option, --env, --workdir, --entrypoint, module selection, no image"},
	{ExitBadVolume, "bad --volume (syntax or forbidden destination)"},
	{ExitUnknownImage, "image not found (or not usable by you)"},
	{ExitUnknownUser, "your user or group is unknown to the host's NSS"},
	{ExitUnavailable, "this host cannot build the container (no loop, FUSE or user namespaces), or your ulimit -n / -u is too low"},
	{ExitSoftware, "internal error"},
	{ExitSetup, "building the container failed (mounts, site hooks, module userhook)"},
	{ExitNoPerm, "access denied (image ACL, local images not allowed, unreadable file)"},
	{ExitConfig, "udiRoot.conf missing, invalid, or not safe for a setuid shifter"},
}

// exitError carries the exit status of a setup failure.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// fail wraps err with an exit status.
func fail(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// failf makes a new error with an exit status.
func failf(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

// ExitCode returns the exit status for a setup error: its own when it
// carries one, else ExitSoftware.
func ExitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return ExitSoftware
}

// hasCode reports whether err carries an exit status.
func hasCode(err error) bool {
	var e *exitError
	return errors.As(err, &e)
}
