// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// The distribution reference grammar, stricter than name.ParseReference
// (which accepts "..", empty components and more).
var (
	reComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)
	reTag       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	reDigest    = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	reHost      = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$`)
)

// maxRefLen bounds a whole reference (distribution allows 255 for the name).
const maxRefLen = 512

// dockerHubHosts are the names of Docker Hub's registry.
var dockerHubHosts = map[string]bool{
	"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true,
}

// splitRef checks ref against the reference grammar. It returns the
// registry host ("" if ref names none), the repository path and the tag
// or digest ("" for neither).
func splitRef(ref string) (host, repo, tag, digest string, err error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: %q: %s", ErrInvalidRef, truncate(ref, 80), why)
	}
	if ref == "" {
		return "", "", "", "", bad("empty")
	}
	if len(ref) > maxRefLen {
		return "", "", "", "", bad("too long")
	}
	for _, c := range ref {
		if c < 0x21 || c > 0x7e {
			return "", "", "", "", bad("non-printable or non-ASCII character")
		}
	}
	rest := ref
	if i := strings.Index(rest, "@"); i >= 0 {
		rest, digest = rest[:i], rest[i+1:]
		if !reDigest.MatchString(digest) {
			return "", "", "", "", bad("digest is not sha256:<64 hex>")
		}
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		rest, tag = rest[:i], rest[i+1:]
		if !reTag.MatchString(tag) {
			return "", "", "", "", bad("malformed tag")
		}
	}
	comps := strings.Split(rest, "/")
	if len(comps) > 1 {
		c := comps[0]
		if strings.ContainsAny(c, ".:") || c == "localhost" || c != strings.ToLower(c) {
			if !reHost.MatchString(c) {
				return "", "", "", "", bad("malformed registry host")
			}
			if !validPort(c) {
				return "", "", "", "", bad("registry port out of range 1..65535")
			}
			host, comps = c, comps[1:]
		}
	}
	for _, c := range comps {
		if !reComponent.MatchString(c) {
			return "", "", "", "", bad("malformed repository component")
		}
	}
	repo = strings.Join(comps, "/")
	if len(repo) > 255 {
		return "", "", "", "", bad("repository name too long")
	}
	return host, repo, tag, digest, nil
}

// parseRef parses ref strictly and returns a go-containerregistry
// reference on the right registry (the default one when ref names none),
// with plain HTTP allowed only for registries configured Insecure.
func (p *Puller) parseRef(ref string) (name.Reference, error) {
	host, repo, tag, digest, err := splitRef(ref)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = p.defaultRegistry
	}
	if dockerHubHosts[host] && !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	s := host + "/" + repo
	switch {
	case digest != "":
		s += "@" + digest
	case tag != "":
		s += ":" + tag
	default:
		s += ":latest"
	}
	var opts []name.Option
	if p.registry(host).Insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(s, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRef, err)
	}
	return r, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
