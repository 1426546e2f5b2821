package squashreader

import (
	"bytes"
	"math/rand"
	"os"
	"testing"
	"time"
)

func TestZZHang(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, img := range fixtures(t) {
		seed, _ := os.ReadFile(img)
		for i := 0; i < 3000; i++ {
			d := append([]byte(nil), seed...)
			for k := 0; k < 1+rng.Intn(4); k++ {
				d[rng.Intn(len(d))] = byte(rng.Intn(256))
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				r, err := Open(bytes.NewReader(d), int64(len(d)), fuzzOpts)
				if err == nil {
					fuzzWalk(t, r)
					r.Close()
				}
			}()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				os.WriteFile("/tmp/hang.sqfs", d, 0o644)
				t.Fatalf("hang on %s iteration %d", img, i)
			}
		}
	}
}
