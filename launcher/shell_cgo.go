// SPDX-License-Identifier: BSD-3-Clause

//go:build cgo && linux

package launcher

/*
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/types.h>

static int shell_of(uid_t uid, char *buf, size_t len, char **shell) {
	struct passwd pw, *res = NULL;
	int rc = getpwuid_r(uid, &pw, buf, len, &res);
	if (rc != 0) return rc;
	if (res == NULL) return -1;
	*shell = pw.pw_shell;
	return 0;
}
*/
import "C"

import "unsafe"

// loginShell returns the user's login shell from NSS (getpwuid_r, which
// os/user does not expose), or "" when unknown.
func loginShell(uid uint32) string {
	for size := C.size_t(4096); size <= 1<<20; size *= 4 {
		buf := (*C.char)(C.malloc(size))
		var shell *C.char
		rc := C.shell_of(C.uid_t(uid), buf, size, &shell)
		s := ""
		if rc == 0 && shell != nil {
			s = C.GoString(shell)
		}
		C.free(unsafe.Pointer(buf))
		if rc != C.ERANGE {
			return s
		}
	}
	return ""
}
