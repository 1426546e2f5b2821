// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"context"
	"net"

	"golang.org/x/sys/unix"
)

// connContext records a unix socket peer's credentials (SO_PEERCRED) in
// the connection's context. TCP connections get nothing.
func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil || cred == nil {
		return ctx
	}
	id := &Identity{Authenticated: true, UID: cred.Uid, GID: cred.Gid, Source: "peercred"}
	resolveIdentity(id)
	return context.WithValue(ctx, connIdentityKey{}, id)
}
