// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"errors"
	"slices"
	"strconv"

	"github.com/shifter-go/shifter/imagestore"
)

// defaultShell runs when no command is given.
const defaultShell = "/bin/sh"

// resolveArgv works out the command as Shifter's calculate_args:
//
//	shifter                       -> /bin/sh
//	shifter cmd args              -> cmd args
//	shifter --entrypoint          -> image ENTRYPOINT + image CMD
//	shifter --entrypoint cmd args -> image ENTRYPOINT + cmd args
//	shifter --entrypoint=x        -> x
//	shifter --entrypoint=x args   -> x args
//
// img may be nil (local images have no metadata).
func resolveArgv(command []string, entry optional, img *imagestore.Metadata) ([]string, error) {
	switch {
	case !entry.set:
		if len(command) == 0 {
			return []string{defaultShell}, nil
		}
		return slices.Clone(command), nil
	case !entry.bare:
		return append([]string{entry.value}, command...), nil
	}
	if img == nil || len(img.Entrypoint) == 0 {
		return nil, failf(ExitUsage, "--entrypoint: the image does not define an entrypoint")
	}
	argv := slices.Clone(img.Entrypoint)
	if len(command) > 0 {
		return append(argv, command...), nil
	}
	return append(argv, img.Cmd...), nil
}

// resolveWorkdir: --workdir=p gives p; bare --workdir the image's WORKDIR
// (an error when it has none); otherwise the caller's cwd.
func resolveWorkdir(wd optional, img *imagestore.Metadata, cwd string) (string, error) {
	switch {
	case !wd.set:
		return cwd, nil
	case !wd.bare:
		return wd.value, nil
	}
	if img == nil || img.WorkDir == "" {
		return "", failf(ExitUsage, "--workdir: the image does not define a working directory")
	}
	return img.WorkDir, nil
}

// userhookExit is the status when a module userhook fails.
const userhookExit = ExitSetup

// wrapUserHooks makes argv run the modules' userhooks first: each by
// /bin/sh, as the user, inside the container; a failing hook stops the
// start with a message and status ExitSetup. Without hooks argv is
// returned unchanged.
func wrapUserHooks(argv []string, hooks []string) ([]string, error) {
	if len(hooks) == 0 {
		return argv, nil
	}
	if len(argv) == 0 {
		return nil, errors.New("no command")
	}
	script := `n=$1; shift
while [ "$n" -gt 0 ]; do
	/bin/sh "$1" || { s=$?; echo "shifter: module userhook $1 failed (status $s)" >&2; exit ` + strconv.Itoa(userhookExit) + `; }
	shift; n=$((n-1))
done
exec "$@"`
	out := []string{"/bin/sh", "-c", script, "shifter-userhook", strconv.Itoa(len(hooks))}
	out = append(out, hooks...)
	return append(out, argv...), nil
}

// addressSpaceExit is the status when the command's address-space limit
// cannot be set back.
const addressSpaceExit = ExitSetup

// wrapAddressSpace makes argv start under the caller's address-space
// limit (ulimit -v) again, when the runtime's processes run with a raised
// one (Early.AddressSpace): /bin/sh, inside the container and as the user,
// sets the soft limit and then the hard one (in KiB, rounded down, as
// ulimit counts) and execs the command. The limit is restored here, and
// not in the namespace init, because the init is a Go program too and
// would die at its next mapping under the caller's limit; the command is
// the first program that the limit is meant for. Without a raised limit
// argv is returned as it is.
func wrapAddressSpace(argv []string, l *Limit) ([]string, error) {
	if l == nil || l.Cur == Unlimited {
		return argv, nil
	}
	if len(argv) == 0 {
		return nil, errors.New("no command")
	}
	script := "ulimit -S -v " + strconv.FormatUint(l.Cur/1024, 10)
	if l.Max != Unlimited {
		script += " && ulimit -H -v " + strconv.FormatUint(l.Max/1024, 10)
	}
	script += ` || { echo "shifter: cannot set the address-space limit (ulimit -v) back for the command" >&2; exit ` +
		strconv.Itoa(addressSpaceExit) + `; }
exec "$@"`
	return append([]string{"/bin/sh", "-c", script, "shifter-ulimit"}, argv...), nil
}
