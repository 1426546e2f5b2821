// SPDX-License-Identifier: BSD-3-Clause

package demoimage

import (
	"archive/tar"
	"bytes"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/shifter-go/shifter/internal/testutil"
)

func requireBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(DefaultBusybox); err != nil {
		testutil.Unavailable(t, "test needs "+DefaultBusybox+" (Debian busybox-static)")
	}
}

// TestImageRoundTrip pushes the image to go-containerregistry's registry,
// pulls it back, flattens it and checks the tree with GNU tar and by
// running the extracted busybox through its applet links.
func TestImageRoundTrip(t *testing.T) {
	requireBusybox(t)
	img, info, err := Image(DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	if info.Applets < 100 || info.Version == "unknown" {
		t.Errorf("Image() info = %+v, want a version and the applets of Debian's busybox", info)
	}
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/demo/busybox:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("remote.Write: %v", err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("remote.Image: %v", err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Errorf("pulled digest %v, pushed %v", d, want)
	}
	// Same input, same image.
	again, _, err := Image(DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := again.Digest(); d != want {
		t.Errorf("second build digest %v, first %v: not reproducible", d, want)
	}

	var flat bytes.Buffer
	rc := mutate.Extract(got)
	if _, err := io.Copy(&flat, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	names := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(flat.Bytes()))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[strings.TrimSuffix(h.Name, "/")] = h
	}
	for n, check := range map[string]func(h *tar.Header) bool{
		"bin/busybox":    func(h *tar.Header) bool { return h.Typeflag == tar.TypeReg && h.Mode&0o111 != 0 },
		"bin/sh":         func(h *tar.Header) bool { return h.Typeflag == tar.TypeSymlink && h.Linkname == "/bin/busybox" },
		"bin/cat":        func(h *tar.Header) bool { return h.Typeflag == tar.TypeSymlink },
		"etc/os-release": func(h *tar.Header) bool { return h.Typeflag == tar.TypeReg },
		"tmp":            func(h *tar.Header) bool { return h.Typeflag == tar.TypeDir && h.Mode&0o1777 == 0o1777 },
	} {
		if h, ok := names[n]; !ok || !check(h) {
			t.Errorf("flattened image entry %q = %+v, not as expected", n, h)
		}
	}

	// GNU tar extracts it; the applet link runs busybox as cat.
	tarBin := testutil.RequireTool(t, "tar")
	dir := t.TempDir()
	x := exec.Command(tarBin, "-x", "-C", dir)
	x.Stdin = bytes.NewReader(flat.Bytes())
	if out, err := x.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	// The link is absolute (/bin/busybox inside the image): run the
	// extracted binary under the applet's name.
	cat := exec.Command(filepath.Join(dir, "bin/busybox"), "cat", filepath.Join(dir, "etc/os-release"))
	out, err := cat.Output()
	if err != nil {
		t.Fatalf("busybox cat: %v", err)
	}
	if string(out) != OSRelease(info.Version) {
		t.Errorf("os-release = %q, want %q", out, OSRelease(info.Version))
	}
}
