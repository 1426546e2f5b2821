// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/shifter-go/shifter/imagestore"
)

// Errors a Puller reports (wrapped); the gateway maps them to messages.
var (
	ErrNotFound     = errors.New("image not found in registry")
	ErrUnauthorized = errors.New("registry denied access")
	ErrTooLarge     = errors.New("image too large")
)

// Resolved is an image reference resolved against its registry.
type Resolved struct {
	ID  string // hex sha256 of the (platform) manifest
	Ref string // normalized reference
	// Impl is the puller's own resolution, passed back to Build.
	Impl any
}

// ProgressFunc reports a build's state ("PULLING", "CONVERSION"), a
// message, and bytes done of total.
type ProgressFunc func(state, msg string, done, total int64)

// Puller fetches and converts images (gateway/pull in production, fakes
// in tests).
type Puller interface {
	// Resolve fetches the manifest of ref with the given credentials
	// (registry host or "default" -> "user:password"; nil: anonymous).
	Resolve(ctx context.Context, ref string, creds map[string]string) (*Resolved, error)
	// Build writes the image's squashfs into out and returns its metadata
	// (ID, env, entrypoint, cmd, workdir, user, labels).
	Build(ctx context.Context, r *Resolved, out *os.File, progress ProgressFunc) (*imagestore.Metadata, error)
}

// Image types the gateway serves.
const itypeDocker = "docker"

// maxRefLen bounds an image reference.
const maxRefLen = 512

// ParseTag validates an image reference from a URL strictly and returns
// its normalized form (imagestore.NormalizeTag). It rejects "..", "%",
// control characters, uppercase repositories, tags longer than 128
// characters and malformed digests.
func ParseTag(raw string) (string, error) {
	if raw == "" || len(raw) > maxRefLen {
		return "", fmt.Errorf("image reference: length %d out of range", len(raw))
	}
	for _, r := range raw {
		if r <= ' ' || r > '~' || r == '%' || r == '\\' {
			return "", fmt.Errorf("image reference %q: character %q not allowed", raw, r)
		}
	}
	if strings.Contains(raw, "..") || strings.Contains(raw, "//") || strings.HasPrefix(raw, "/") ||
		strings.HasSuffix(raw, "/") || strings.HasPrefix(raw, "-") {
		return "", fmt.Errorf("image reference %q: malformed path", raw)
	}
	norm := imagestore.NormalizeTag(raw)
	// name's strict mode wants a registry, a repository and a tag or
	// digest spelled out: expand Docker Hub's defaults for the check.
	full := norm
	first, rest, hasSlash := strings.Cut(norm, "/")
	if !hasSlash || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		if !hasSlash {
			full = "library/" + norm
		}
		full = name.DefaultRegistry + "/" + full
	} else if rest == "" {
		return "", fmt.Errorf("image reference %q: no repository", raw)
	}
	if _, err := name.ParseReference(full, name.StrictValidation); err != nil {
		return "", fmt.Errorf("image reference %q: %w", raw, err)
	}
	return norm, nil
}
