// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrInternalHost: a registry made the gateway contact an internal address
// (loopback, link-local, private, unspecified) or send its credentials to
// another host, and the site has not allowed it.
var ErrInternalHost = errors.New("refused to contact an internal host")

// ErrCredentialsRefused: a registry asked for its credentials to be sent
// to another host (a token realm elsewhere, a redirect) that the site has
// not listed in the registry's AuthHosts.
var ErrCredentialsRefused = errors.New("credentials refused for another host")

// maxRedirects bounds the redirect chain of one registry request.
const maxRedirects = 10

// internalPrefixes are the addresses no registry may make the gateway dial
// unless allowed: besides loopback, link-local, private (RFC 1918,
// fc00::/7), unspecified and multicast addresses (netip's predicates), the
// "this network" block, the shared address space (cloud metadata services
// live there too, e.g. 100.100.100.200) and limited broadcast.
var internalPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("255.255.255.255/32"),
}

func isInternal(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() ||
		a.IsPrivate() || a.IsUnspecified() || a.IsMulticast() {
		return true
	}
	for _, p := range internalPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// hostPolicy holds the site's exemptions (Options.AllowInternalHosts).
type hostPolicy struct {
	names    map[string]bool // lower-case host names and host:port
	prefixes []netip.Prefix
	proxies  sync.Map // host:port of proxies in use: always dialled
}

func newHostPolicy(entries []string) (*hostPolicy, error) {
	hp := &hostPolicy{names: map[string]bool{}}
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		if pfx, err := netip.ParsePrefix(e); err == nil {
			hp.prefixes = append(hp.prefixes, pfx.Masked())
			continue
		}
		if a, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
			hp.prefixes = append(hp.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		if e == "" || !reHost.MatchString(e) || !validPort(e) {
			return nil, fmt.Errorf("allowed internal host %q is not a HOST[:PORT], IP address or CIDR prefix", e)
		}
		hp.names[e] = true
	}
	return hp, nil
}

// nameAllowed reports whether hostport ("host:port", as dialled) is
// exempt by name.
func (hp *hostPolicy) nameAllowed(hostport string) bool {
	hostport = strings.ToLower(hostport)
	if _, ok := hp.proxies.Load(hostport); ok {
		return true
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	return hp.names[hostport] || hp.names[host]
}

func (hp *hostPolicy) addrAllowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range hp.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// pullScope is what one Resolve/Build may contact: the registry's own
// origin (always dialled, wherever it resolves) and the hosts its
// credentials may go to.
type pullScope struct {
	registry  map[string]bool // "host:port" of the registry, lower case (https and, if insecure, http)
	origins   map[string]bool // "host:port" that may receive credentials
	registryN string          // the registry as named, for messages
}

type scopeKey struct{}

// hostPort returns u's "host:port" in lower case, with the scheme's
// default port when u names none.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return strings.ToLower(net.JoinHostPort(u.Hostname(), port))
}

// withDefaultPort returns "host:port" for a registry or host entry
// ("host" means port 443, or 80 for a plain-HTTP registry).
func withDefaultPort(h string, insecure bool) string {
	u := &url.URL{Scheme: "https", Host: h}
	if insecure {
		u.Scheme = "http"
	}
	return hostPort(u)
}

// scope returns the pull scope of registry host reg (as in the reference).
func (p *Puller) scope(reg string) *pullScope {
	r := p.registry(reg)
	s := &pullScope{origins: map[string]bool{}, registryN: reg}
	hosts := []string{reg}
	if dockerHubHosts[reg] {
		for h := range dockerHubHosts {
			hosts = append(hosts, h)
		}
		hosts = append(hosts, dockerHubAuthHost)
	}
	for _, h := range hosts {
		s.origins[withDefaultPort(h, false)] = true
		if r.Insecure {
			s.origins[withDefaultPort(h, true)] = true
		}
	}
	for _, h := range r.AuthHosts {
		s.origins[withDefaultPort(h, false)] = true
	}
	s.registry = map[string]bool{withDefaultPort(reg, false): true}
	if r.Insecure {
		s.registry[withDefaultPort(reg, true)] = true
	}
	return s
}

// dockerHubAuthHost is Docker Hub's token realm, allowed to receive Docker
// Hub credentials without configuration.
const dockerHubAuthHost = "auth.docker.io"

// checkRequest enforces the pull scope and the redirect limit on one
// request, before anything is sent.
func (s *pullScope) checkRequest(req *http.Request) error {
	hops := 0
	for r := req; r.Response != nil && r.Response.Request != nil; r = r.Response.Request {
		hops++
	}
	if hops > maxRedirects {
		return fmt.Errorf("registry %s: stopped after %d redirects (at %s://%s%s)", s.registryN, maxRedirects,
			req.URL.Scheme, req.URL.Host, truncate(req.URL.Path, 100))
	}
	hp := hostPort(req.URL)
	if s.registry[hp] || s.origins[hp] {
		return nil
	}
	if req.Header.Get("Authorization") != "" || req.Header.Get("Cookie") != "" ||
		(req.Method != http.MethodGet && req.Method != http.MethodHead) {
		return fmt.Errorf("registry %s: %w: not sending credentials to %s, which is not the registry's host (a site that trusts it lists it in the registry's auth_hosts)",
			s.registryN, ErrCredentialsRefused, req.URL.Host)
	}
	return nil
}

// dialContext dials addr ("host:port" as the HTTP transport asks) and
// refuses, on the address actually connected to, internal addresses
// unless addr is the pull's own registry, a proxy, or allowed by the site.
func (p *Puller) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: p.opts.RequestTimeout, KeepAlive: 30 * time.Second}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	free := p.hosts.nameAllowed(addr)
	if s, ok := ctx.Value(scopeKey{}).(*pullScope); ok && s.registry[strings.ToLower(addr)] {
		free = true
	}
	if !free {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s: unparsable address %q", ErrInternalHost, host, address)
			}
			if isInternal(ap.Addr()) && !p.hosts.addrAllowed(ap.Addr()) {
				what := host + " resolves to " + ap.Addr().String() + ", an internal address"
				if a, err := netip.ParseAddr(host); err == nil && a.Unmap() == ap.Addr().Unmap() {
					what = host + " is an internal address"
				}
				return fmt.Errorf("%w: %s (loopback, link-local, private or unspecified); a site that trusts it lists it in allow_internal_hosts",
					ErrInternalHost, what)
			}
			return nil
		}
	}
	if p.opts.resolveHook != nil {
		if ip := p.opts.resolveHook(host); ip != "" {
			addr = net.JoinHostPort(ip, port)
		}
	}
	return d.DialContext(ctx, network, addr)
}

// proxyFunc is http.ProxyFromEnvironment, remembering the proxies so that
// dialContext lets them be internal: the proxy then reaches the registry,
// and it is the proxy's job to refuse internal destinations.
func (p *Puller) proxyFunc(req *http.Request) (*url.URL, error) {
	u, err := http.ProxyFromEnvironment(req)
	if u != nil {
		p.hosts.proxies.Store(hostPort(u), true)
	}
	return u, err
}

// validPort reports whether a "host[:port]" has no port or one in 1..65535.
func validPort(hostport string) bool {
	i := strings.LastIndex(hostport, ":")
	if i < 0 || strings.HasSuffix(hostport, "]") {
		return true
	}
	port := hostport[i+1:]
	if port == "" || len(port) > 5 || port[0] == '0' {
		return false
	}
	n := 0
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}
