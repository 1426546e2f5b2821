// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// guard is the bottom http.RoundTripper under go-containerregistry's
// auth transports. It
//   - keeps each pull in its scope (pullScope.checkRequest): at most
//     maxRedirects redirects, credentials only to the registry's own
//     origin and its AuthHosts; the dialer refuses internal addresses
//     but the registry's own (Puller.dialContext);
//   - refuses plain HTTP except to registries configured Insecure (ggcr
//     itself falls back to HTTP for loopback and private addresses);
//   - uses the registry's CA file for that registry's host only;
//   - bounds every non-blob request (manifests, tokens, pings) with
//     RequestTimeout and caps its body at maxMetaBody;
//   - retries idempotent requests on transient failures (5xx, 408, 429
//     honouring Retry-After, connection errors) with bounded exponential
//     backoff and jitter.
type guard struct {
	p       *Puller
	def     http.RoundTripper            // system roots
	perHost map[string]http.RoundTripper // registries with a CA file
	scope   *pullScope                   // set on the per-pull copy (forPull)
}

// forPull returns the guard of one pull from registry reg.
func (g *guard) forPull(reg string) *guard {
	c := *g
	c.scope = g.p.scope(reg)
	return &c
}

var _ http.RoundTripper = (*guard)(nil)

// maxMetaBody caps the body of every response that is not a blob:
// manifests, indexes, token responses, error documents.
const maxMetaBody = 4 << 20

// maxHeaderBytes caps the response headers of every request (with the
// redirect cap and maxMetaBody, what one request may make the gateway
// hold).
const maxHeaderBytes = 1 << 20

func (p *Puller) newTransport(caFile string) (http.RoundTripper, error) {
	o := &p.opts
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = o.RequestTimeout
	t.TLSHandshakeTimeout = o.RequestTimeout
	t.MaxResponseHeaderBytes = maxHeaderBytes
	t.DialContext = p.dialContext
	t.Proxy = p.proxyFunc
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read registry CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read registry CA file %s: no PEM certificate", caFile)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return t, nil
}

func isBlobRequest(r *http.Request) bool {
	return strings.Contains(r.URL.Path, "/blobs/sha256:")
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if g.scope == nil {
		return nil, fmt.Errorf("%s %s: registry request outside a pull", req.Method, req.URL.Redacted())
	}
	if err := g.scope.checkRequest(req); err != nil {
		return nil, err
	}
	req = req.WithContext(context.WithValue(req.Context(), scopeKey{}, g.scope))
	host := req.URL.Host
	if req.URL.Scheme != "https" && !g.p.registry(host).Insecure {
		return nil, fmt.Errorf("%s %s://%s%s: plain HTTP not allowed for this registry", req.Method, req.URL.Scheme, host, req.URL.Path)
	}
	rt := g.def
	if t, ok := g.perHost[host]; ok {
		rt = t
	}
	blob := isBlobRequest(req)
	idempotent := (req.Method == http.MethodGet || req.Method == http.MethodHead) && req.Body == nil
	attempts := 1
	if idempotent {
		attempts += g.p.opts.Retries
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			if err := sleepCtx(req.Context(), g.p.backoff(i, lastErr)); err != nil {
				return nil, err
			}
		}
		r, cancel := req, func() {}
		if !blob {
			r, cancel = withTimeout(req, g.p.opts.RequestTimeout)
		}
		resp, err := rt.RoundTrip(r)
		if err != nil {
			cancel()
			lastErr = err
			if req.Context().Err() != nil || !transientNetErr(err) {
				return nil, err
			}
			g.p.log.Debug("retrying registry request", "method", req.Method, "host", host, "path", req.URL.Path, "attempt", i+1, "err", err)
			continue
		}
		if idempotent && i+1 < attempts && retryStatus(resp.StatusCode) {
			lastErr = &statusErr{code: resp.StatusCode, retryAfter: retryAfter(resp.Header.Get("Retry-After"))}
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			cancel()
			g.p.log.Debug("retrying registry request", "method", req.Method, "host", host, "path", req.URL.Path, "attempt", i+1, "status", resp.StatusCode)
			continue
		}
		if !blob {
			resp.Body = &cappedBody{rc: resp.Body, left: maxMetaBody, cancel: cancel}
		}
		return resp, nil
	}
	return nil, lastErr
}

func withTimeout(req *http.Request, d time.Duration) (*http.Request, func()) {
	ctx, cancel := context.WithTimeout(req.Context(), d)
	return req.WithContext(ctx), cancel
}

// statusErr is a retryable HTTP status seen by guard.
type statusErr struct {
	code       int
	retryAfter time.Duration
}

func (e *statusErr) Error() string { return "HTTP status " + strconv.Itoa(e.code) }

func retryStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests ||
		code == http.StatusInternalServerError || code == http.StatusBadGateway ||
		code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// maxRetryAfter caps a registry's Retry-After.
const maxRetryAfter = 60 * time.Second

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter)
	}
	return 0
}

// backoff returns the delay before retry attempt n (1-based): exponential
// from RetryDelay, capped, with ±50% jitter, and at least the registry's
// Retry-After.
func (p *Puller) backoff(n int, last error) time.Duration {
	d := p.opts.RetryDelay << min(n-1, 10)
	d = min(d, p.opts.RetryDelay*32)
	d = d/2 + rand.N(d+1)
	var se *statusErr
	if errors.As(last, &se) && se.retryAfter > d {
		d = se.retryAfter
	}
	return d
}

// transientNetErr reports whether err is a network failure worth a retry.
func transientNetErr(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var se *statusErr
	return errors.As(err, &se)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// cappedBody fails reads past its limit instead of silently truncating.
type cappedBody struct {
	rc     io.ReadCloser
	left   int64
	cancel func()
}

func (c *cappedBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		if n, _ := c.rc.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("registry response body larger than %d bytes: %w", maxMetaBody, ErrTooLarge)
		}
		return 0, io.EOF
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.rc.Read(b)
	c.left -= int64(n)
	return n, err
}

func (c *cappedBody) Close() error {
	err := c.rc.Close()
	c.cancel()
	return err
}
