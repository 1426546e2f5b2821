// SPDX-License-Identifier: BSD-3-Clause

// Package demoimage builds a small real container image from Debian's
// busybox-static, for the demo and for end-to-end tests: /bin/busybox,
// a symbolic link for each of its applets (from busybox --list-full) and
// an /etc/os-release. Nothing is downloaded.
package demoimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DefaultBusybox is where Debian's busybox-static installs the binary.
const DefaultBusybox = "/bin/busybox"

// OSRelease is the content of the image's /etc/os-release.
func OSRelease(busyboxVersion string) string {
	return fmt.Sprintf(`PRETTY_NAME="Shifter demo image (BusyBox %s from Debian busybox-static)"
NAME="shifter-demo"
ID=shifter-demo
VERSION_ID=1
HOME_URL="https://github.com/shifter-go/shifter"
`, busyboxVersion)
}

// Info describes what Busybox built.
type Info struct {
	Version string // busybox version ("1.35.0")
	Applets int    // applet links made
}

// Layer returns the image's single layer as an uncompressed tar stream:
// the busybox binary at bin/busybox, applet links to /bin/busybox and
// etc/os-release. Entries are owned by root, dated with the binary's
// modification time, so the same binary gives the same layer.
func Layer(busybox string) ([]byte, Info, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, Info{}, fmt.Errorf("reading busybox: %w", err)
	}
	fi, err := os.Stat(busybox)
	if err != nil {
		return nil, Info{}, fmt.Errorf("reading busybox: %w", err)
	}
	mtime := fi.ModTime().Truncate(time.Second)
	list, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return nil, Info{}, fmt.Errorf("listing busybox applets: %w", err)
	}
	info := Info{Version: busyboxVersion(busybox)}

	dirs := map[string]bool{"bin": true, "etc": true, "tmp": true, "root": true, "usr": true}
	var links []string
	for _, l := range strings.Fields(string(list)) {
		l = strings.TrimPrefix(path.Clean("/"+l), "/")
		if l == "" || l == "bin/busybox" || strings.Contains(l, "..") {
			continue
		}
		links = append(links, l)
		for d := path.Dir(l); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	slices.Sort(links)
	info.Applets = len(links)
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	slices.Sort(dirList) // parents sort before their children

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := func(h *tar.Header) error {
		h.ModTime, h.Uname, h.Gname, h.Format = mtime, "root", "root", tar.FormatPAX
		return tw.WriteHeader(h)
	}
	for _, d := range dirList {
		mode := int64(0o755)
		switch d {
		case "tmp":
			mode = 0o1777
		case "root":
			mode = 0o700
		}
		if err := hdr(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode}); err != nil {
			return nil, Info{}, fmt.Errorf("writing layer: %w", err)
		}
	}
	if err := hdr(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))}); err != nil {
		return nil, Info{}, fmt.Errorf("writing layer: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, Info{}, fmt.Errorf("writing layer: %w", err)
	}
	for _, l := range links {
		if err := hdr(&tar.Header{Typeflag: tar.TypeSymlink, Name: l, Linkname: "/bin/busybox", Mode: 0o777}); err != nil {
			return nil, Info{}, fmt.Errorf("writing layer: %w", err)
		}
	}
	osr := []byte(OSRelease(info.Version))
	if err := hdr(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/os-release", Mode: 0o644, Size: int64(len(osr))}); err != nil {
		return nil, Info{}, fmt.Errorf("writing layer: %w", err)
	}
	if _, err := tw.Write(osr); err != nil {
		return nil, Info{}, fmt.Errorf("writing layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, Info{}, fmt.Errorf("writing layer: %w", err)
	}
	return buf.Bytes(), info, nil
}

// busyboxVersion reads "BusyBox v1.35.0 (Debian ...)" from the binary's
// help, or returns "unknown".
func busyboxVersion(busybox string) string {
	out, _ := exec.Command(busybox, "--help").CombinedOutput()
	first, _, _ := strings.Cut(string(out), "\n")
	if f := strings.Fields(first); len(f) >= 2 && f[0] == "BusyBox" {
		return strings.TrimPrefix(f[1], "v")
	}
	return "unknown"
}

// Image returns a Docker schema 2 image of the host's platform made of
// Layer(busybox), with PATH set and /bin/sh as its command.
func Image(busybox string) (v1.Image, Info, error) {
	layerTar, info, err := Layer(busybox)
	if err != nil {
		return nil, Info{}, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, Info{}, fmt.Errorf("making layer: %w", err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd:        []string{"/bin/sh"},
			WorkingDir: "/",
			Labels:     map[string]string{"org.opencontainers.image.description": "Shifter demo: BusyBox " + info.Version + " from Debian busybox-static"},
		},
	})
	if err != nil {
		return nil, Info{}, fmt.Errorf("making image config: %w", err)
	}
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, Info{}, fmt.Errorf("adding layer: %w", err)
	}
	return img, info, nil
}
