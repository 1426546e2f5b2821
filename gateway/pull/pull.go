// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shifter-go/shifter/imagestore"
)

// Registry holds the settings of one registry host ("host" or "host:port").
type Registry struct {
	// Insecure allows plain HTTP to this registry. Default false: HTTPS only.
	Insecure bool
	// CAFile is a PEM file of CA certificates trusted (in addition to the
	// system's) for this registry only. Default "": system roots.
	CAFile string
	// AuthHosts are other hosts ("host" for port 443, or "host:port") that
	// may receive this registry's credentials, such as a token realm on
	// another host. Default none: credentials go to the registry's own
	// host only (Docker Hub's auth.docker.io is built in).
	AuthHosts []string
}

// Options configures a Puller. Zero fields take the documented defaults
// (Retries: zero means none).
type Options struct {
	// CacheDir holds the verified layer blob cache (CacheDir/blobs/sha256/<hex>)
	// and partial downloads (CacheDir/blobs/tmp, emptied by New: one Puller
	// per CacheDir at a time). Required.
	CacheDir string
	// WorkDir holds temporary files. Default: CacheDir/tmp.
	WorkDir string
	// Registries holds per-registry settings by host. Default: none.
	Registries map[string]Registry
	// DefaultRegistry is the registry of references that name none.
	// Default "": Docker Hub (index.docker.io).
	DefaultRegistry string
	// MaxImageSize bounds the sum of an image's compressed layers, each
	// layer's uncompressed size, and the flattened tree. Default 20 GiB.
	MaxImageSize int64
	// MaxEntries bounds the tar entries read over all layers of an image.
	// Default 4,000,000.
	MaxEntries int
	// MaxLayers bounds the layers of an image. Default 512.
	MaxLayers int
	// MaxConfigSize bounds the image config blob. Default 8 MiB.
	MaxConfigSize int64
	// MksquashfsArgs are extra mksquashfs options, e.g. {"-comp", "zstd"}.
	// Default none (mksquashfs defaults: gzip, 128 KiB blocks).
	MksquashfsArgs []string
	// Mksquashfs is the mksquashfs executable. Default "mksquashfs" on PATH.
	Mksquashfs string
	// Platform selects the image of a manifest list or index, as
	// "os/arch[/variant]". Default "linux/amd64".
	Platform string
	// Retries is how many times a failed registry request or blob download
	// is retried on transient errors: 0 means no retry (the zero value is
	// meant literally, as the gateway's "retries": 0). Negative is an error.
	Retries int
	// RetryDelay is the first backoff delay (doubled per retry, capped at
	// 32x, with jitter). Default 1s.
	RetryDelay time.Duration
	// RequestTimeout bounds each manifest/token request, response headers
	// of blob requests, dials and TLS handshakes. Default 60s.
	RequestTimeout time.Duration
	// MinSpeed is the slowest acceptable blob download in bytes/s,
	// averaged over SpeedWindow once SpeedGrace has passed since the
	// blob's response headers: a registry sending less is cut off with
	// ErrTooSlow (not retried), so it cannot hold a worker until the job's
	// own timeout. Default 64 KiB/s.
	MinSpeed int64
	// SpeedWindow is the interval MinSpeed is averaged over. Default 30s.
	SpeedWindow time.Duration
	// SpeedGrace is how long a blob download may be slower than MinSpeed
	// at its start (connection and TCP slow start). Default 10s.
	SpeedGrace time.Duration
	// Jobs is how many blobs are downloaded at once per Build. Default 3.
	Jobs int
	// AllowInternalHosts are hosts ("host" or "host:port"), IP addresses
	// and CIDR prefixes that may be contacted although they are, or
	// resolve to, internal addresses (loopback, link-local such as
	// 169.254.169.254, private, unspecified). Whatever else a registry
	// points at (token realms, redirects, blob URLs) is refused on the
	// address actually dialled. The registry named in a reference is always
	// contacted. Default none.
	AllowInternalHosts []string
	// Logger receives the package's logs. Default: discard.
	Logger *slog.Logger

	// resolveHook, in tests, maps a host name to the IP address dialled
	// instead of resolving it ("" resolves normally).
	resolveHook func(host string) string
}

// Puller pulls images. It is safe for concurrent use; concurrent Builds
// share blob downloads.
type Puller struct {
	opts            Options
	log             *slog.Logger
	defaultRegistry string
	platform        v1.Platform
	transport       *guard
	hosts           *hostPolicy
	blobDir         string
	flightMu        sync.Mutex
	flights         map[string]*flight // by blob hex digest
}

// New returns a Puller; it creates CacheDir and WorkDir.
func New(opts Options) (*Puller, error) {
	if opts.CacheDir == "" {
		return nil, fmt.Errorf("new puller: CacheDir is required")
	}
	if opts.WorkDir == "" {
		opts.WorkDir = filepath.Join(opts.CacheDir, "tmp")
	}
	if opts.MaxImageSize <= 0 {
		opts.MaxImageSize = 20 << 30
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 4_000_000
	}
	if opts.MaxLayers <= 0 {
		opts.MaxLayers = 512
	}
	if opts.MaxConfigSize <= 0 {
		opts.MaxConfigSize = 8 << 20
	}
	if opts.Mksquashfs == "" {
		opts.Mksquashfs = "mksquashfs"
	}
	if opts.Platform == "" {
		opts.Platform = "linux/amd64"
	}
	if opts.Retries < 0 {
		return nil, fmt.Errorf("new puller: retries %d: want >= 0", opts.Retries)
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 60 * time.Second
	}
	if opts.MinSpeed <= 0 {
		opts.MinSpeed = 64 << 10
	}
	if opts.SpeedWindow <= 0 {
		opts.SpeedWindow = 30 * time.Second
	}
	if opts.SpeedGrace <= 0 {
		opts.SpeedGrace = 10 * time.Second
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 3
	}
	p := &Puller{opts: opts, log: opts.Logger, flights: map[string]*flight{}}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	plat, err := v1.ParsePlatform(opts.Platform)
	if err != nil || plat.OS == "" || plat.Architecture == "" {
		return nil, fmt.Errorf("new puller: platform %q is not os/arch[/variant]", opts.Platform)
	}
	p.platform = *plat
	p.defaultRegistry = opts.DefaultRegistry
	if p.defaultRegistry == "" || dockerHubHosts[p.defaultRegistry] {
		p.defaultRegistry = name.DefaultRegistry
	}
	if !reHost.MatchString(p.defaultRegistry) || !validPort(p.defaultRegistry) {
		return nil, fmt.Errorf("new puller: default registry %q is not HOST[:PORT]", p.defaultRegistry)
	}
	if p.hosts, err = newHostPolicy(opts.AllowInternalHosts); err != nil {
		return nil, fmt.Errorf("new puller: %w", err)
	}
	for host, r := range opts.Registries {
		for _, h := range r.AuthHosts {
			if !reHost.MatchString(h) || !validPort(h) {
				return nil, fmt.Errorf("new puller: registry %s: auth host %q is not HOST[:PORT]", host, h)
			}
		}
	}
	def, err := p.newTransport("")
	if err != nil {
		return nil, fmt.Errorf("new puller: %w", err)
	}
	g := &guard{p: p, def: def, perHost: map[string]http.RoundTripper{}}
	for host, r := range opts.Registries {
		if r.CAFile == "" {
			continue
		}
		t, err := p.newTransport(r.CAFile)
		if err != nil {
			return nil, fmt.Errorf("new puller: registry %s: %w", host, err)
		}
		g.perHost[host] = t
	}
	p.transport = g
	p.blobDir = filepath.Join(opts.CacheDir, "blobs", "sha256")
	for _, d := range []string{p.blobDir, p.tmpDir(), opts.WorkDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("new puller: %w", err)
		}
	}
	// Partial downloads of a previous process (killed mid-pull) go.
	if ents, err := os.ReadDir(p.tmpDir()); err == nil {
		for _, e := range ents {
			os.Remove(filepath.Join(p.tmpDir(), e.Name()))
		}
	}
	return p, nil
}

// registry returns the settings of host (zero if unconfigured).
func (p *Puller) registry(host string) Registry {
	if r, ok := p.opts.Registries[host]; ok {
		return r
	}
	if dockerHubHosts[host] {
		for h := range dockerHubHosts {
			if r, ok := p.opts.Registries[h]; ok {
				return r
			}
		}
	}
	return Registry{}
}

// Resolved is an image resolved to one platform manifest, ready to Build.
type Resolved struct {
	// Ref is the normalized, fully qualified reference
	// ("index.docker.io/library/ubuntu:22.04").
	Ref string
	// ID is the hex sha256 of the platform image manifest: the image id.
	ID string
	// Digest is "sha256:" + ID.
	Digest string
	// IndexDigest is the digest of the manifest list or index the image
	// was picked from, "" if the reference named an image manifest.
	IndexDigest string
	// Platform is the platform of the image ("linux/amd64").
	Platform string
	// Size is the sum of the compressed layer sizes: the bytes to download.
	Size int64

	ref      name.Reference
	repo     name.Repository
	opts     []remote.Option
	creds    map[string]string
	img      v1.Image
	manifest *v1.Manifest
	config   *v1.ConfigFile
}

// Resolve fetches ref's manifest (choosing the configured platform's
// manifest in a list or index) and the image config, and validates both.
// creds maps registry hosts to "user:password" ("default" is the default
// registry); without credentials for the registry, the gateway's own
// docker config (authn.DefaultKeychain) is used.
func (p *Puller) Resolve(ctx context.Context, ref string, creds map[string]string) (*Resolved, error) {
	r, err := p.parseRef(ref)
	if err != nil {
		return nil, err
	}
	// Manifests are bounded per request by guard; the config is a blob
	// (no per-request deadline there), so bound the whole resolution.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(p.opts.Retries+1)*2*p.opts.RequestTimeout+
		time.Duration(p.opts.MaxConfigSize/p.opts.MinSpeed)*time.Second)
	defer cancel()
	opts := p.remoteOptions(ctx, r.Context().Registry, creds)
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return nil, fmt.Errorf("get manifest of %s: %w", r, classify(err))
	}
	res := &Resolved{Ref: r.Name(), ref: r, repo: r.Context(), opts: opts, creds: maps.Clone(creds)}
	kind, err := checkManifest(desc.MediaType, desc.Manifest)
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", r, err)
	}
	var img v1.Image
	if kind == kindIndex {
		res.IndexDigest = desc.Digest.String()
		img, err = p.pickPlatform(ctx, res, desc.Manifest, 0)
		if err != nil {
			return nil, fmt.Errorf("select %s from %s: %w", p.opts.Platform, r, err)
		}
	} else {
		img, err = desc.Image()
		if err != nil {
			return nil, fmt.Errorf("get image %s: %w", r, classify(err))
		}
	}
	if err := p.loadImage(res, img); err != nil {
		return nil, fmt.Errorf("image %s: %w", r, err)
	}
	return res, nil
}

func (p *Puller) remoteOptions(ctx context.Context, reg name.Registry, creds map[string]string) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(p.transport.forPull(reg.RegistryStr())),
		remote.WithPlatform(p.platform),
		// guard and the blob loop retry; ggcr must not multiply attempts.
		remote.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Steps: 1}),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
		remote.WithUserAgent("shifter-gateway"),
	}
	if c, ok := lookupCreds(creds, reg.RegistryStr(), reg.RegistryStr() == p.defaultRegistry); ok {
		user, pass, _ := strings.Cut(c, ":")
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	} else {
		opts = append(opts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	return opts
}

func lookupCreds(creds map[string]string, host string, isDefault bool) (string, bool) {
	if c, ok := creds[host]; ok && c != "" {
		return c, true
	}
	if dockerHubHosts[host] {
		for h := range dockerHubHosts {
			if c, ok := creds[h]; ok && c != "" {
				return c, true
			}
		}
	}
	if c, ok := creds["default"]; ok && c != "" && isDefault {
		return c, true
	}
	return "", false
}

type manifestKind int

const (
	kindImage manifestKind = iota
	kindIndex
)

// rawManifest has the fields of both manifests and indexes, to catch
// documents that are both.
type rawManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType"`
	Config        json.RawMessage   `json:"config"`
	Layers        []json.RawMessage `json:"layers"`
	Manifests     []json.RawMessage `json:"manifests"`
	FSLayers      json.RawMessage   `json:"fsLayers"`
}

// checkManifest validates a manifest document served with media type mt
// (the Content-Type) and says whether it is an image or an index.
func checkManifest(mt types.MediaType, b []byte) (manifestKind, error) {
	var m rawManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, fmt.Errorf("%w: parse manifest: %v", ErrInvalidImage, err)
	}
	if m.MediaType != "" && mt != "" && m.MediaType != mt {
		return 0, fmt.Errorf("%w: manifest says media type %q, served as %q", ErrInvalidImage, m.MediaType, mt)
	}
	if mt == "" {
		mt = m.MediaType
	}
	if m.SchemaVersion != 2 {
		return 0, fmt.Errorf("%w: manifest schema version %d (only 2 is supported)", ErrInvalidImage, m.SchemaVersion)
	}
	if m.Manifests != nil && (m.Layers != nil || m.Config != nil) {
		return 0, fmt.Errorf("%w: manifest has both layers and manifests", ErrInvalidImage)
	}
	switch mt {
	case types.DockerManifestList, types.OCIImageIndex:
		if m.Manifests == nil {
			return 0, fmt.Errorf("%w: index without manifests", ErrInvalidImage)
		}
		return kindIndex, nil
	case types.DockerManifestSchema2, types.OCIManifestSchema1:
		if m.Manifests != nil || m.Config == nil {
			return 0, fmt.Errorf("%w: image manifest without config or with manifests", ErrInvalidImage)
		}
		return kindImage, nil
	}
	return 0, fmt.Errorf("%w: unsupported manifest media type %q", ErrInvalidImage, mt)
}

// maxIndexDepth bounds nested indexes.
const maxIndexDepth = 2

// pickPlatform selects the configured platform's image in an index. A
// child without a platform in the index is matched by its config.
func (p *Puller) pickPlatform(ctx context.Context, res *Resolved, raw []byte, depth int) (v1.Image, error) {
	idx, err := v1.ParseIndexManifest(strings.NewReader(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("%w: parse index: %v", ErrInvalidImage, err)
	}
	var unknown []v1.Descriptor
	for _, d := range idx.Manifests {
		switch d.MediaType {
		case types.DockerManifestSchema2, types.OCIManifestSchema1:
			if d.Platform == nil {
				unknown = append(unknown, d)
				continue
			}
			if d.Platform.Satisfies(p.platform) {
				return p.childImage(res, d)
			}
		case types.DockerManifestList, types.OCIImageIndex:
			if depth+1 >= maxIndexDepth || (d.Platform != nil && !d.Platform.Satisfies(p.platform)) {
				continue
			}
			child, err := remote.Get(res.repo.Digest(d.Digest.String()), res.opts...)
			if err != nil {
				return nil, classify(err)
			}
			if kind, err := checkManifest(child.MediaType, child.Manifest); err != nil || kind != kindIndex {
				continue
			}
			if img, err := p.pickPlatform(ctx, res, child.Manifest, depth+1); err == nil {
				return img, nil
			}
		}
	}
	for _, d := range unknown {
		img, err := p.childImage(res, d)
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, classify(err)
		}
		if cf.Platform() != nil && cf.Platform().Satisfies(p.platform) {
			return img, nil
		}
	}
	return nil, fmt.Errorf("%w: no manifest for platform %s", ErrNotFound, p.opts.Platform)
}

func (p *Puller) childImage(res *Resolved, d v1.Descriptor) (v1.Image, error) {
	img, err := remote.Image(res.repo.Digest(d.Digest.String()), res.opts...)
	if err != nil {
		return nil, fmt.Errorf("get image %s: %w", d.Digest, classify(err))
	}
	return img, nil
}

// loadImage validates img's manifest and config and records them in res.
func (p *Puller) loadImage(res *Resolved, img v1.Image) error {
	raw, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("get manifest: %w", classify(err))
	}
	mt, err := img.MediaType()
	if err != nil {
		return fmt.Errorf("get manifest: %w", classify(err))
	}
	if kind, err := checkManifest(mt, raw); err != nil {
		return err
	} else if kind != kindImage {
		return fmt.Errorf("%w: index where an image manifest was expected", ErrInvalidImage)
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("%w: parse manifest: %v", ErrInvalidImage, err)
	}
	dig, err := img.Digest()
	if err != nil {
		return fmt.Errorf("digest manifest: %w", err)
	}
	if len(m.Layers) > p.opts.MaxLayers {
		return fmt.Errorf("%w: %d layers, limit %d", ErrTooLarge, len(m.Layers), p.opts.MaxLayers)
	}
	if m.Config.Size < 0 || m.Config.Size > p.opts.MaxConfigSize {
		return fmt.Errorf("%w: config of %d bytes, limit %d", ErrTooLarge, m.Config.Size, p.opts.MaxConfigSize)
	}
	var total int64
	for i, l := range m.Layers {
		if err := checkLayer(l); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		// Compare before adding: sizes near 2^63 must not overflow the sum.
		if l.Size > p.opts.MaxImageSize-total {
			return fmt.Errorf("%w: layers exceed %d bytes", ErrTooLarge, p.opts.MaxImageSize)
		}
		total += l.Size
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("get config: %w", classify(err))
	}
	if cf.RootFS.Type != "layers" {
		return fmt.Errorf("%w: config rootfs type %q", ErrInvalidImage, cf.RootFS.Type)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("%w: %d layers but %d diff_ids", ErrInvalidImage, len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	for i, d := range cf.RootFS.DiffIDs {
		if d.Algorithm != "sha256" || len(d.Hex) != 64 {
			return fmt.Errorf("%w: diff_id %d is not sha256", ErrInvalidImage, i)
		}
	}
	res.img, res.manifest, res.config = img, m, cf
	res.ID, res.Digest, res.Size = dig.Hex, dig.String(), total
	res.Platform = p.opts.Platform
	if pl := cf.Platform(); pl != nil && pl.OS != "" {
		res.Platform = pl.String()
	}
	return nil
}

// checkLayer validates a layer descriptor.
func checkLayer(l v1.Descriptor) error {
	switch l.MediaType {
	case types.DockerLayer, types.DockerUncompressedLayer, types.OCILayer, types.OCILayerZStd,
		types.OCIUncompressedLayer, types.OCIRestrictedLayer, types.OCIUncompressedRestrictedLayer,
		types.DockerForeignLayer:
	default:
		return fmt.Errorf("%w: unsupported layer media type %q", ErrInvalidImage, l.MediaType)
	}
	if len(l.URLs) > 0 {
		return fmt.Errorf("%w: foreign layer %s with external urls refused", ErrInvalidImage, l.Digest)
	}
	if l.Digest.Algorithm != "sha256" || !imagestore.ValidID(l.Digest.Hex) {
		return fmt.Errorf("%w: layer digest %q is not sha256", ErrInvalidImage, l.Digest)
	}
	if l.Size <= 0 {
		return fmt.Errorf("%w: layer %s size %d", ErrInvalidImage, l.Digest, l.Size)
	}
	return nil
}

func (p *Puller) tmpDir() string { return filepath.Join(p.opts.CacheDir, "blobs", "tmp") }
