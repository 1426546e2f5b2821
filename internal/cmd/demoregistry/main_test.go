// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shifter-go/shifter/internal/demoimage"
	"github.com/shifter-go/shifter/internal/testutil"
)

// TestServesImage starts the demo registry, pulls the image it announces
// through its ready file with go-containerregistry, and stops it.
func TestServesImage(t *testing.T) {
	if _, err := os.Stat(demoimage.DefaultBusybox); err != nil {
		testutil.Unavailable(t, "test needs "+demoimage.DefaultBusybox+" (Debian busybox-static)")
	}
	ready := filepath.Join(t.TempDir(), "addr")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"--ready-file", ready, "--repo", "x/y:1"}, &out) }()
	var addr string
	for i := 0; addr == ""; i++ {
		if b, err := os.ReadFile(ready); err == nil {
			addr = strings.TrimSpace(string(b))
			break
		}
		select {
		case err := <-errc:
			t.Fatalf("run() ended early: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if i == 400 {
			t.Fatal("no ready file after 20 s")
		}
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("registry address %q, want loopback", addr)
	}
	ref, err := name.ParseReference(addr+"/x/y:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	d, _ := img.Digest()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run() after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run() did not return after cancel")
	}
	// out is read only once run has returned.
	if !strings.Contains(out.String(), d.String()) {
		t.Errorf("announcement %q does not name the digest %s", out.String(), d)
	}
}
