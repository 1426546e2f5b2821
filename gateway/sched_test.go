// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"testing"

	"github.com/shifter-go/shifter/gateway/api"
)

func TestTagRegistry(t *testing.T) {
	for tag, want := range map[string]string{
		"ubuntu:22.04":                     "hub",
		"corp/app:1":                       "hub",
		"registry.example.org/app:1":       "registry.example.org",
		"Registry.Example.org:5000/a/b:1":  "registry.example.org:5000",
		"localhost/app:1":                  "localhost",
		"127.0.0.1:5000/app@sha256:" + idA: "127.0.0.1:5000",
	} {
		if got := tagRegistry(tag, "hub"); got != want {
			t.Errorf("tagRegistry(%q) = %q, want %q", tag, got, want)
		}
		k := string(key(pfxJob, "sys", "docker", tag, "u1001"))
		if got := jobRegistry(k, "hub"); got != want {
			t.Errorf("jobRegistry(%q) = %q, want %q", k, got, want)
		}
	}
}

func TestPickJob(t *testing.T) {
	k := func(tag string) string { return string(key(pfxJob, "sys", "docker", tag, "")) }
	slow1, slow2, fast, hub := k("slow.org/a:1"), k("slow.org/b:1"), k("fast.org/c:1"), k("ubuntu:1")
	limit := func(reg string) int {
		if reg == "fast.org" {
			return 3
		}
		return 1
	}
	for _, tc := range []struct {
		name    string
		queue   []string
		running map[string]int
		want    int
	}{
		{"empty queue", nil, nil, -1},
		{"oldest first", []string{slow1, fast}, nil, 0},
		{"a registry at its limit is passed over", []string{slow1, slow2, fast}, map[string]int{"slow.org": 1}, 2},
		{"every registry at its limit", []string{slow1, slow2}, map[string]int{"slow.org": 1}, -1},
		{"per-registry limit", []string{fast, hub}, map[string]int{"fast.org": 2}, 0},
		{"per-registry limit reached", []string{fast, hub}, map[string]int{"fast.org": 3}, 1},
		{"Docker Hub names count as the default registry", []string{hub, fast}, map[string]int{"index.docker.io": 1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pickJob(tc.queue, "index.docker.io", tc.running, limit); got != tc.want {
				t.Errorf("pickJob = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestRegistryLimit(t *testing.T) {
	for _, tc := range []struct {
		workers, global, perReg int
		want                    int
	}{
		{2, 0, 0, 1}, {1, 0, 0, 1}, {8, 0, 0, 7}, {8, 3, 0, 3}, {8, 3, 5, 5},
	} {
		g := &Gateway{cfg: &Config{Workers: tc.workers, RegistryConcurrency: tc.global,
			Registries: map[string]Registry{"r.org": {Concurrency: tc.perReg}}}}
		if got := g.registryLimit("r.org"); got != tc.want {
			t.Errorf("%+v: limit %d, want %d", tc, got, tc.want)
		}
	}
}

// TestSlowRegistryDoesNotStarve reproduces #17 item 3: two pulls from a
// registry that trickles bytes held both default workers, and every
// other registry's pull stayed PENDING. With the per-registry limit, a
// pull from another registry completes while they stall.
func TestSlowRegistryDoesNotStarve(t *testing.T) {
	p := newFakePuller()
	stall := make(chan struct{})
	p.stall = map[string]chan struct{}{"slow.example.org": stall}
	p.started = make(chan string, 10)
	for _, tag := range []string{"slow.example.org/a:1", "slow.example.org/b:1", "slow.example.org/c:1", "fast.example.org/x:1"} {
		p.add(tag, fakeImage{})
	}
	c := testConfig(t)
	c.Workers = 2
	tg := startGW(t, c, p)
	for _, tag := range []string{"slow.example.org/a:1", "slow.example.org/b:1", "slow.example.org/c:1"} {
		tg.pull(alice, tag, nil)
	}
	<-p.started // a slow build holds a worker
	if im := tg.pullWait(alice, "fast.example.org/x:1", nil); im.Status != api.StateReady {
		t.Fatalf("pull from another registry while one stalls: %s %q", im.Status, im.StatusMessage)
	}
	var st api.Image
	tg.do("GET", "/api/pull/sys/docker/slow.example.org/b:1/", alice, nil, &st)
	if st.Status != api.StatePending {
		t.Errorf("second pull from the stalled registry: %s, want PENDING (at its limit)", st.Status)
	}
	close(stall)
	for _, tag := range []string{"slow.example.org/a:1", "slow.example.org/b:1", "slow.example.org/c:1"} {
		if im := tg.wait(alice, tag); im.Status != api.StateReady {
			t.Errorf("%s after the registry recovered: %s %q", tag, im.Status, im.StatusMessage)
		}
	}
}
