// SPDX-License-Identifier: BSD-3-Clause

package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
)

// Errors returned by this package; test with errors.Is.
var (
	// ErrNotFound: the gateway answered 404 (unknown image, or one the
	// caller may not see).
	ErrNotFound = errors.New("not found")
	// ErrDenied: the gateway answered 401 or 403.
	ErrDenied = errors.New("permission denied")
	// ErrUnreachable: no gateway answered (none could be connected to,
	// or no munge credential could be made for them).
	ErrUnreachable = errors.New("no gateway answered")
)

// maxResponse bounds the size of a response body read into memory.
const maxResponse = 64 << 20

// Error is a non-2xx answer of the gateway. It wraps ErrNotFound on 404
// and ErrDenied on 401 and 403.
type Error struct {
	Gateway    string // the gateway URL that answered
	StatusCode int
	Body       api.Error // the gateway's JSON error body
}

func (e *Error) Error() string {
	msg := e.Body.Message
	if msg == "" {
		msg = e.Body.Error
	}
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("gateway %s: %s (HTTP %d)", e.Gateway, msg, e.StatusCode)
}

func (e *Error) Unwrap() error {
	switch e.StatusCode {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrDenied
	}
	return nil
}

// endpoint is one gateway.
type endpoint struct {
	name string // the URL as given, for messages
	base string // scheme://host of request URLs
	unix bool   // reached through a unix socket: no munge
	http *http.Client
}

// Client talks to the image gateways. It is safe for concurrent use.
type Client struct {
	endpoints    []endpoint
	log          *slog.Logger
	mungeCommand string
	mungeSocket  string
	noMunge      bool
	dialTimeout  time.Duration
}

// Option configures a Client.
type Option func(*Client) error

// WithLogger sets the logger. Default is a logger that discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) error {
		if l == nil {
			return errors.New("nil logger")
		}
		c.log = l
		return nil
	}
}

// WithMungeSocket sets the munged socket used to make credentials
// (munge --socket). Default is munge's own default.
func WithMungeSocket(path string) Option {
	return func(c *Client) error {
		c.mungeSocket = path
		return nil
	}
}

// WithMungeCommand sets the munge executable. Default is "munge" from PATH.
func WithMungeCommand(path string) Option {
	return func(c *Client) error {
		if path == "" {
			return errors.New("empty munge command")
		}
		c.mungeCommand = path
		return nil
	}
}

// WithoutMunge sends no authentication header to TCP gateways (for a
// gateway that accepts anonymous requests). Registry credentials are
// then refused for TCP gateways rather than sent in clear. Default is to
// munge.
func WithoutMunge() Option {
	return func(c *Client) error {
		c.noMunge = true
		return nil
	}
}

// WithDialTimeout bounds the time to connect to one gateway before the
// next one is tried. Default is 5s.
func WithDialTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("dial timeout %v is not positive", d)
		}
		c.dialTimeout = d
		return nil
	}
}

// New returns a client of the gateways at urls, tried in order.
func New(urls []string, opts ...Option) (*Client, error) {
	c := &Client{
		log:          slog.New(slog.DiscardHandler),
		mungeCommand: "munge",
		dialTimeout:  5 * time.Second,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, fmt.Errorf("configuring gateway client: %w", err)
		}
	}
	if len(urls) == 0 {
		return nil, errors.New("configuring gateway client: no gateway URL")
	}
	for _, u := range urls {
		ep, err := c.newEndpoint(u)
		if err != nil {
			return nil, err
		}
		c.endpoints = append(c.endpoints, ep)
	}
	return c, nil
}

func (c *Client) newEndpoint(raw string) (endpoint, error) {
	dialer := &net.Dialer{Timeout: c.dialTimeout, KeepAlive: 30 * time.Second}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // gateways are site-local; never route them through a proxy
	if path, ok := strings.CutPrefix(raw, "unix:"); ok {
		path = strings.TrimPrefix(path, "//") // accept unix:///path too
		if path == "" || !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, ".") {
			return endpoint{}, fmt.Errorf("parsing gateway URL %q: unix socket path must be absolute or ./relative", raw)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		}
		return endpoint{name: raw, base: "http://gateway", unix: true, http: newHTTPClient(tr)}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("parsing gateway URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return endpoint{}, fmt.Errorf("parsing gateway URL %q: want http://HOST:PORT, https://HOST:PORT or unix:PATH", raw)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return endpoint{}, fmt.Errorf("parsing gateway URL %q: want no path, query or user", raw)
	}
	tr.DialContext = dialer.DialContext
	return endpoint{name: raw, base: u.Scheme + "://" + u.Host, http: newHTTPClient(tr)}, nil
}

