// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/internal/testutil"
)

// BenchmarkConcurrentPulls pulls a fresh 8 MiB image (real puller,
// go-containerregistry's registry on 127.0.0.1, mksquashfs) with N
// clients asking for the same tag at once; compare N=1 with N>1: one
// download and one conversion are shared, so the time per pull should
// stay close to N=1.
func BenchmarkConcurrentPulls(b *testing.B) {
	testutil.RequireTool(b, "mksquashfs")
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			reg := newTestRegistry(b)
			c := testConfig(b)
			c.Registries = map[string]Registry{reg.host: {Insecure: true}}
			if err := c.Validate(); err != nil {
				b.Fatal(err)
			}
			p, err := NewPuller(c, nil)
			if err != nil {
				b.Fatal(err)
			}
			tg := startGW(b, c, p)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				files := map[string]string{}
				for f := range 64 {
					files[fmt.Sprintf("d/f%d", f)] = strings.Repeat(fmt.Sprintf("%d.%d;", i, f), 128<<10/8)
				}
				tag := fmt.Sprintf("%s/bench/n%d:i%d", reg.host, n, i)
				reg.push(b, fmt.Sprintf("bench/n%d:i%d", n, i), nil, layer(b, files))
				b.StartTimer()
				var wg sync.WaitGroup
				for range n {
					wg.Add(1)
					go func() { defer wg.Done(); tg.pull(alice, tag, nil) }()
				}
				wg.Wait()
				if im := tg.wait(alice, tag); im.Status != api.StateReady {
					b.Fatalf("%s: %s %q", tag, im.Status, im.StatusMessage)
				}
			}
		})
	}
}
