// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
)

// TestPullSurvivesGatewayRestart: while a pull is being polled the
// gateway goes away; pull keeps polling and reports the state of the
// gateway that comes back on the same socket, or gives up after the
// grace period when none does.
func TestPullSurvivesGatewayRestart(t *testing.T) {
	tests := []struct {
		name     string
		comeBack bool
		grace    time.Duration
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"gateway back", true, time.Minute, 0, "status: READY", ""},
		{"gateway gone", false, 2 * time.Second, 1, "gateway unreachable, retrying", "no gateway answered"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := unreachableGrace
			unreachableGrace = tc.grace
			t.Cleanup(func() { unreachableGrace = old })

			sock := filepath.Join(t.TempDir(), "gw.sock")
			serve := func(f *fakeGateway) *httptest.Server {
				l, err := net.Listen("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewUnstartedServer(f.handler())
				srv.Listener.Close()
				srv.Listener = l
				srv.Start()
				return srv
			}
			first := newFakeGateway()
			first.scripts["x"] = []api.Image{img("PENDING", "", 0, 0), img("PULLING", "", 1, 2)}
			srvA := serve(first)
			t.Cleanup(srvA.Close)
			second := newFakeGateway()
			second.scripts["x"] = []api.Image{img("READY", "", 0, 0)}
			go func() {
				for {
					first.mu.Lock()
					n := first.calls["x"]
					first.mu.Unlock()
					if n >= 2 {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				srvA.Close()
				os.Remove(sock)
				if !tc.comeBack {
					return
				}
				time.Sleep(1500 * time.Millisecond) // a few polls find nothing
				srvB := serve(second)
				t.Cleanup(srvB.Close)
			}()
			r := runEnv{home: t.TempDir()}.run(t, "--gateway", "unix:"+sock, "--system", "sys", "pull", "x")
			if r.code != tc.wantCode || !strings.Contains(r.stdout, tc.wantOut) || !strings.Contains(r.stderr, tc.wantErr) {
				t.Errorf("pull = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q", r.code, r.stdout, r.stderr, tc.wantCode, tc.wantOut, tc.wantErr)
			}
			if tc.comeBack && !strings.Contains(r.stdout, "gateway unreachable, retrying") {
				t.Errorf("stdout does not say the gateway was unreachable: %s", r.stdout)
			}
		})
	}
}
