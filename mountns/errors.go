// SPDX-License-Identifier: BSD-3-Clause

package mountns

import "errors"

// Sentinel errors returned (wrapped) by Run and ParseVolumes. Check them
// with errors.Is; the front end maps each to its own exit status.
var (
	// ErrSpec: the Spec itself is invalid (a programming or config error).
	ErrSpec = errors.New("mountns: invalid spec")
	// ErrBadVolume: a volume is malformed or its destination is not allowed.
	ErrBadVolume = errors.New("mountns: bad volume")
	// ErrAccess: the caller may not read a volume source (or the image).
	ErrAccess = errors.New("mountns: access denied")
	// ErrMount: a mount step of building the container failed.
	ErrMount = errors.New("mountns: mount failed")
	// ErrHook: a site pre- or post-mount hook failed.
	ErrHook = errors.New("mountns: site hook failed")
	// ErrUserNS: unprivileged mode needs user namespaces, which are unavailable.
	ErrUserNS = errors.New("mountns: user namespaces unavailable")
	// ErrFUSE: fuse mode needs /dev/fuse and the shifter-mount helper.
	ErrFUSE = errors.New("mountns: FUSE unavailable")
	// ErrUnavailable: something the container asks for cannot be had on
	// this host (a perNodeCache volume without perNodeCachePath, loop
	// devices or privilege).
	ErrUnavailable = errors.New("mountns: not available on this host")
	// ErrEnvFile: an --env-file is missing in the container or malformed.
	ErrEnvFile = errors.New("mountns: bad env file")
	// ErrSetup: any other failure while building or entering the container.
	ErrSetup = errors.New("mountns: container setup failed")
)

// errorKinds names the sentinels for the trip from the namespace init back
// to Run.
var errorKinds = map[string]error{
	"spec":        ErrSpec,
	"volume":      ErrBadVolume,
	"access":      ErrAccess,
	"mount":       ErrMount,
	"hook":        ErrHook,
	"userns":      ErrUserNS,
	"fuse":        ErrFUSE,
	"unavailable": ErrUnavailable,
	"envfile":     ErrEnvFile,
	"setup":       ErrSetup,
}

// kindOf returns the name of the sentinel that err wraps ("setup" if none).
func kindOf(err error) string {
	for _, k := range []string{"spec", "volume", "access", "envfile", "hook", "userns", "fuse", "unavailable", "mount"} {
		if errors.Is(err, errorKinds[k]) {
			return k
		}
	}
	return "setup"
}

// remoteError is an error reported by the namespace init: its message, and
// the sentinel it wrapped there.
type remoteError struct {
	kind error
	msg  string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }
