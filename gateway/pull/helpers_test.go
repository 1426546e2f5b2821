// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ent is one tar entry of a test layer.
type ent struct {
	name     string
	typ      byte // tar.TypeReg if 0
	body     string
	mode     int64
	link     string
	uid, gid int
	xattrs   map[string]string
}

func file(n, body string) ent { return ent{name: n, typ: tar.TypeReg, body: body, mode: 0o644} }
func dir(n string) ent        { return ent{name: n, typ: tar.TypeDir, mode: 0o755} }
func symlink(n, target string) ent {
	return ent{name: n, typ: tar.TypeSymlink, link: target, mode: 0o777}
}
func hardlink(n, target string) ent {
	return ent{name: n, typ: tar.TypeLink, link: target, mode: 0o644}
}
func whiteout(dirpath, n string) ent { return file(joinp(dirpath, ".wh."+n), "") }
func opaque(dirpath string) ent      { return file(joinp(dirpath, ".wh..wh..opq"), "") }
func joinp(d, n string) string {
	if d == "" {
		return n
	}
	return d + "/" + n
}

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// tarBytes builds an uncompressed tar from entries.
func tarBytes(t testing.TB, ents []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: e.mode, Linkname: e.link, Uid: e.uid, Gid: e.gid, ModTime: testTime, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if typ == tar.TypeChar || typ == tar.TypeBlock {
			h.Devmajor, h.Devminor = 1, 3
		}
		if len(e.xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("write tar header %q: %v", e.name, err)
		}
		if typ == tar.TypeReg {
			io.WriteString(tw, e.body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layer makes a gzip layer (or uncompressed/zstd by media type) from entries.
func layer(t testing.TB, mt types.MediaType, ents []ent) v1.Layer {
	t.Helper()
	b := tarBytes(t, ents)
	opts := []tarball.LayerOption{tarball.WithMediaType(mt)}
	if mt == types.OCILayerZStd {
		opts = append(opts, tarball.WithCompression("zstd"))
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// image assembles an image of the given manifest media type from layers
// of entries (oldest first).
func image(t testing.TB, mt types.MediaType, cfg v1.Config, plat *v1.Platform, layers ...[]ent) v1.Image {
	t.Helper()
	lmt := types.DockerLayer
	if mt == types.OCIManifestSchema1 {
		lmt = types.OCILayer
	}
	img := mutate.MediaType(empty.Image, mt)
	if mt == types.OCIManifestSchema1 {
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	for _, ents := range layers {
		var err error
		img, err = mutate.AppendLayers(img, layer(t, lmt, ents))
		if err != nil {
			t.Fatal(err)
		}
	}
	img, err := mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	if plat == nil {
		plat = &v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Created = v1.Time{Time: testTime}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testRegistry runs go-containerregistry's registry on 127.0.0.1, with
// optional middleware, and returns its host:port.
func testRegistry(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func push(t testing.TB, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func pushIndex(t testing.TB, ref string, idx v1.ImageIndex) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// newPuller returns a Puller allowing plain HTTP to hosts, with fast retries.
func newPuller(t testing.TB, mod func(*Options), hosts ...string) *Puller {
	t.Helper()
	o := Options{
		CacheDir:   t.TempDir(),
		Registries: map[string]Registry{},
		RetryDelay: 10 * time.Millisecond,
		Retries:    3,
		Logger:     testLogger(t),
	}
	for _, h := range hosts {
		o.Registries[h] = Registry{Insecure: true}
	}
	if mod != nil {
		mod(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("PULL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// basicAuthn is an authn.Authenticator for pushes in tests.
type basicAuthn struct{ user, pass string }

func (b *basicAuthn) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: b.user, Password: b.pass}, nil
}
