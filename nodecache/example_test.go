// SPDX-License-Identifier: BSD-3-Clause

package nodecache_test

import (
	"context"
	"errors"
	"io/fs"
	"log"
	"time"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/nodecache"
	"github.com/shifter-go/shifter/squashreader"
)

// How shifter-mount serves an image of the store through the cache.
func Example_file() {
	const storeDir, id = "/images", "3f1c0000000000000000000000000000000000000000000000000000000000e9"
	size, err := nodecache.ParseSize("20G") // nodeCacheSize
	if err != nil {
		log.Fatal(err)
	}
	c, err := nodecache.Open("/var/cache/shifter", nodecache.Options{Size: size})
	if err != nil {
		log.Fatal(err) // e.g. "cache /var/cache/shifter in use by PID 1234"
	}
	defer c.Close()
	sq, _ := imagestore.Paths(storeDir, id)
	src, f, err := nodecache.OpenFileSource(sq)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	cl, err := imagestore.LoadChunkList(storeDir, id)
	if errors.Is(err, fs.ErrNotExist) {
		cl = nil // an older image: read through uncached
	} else if err != nil {
		log.Fatal(err)
	}
	im, err := c.Image(id, src, cl)
	if err != nil {
		log.Fatal(err)
	}
	r, err := squashreader.Open(im, im.Size(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	// ... serve r over FUSE; print c.Stats() for --stats.
}

// How shifterd fetches an image over HTTP, records a start-up trace and
// warms another node from it.
func Example_http() {
	const id = "3f1c0000000000000000000000000000000000000000000000000000000000e9"
	c, err := nodecache.Open("/var/cache/shifter", nodecache.Options{Size: 100 << 30})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	src, err := nodecache.NewHTTPSource("https://gateway.example:7777/images", id, nil)
	if err != nil {
		log.Fatal(err)
	}
	cl, err := src.ChunkList(context.Background()) // from the gateway itself, never a mirror
	if err != nil {
		log.Fatal(err)
	}
	im, err := c.Image(id, src, cl)
	if err != nil {
		log.Fatal(err)
	}
	tr := im.StartTrace(1 << 16)
	// ... mount and run; then, once time.Since(tr.LastRead()) > 10*time.Second:
	_ = time.Second
	order := im.StopTrace().Chunks() // publish as <id>.trace
	// On another node: the traced chunks first, then the rest.
	if err := im.Warm(context.Background(), order, func(done, total int64) {}); err != nil {
		log.Fatal(err)
	}
	if err := im.Warm(context.Background(), nil, nil); err != nil {
		log.Fatal(err)
	}
	_ = tr
}
