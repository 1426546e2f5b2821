// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestTricklingRegistry is issue 17 item 3 (the pull's half): a registry
// sending a blob a byte at a time held a worker for up to the job's
// timeout. The download is cut off once its average over the window falls
// below MinSpeed, not retried, and the error names the registry.
func TestTricklingRegistry(t *testing.T) {
	img := smallImage(t, "trickle")
	blobs := layerDigests(t, img)
	var armed atomic.Bool
	var blobGets atomic.Int32
	host := testRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !armed.Load() || !isBlobGet(r) || !strings.HasSuffix(r.URL.Path, blobs[1]) {
				next.ServeHTTP(w, r)
				return
			}
			blobGets.Add(1)
			rec := record(next, r)
			w.WriteHeader(rec.Code)
			for _, c := range rec.Body.Bytes() {
				if _, err := w.Write([]byte{c}); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		})
	})
	push(t, host+"/trickle:1", img)
	armed.Store(true)
	p := newPuller(t, func(o *Options) {
		o.MinSpeed, o.SpeedWindow, o.SpeedGrace = 16<<10, 400*time.Millisecond, 200*time.Millisecond
	}, host)
	_, err := build(t, p, host+"/trickle:1", nil)
	t.Logf("build: %v", err)
	if !errors.Is(err, ErrTooSlow) {
		t.Fatalf("build error = %v, want %v", err, ErrTooSlow)
	}
	if !strings.Contains(err.Error(), "registry "+host) || !strings.Contains(err.Error(), blobs[1]) {
		t.Errorf("error %q does not name the registry and the blob", err)
	}
	if n := blobGets.Load(); n != 1 {
		t.Errorf("the slow blob was requested %d times, want 1 (no retry)", n)
	}
}
