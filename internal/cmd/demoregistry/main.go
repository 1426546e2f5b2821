// SPDX-License-Identifier: BSD-3-Clause

// Command demoregistry serves go-containerregistry's in-memory registry
// on a loopback address, seeded with the busybox image of
// internal/demoimage, until it is stopped (SIGINT, SIGTERM). It is the
// registry of `make demo`.
//
//	demoregistry [--listen 127.0.0.1:0] [--busybox /bin/busybox]
//	             [--repo demo/busybox:latest] [--ready-file FILE]
//
// When the image is pushed it writes HOST:PORT to --ready-file (renamed
// into place, so a reader never sees a partial file).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/pflag"

	"github.com/shifter-go/shifter/internal/demoimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "demoregistry: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := pflag.NewFlagSet("demoregistry", pflag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve the registry on (loopback)")
	busybox := fs.String("busybox", demoimage.DefaultBusybox, "the busybox binary to build the image from (Debian busybox-static)")
	repo := fs.String("repo", "demo/busybox:latest", "repository and tag to push the image as")
	ready := fs.String("ready-file", "", "write HOST:PORT here once the image is pushed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	addr := l.Addr().String()
	srv := &http.Server{
		Handler:           registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	defer srv.Close()

	img, info, err := demoimage.Image(*busybox)
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(addr+"/"+*repo, name.Insecure)
	if err != nil {
		return fmt.Errorf("parsing image name: %w", err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("computing digest: %w", err)
	}
	var layerSize int64
	if layers, err := img.Layers(); err == nil && len(layers) == 1 {
		layerSize, _ = layers[0].Size()
	}
	fmt.Fprintf(out, "registry on http://%s holds %s: BusyBox %s, %d applet links, one %d-byte gzip layer, manifest %s\n",
		addr, ref.Name(), info.Version, info.Applets, layerSize, digest)
	if *ready != "" {
		tmp := filepath.Join(filepath.Dir(*ready), "."+filepath.Base(*ready)+".tmp")
		if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o644); err != nil {
			return fmt.Errorf("writing ready file: %w", err)
		}
		if err := os.Rename(tmp, *ready); err != nil {
			return fmt.Errorf("writing ready file: %w", err)
		}
	}
	select {
	case <-ctx.Done():
		// A client connection that never sent a request (an HTTP
		// transport's spare dial) holds a graceful shutdown for 5 s:
		// after 1 s, close what is left.
		shut, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.Shutdown(shut); err != nil {
			return srv.Close()
		}
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serving: %w", err)
	}
}
