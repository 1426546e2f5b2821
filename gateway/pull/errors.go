// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/shifter-go/shifter/gateway/pull/flatten"
)

// Errors returned by this package; test with errors.Is. Other errors wrap
// the cause with context. No error string ever contains credentials.
var (
	// ErrNotFound: the registry does not know the repository, tag or
	// manifest, or an index has no manifest for the wanted platform.
	ErrNotFound = errors.New("image not found")
	// ErrUnauthorized: the registry answered 401 or 403.
	ErrUnauthorized = errors.New("registry denied access")
	// ErrTooLarge: the image exceeds a size or count limit.
	ErrTooLarge = flatten.ErrTooLarge
	// ErrInvalidRef: the image reference is malformed.
	ErrInvalidRef = errors.New("invalid image reference")
	// ErrInvalidImage: the registry served an invalid manifest, config or
	// blob (bad digest, size, media type, foreign layer, ...).
	ErrInvalidImage = errors.New("invalid image")
	// ErrTooSlow: a registry sent a blob slower than Options.MinSpeed.
	ErrTooSlow = errors.New("registry too slow")
)

// classify maps a registry error onto the package's sentinels, keeping
// the original error in the chain.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return fmt.Errorf("%w: %w", ErrUnauthorized, err)
		case te.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return fmt.Errorf("%w: %w", ErrUnauthorized, err)
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode:
				return fmt.Errorf("%w: %w", ErrNotFound, err)
			}
		}
	}
	return err
}