// newHTTPClient returns a client that never follows redirects: the
// gateway API has none, and following one would send the munge
// credential (and the registry credentials in it) to another server.
func newHTTPClient(tr http.RoundTripper) *http.Client {
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// apiPath builds a request path from segments. Each segment is escaped,
// except that "/" inside a tag stays a path separator, as Shifter's
// {tag:path} routes expect.
func apiPath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		parts := strings.Split(s, "/")
		for i, p := range parts {
			if i > 0 {
				b.WriteByte('/')
			}
			b.WriteString(url.PathEscape(p))
		}
	}
	b.WriteByte('/')
	return b.String()
}

// request is one API call, replayable on each endpoint.
type request struct {
	method string
	path   string
	// body returns the request body for an endpoint (which may differ:
	// credentials go in the body only over a unix socket), or nil.
	body func(ep *endpoint) ([]byte, error)
	// payload returns the munge payload for a TCP endpoint (nil: none).
	payload func() ([]byte, error)
}

// do sends r to each endpoint in turn until one answers, and decodes a
// 2xx answer's JSON into out (if not nil).
func (c *Client) do(ctx context.Context, r request, out any) error {
	var errs []error
	for i := range c.endpoints {
		ep := &c.endpoints[i]
		resp, err := c.send(ctx, ep, r)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s %s: %w", r.method, r.path, ctx.Err())
			}
			var ce connError
			if !errors.As(err, &ce) {
				return err
			}
			c.log.Debug("gateway unreachable", "gateway", ep.name, "err", ce.err)
			errs = append(errs, fmt.Errorf("%s: %w", ep.name, ce.err))
			continue
		}
		return c.decode(ep, resp, r, out)
	}
	return fmt.Errorf("%s %s: %w: %w", r.method, r.path, ErrUnreachable, errors.Join(errs...))
}

// connError marks an error where no HTTP response came back.
type connError struct{ err error }

func (e connError) Error() string { return e.err.Error() }

func (c *Client) send(ctx context.Context, ep *endpoint, r request) (*http.Response, error) {
	var body io.Reader
	if r.body != nil {
		b, err := r.body(ep)
		if err != nil {
			return nil, err
		}
		if b != nil {
			body = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequestWithContext(ctx, r.method, ep.base+r.path, body)
	if err != nil {
		return nil, fmt.Errorf("making request %s %s: %w", r.method, r.path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if !ep.unix && !c.noMunge {
		var payload []byte
		if r.payload != nil {
			if payload, err = r.payload(); err != nil {
				return nil, err
			}
		}
		cred, err := c.munge(ctx, payload)
		if err != nil {
			// Local, but a later unix-socket gateway needs no munge.
			return nil, connError{fmt.Errorf("making munge credential: %w", err)}
		}
		req.Header.Set("authentication", cred)
	}
	c.log.Debug("gateway request", "gateway", ep.name, "method", r.method, "path", r.path)
	resp, err := ep.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL of a unix socket is made up: do not show it
		}
		return nil, connError{err}
	}
	return resp, nil
}

func (c *Client) decode(ep *endpoint, resp *http.Response, r request, out any) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("%s %s: reading response: %w", r.method, r.path, err)
	}
	if len(b) > maxResponse {
		return fmt.Errorf("%s %s: response larger than %d bytes", r.method, r.path, maxResponse)
	}
	c.log.Debug("gateway response", "method", r.method, "path", r.path, "status", resp.StatusCode, "body", string(b))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &Error{Gateway: ep.name, StatusCode: resp.StatusCode}
		if json.Unmarshal(b, &e.Body) != nil || e.Body.Error == "" && e.Body.Message == "" {
			e.Body = api.Error{Status: resp.StatusCode, Error: http.StatusText(resp.StatusCode), Message: shorten(string(b))}
		}
		return e
	}
	if out == nil {
		return nil
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if _, ok := out.(*json.RawMessage); ok {
			return nil
		}
		return fmt.Errorf("%s %s: empty response", r.method, r.path)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decoding response: %w", r.method, r.path, err)
	}
	return nil
}

