// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Listen opens a listener for "HOST:PORT" or "unix:PATH". A unix socket
// is made mode 0666 (callers are identified by SO_PEERCRED) in a
// directory created 0755; a stale socket at PATH is replaced, any other
// file is an error.
func Listen(addr string) (net.Listener, error) {
	p, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return l, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if st, err := os.Lstat(p); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listen: %s exists and is not a socket", p)
		}
		if c, err := net.Dial("unix", p); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen: %s: another gateway is serving it", p)
		}
		os.Remove(p)
	}
	l, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := os.Chmod(p, 0o666); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	return l, nil
}

// Serve serves the API on the listeners until ctx is done, then shuts
// the servers down gracefully.
func (g *Gateway) Serve(ctx context.Context, ls []net.Listener) error {
	srv := &http.Server{
		Handler:           g.Handler(),
		ConnContext:       connContext,
		ReadHeaderTimeout: 30 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
	}
	errc := make(chan error, len(ls))
	for _, l := range ls {
		g.log.Info("serving", "addr", l.Addr().Network()+":"+l.Addr().String())
		go func() { errc <- srv.Serve(l) }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			srv.Close()
			return fmt.Errorf("serve: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