// shorten keeps a non-JSON error body readable in a message.
func shorten(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// Lookup returns the READY image that tag names. The error wraps
// ErrNotFound when there is none (or the caller may not see it).
func (c *Client) Lookup(ctx context.Context, system, itype, tag string) (*api.Image, error) {
	var img api.Image
	if err := c.do(ctx, request{method: http.MethodGet, path: apiPath("api", "lookup", system, itype, tag)}, &img); err != nil {
		return nil, fmt.Errorf("looking up %s:%s: %w", itype, tag, err)
	}
	return &img, nil
}

// Pull asks the gateway to pull tag and returns the image record as it
// stands (usually not yet READY; call Pull again to poll, as Shifter's
// shifterimg does). req carries the ACLs and registry credentials; over
// TCP the credentials travel only inside the munge credential, over a
// unix socket in the body.
func (c *Client) Pull(ctx context.Context, system, itype, tag string, req api.PullRequest) (*api.Image, error) {
	creds := req.AuthorizedLocations
	r := request{
		method: http.MethodPost,
		path:   apiPath("api", "pull", system, itype, tag),
		body: func(ep *endpoint) ([]byte, error) {
			body := req
			if !ep.unix {
				if len(creds) > 0 && c.noMunge {
					return nil, fmt.Errorf("pulling from %s: registry credentials need munge over TCP", ep.name)
				}
				body.AuthorizedLocations = nil
			}
			if body.AllowedUIDs == "" && body.AllowedGIDs == "" && len(body.AuthorizedLocations) == 0 {
				return nil, nil
			}
			return json.Marshal(body)
		},
	}
	if len(creds) > 0 {
		r.payload = func() ([]byte, error) {
			return json.Marshal(mungePayload{AuthorizedLocations: creds})
		}
	}
	var img api.Image
	if err := c.do(ctx, r, &img); err != nil {
		return nil, fmt.Errorf("pulling %s:%s: %w", itype, tag, err)
	}
	return &img, nil
}

// List returns the READY images of system the caller may see.
func (c *Client) List(ctx context.Context, system string) ([]api.Image, error) {
	var l api.List
	if err := c.do(ctx, request{method: http.MethodGet, path: apiPath("api", "list", system)}, &l); err != nil {
		return nil, fmt.Errorf("listing images of %s: %w", system, err)
	}
	return l.List, nil
}

// Queue returns the records of system's pulls in progress or failed.
func (c *Client) Queue(ctx context.Context, system string) ([]api.Image, error) {
	var l api.List
	if err := c.do(ctx, request{method: http.MethodGet, path: apiPath("api", "queue", system)}, &l); err != nil {
		return nil, fmt.Errorf("listing pull queue of %s: %w", system, err)
	}
	return l.List, nil
}

// Expire marks the image that tag names as expired (admins only). It
// returns the gateway's JSON answer undecoded.
func (c *Client) Expire(ctx context.Context, system, itype, tag string) (json.RawMessage, error) {
	var out json.RawMessage
	if err := c.do(ctx, request{method: http.MethodPost, path: apiPath("api", "expire", system, itype, tag)}, &out); err != nil {
		return nil, fmt.Errorf("expiring %s:%s: %w", itype, tag, err)
	}
	return out, nil
}

// AutoExpire removes system's expired images (admins only). It returns
// the gateway's JSON answer undecoded.
func (c *Client) AutoExpire(ctx context.Context, system string) (json.RawMessage, error) {
	var out json.RawMessage
	if err := c.do(ctx, request{method: http.MethodPost, path: apiPath("api", "autoexpire", system)}, &out); err != nil {
		return nil, fmt.Errorf("auto-expiring images of %s: %w", system, err)
	}
	return out, nil
}
