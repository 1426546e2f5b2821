// SPDX-License-Identifier: BSD-3-Clause

package nodecache

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestChurnDiskUsage writes 3x the cap through the cache (16 MiB images
// of 256 KiB chunks, warmed one after the other, with random re-reads of
// the recent ones so that live chunks are scattered over the value log)
// and samples the cache directory's size after each image: it must stay
// within the documented bound, Size*(1+DiskOverhead) + DiskSlack plus one
// value-log file. The log line gives the figure measured. NODECACHE_CHURN_CAP (a size) and
// NODECACHE_CHURN_FACTOR change the figures for a longer measurement.
func TestChurnDiskUsage(t *testing.T) {
	capacity := int64(64 << 20)
	if s := os.Getenv("NODECACHE_CHURN_CAP"); s != "" {
		v, err := ParseSize(s)
		if err != nil {
			t.Fatal(err)
		}
		capacity = v
	}
	factor := 3
	if s := os.Getenv("NODECACHE_CHURN_FACTOR"); s != "" {
		fmt.Sscan(s, &factor)
	}
	const chunk = 256 << 10
	const imageSize = 16 << 20
	c := openTest(t, t.TempDir(), Options{Size: capacity, MemorySize: -1})
	rng := rand.New(rand.NewPCG(1, 2))
	var images []*Image
	var peak int64
	written := int64(0)
	for k := 0; written < int64(factor)*capacity; k++ {
		data := randBytes(uint64(k), imageSize)
		im, err := c.Image(testID(fmt.Sprint("churn", k)), &memSource{data: data}, chunksOf(t, data, chunk))
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, im)
		if err := im.Warm(context.Background(), nil, nil); err != nil {
			t.Fatal(err)
		}
		written += imageSize
		// Re-read some chunks of the last few images: they move to the
		// front of the LRU list, so eviction leaves holes in old files.
		p := make([]byte, 100)
		for range 32 {
			old := images[max(0, len(images)-4)+rng.IntN(min(4, len(images)))]
			old.ReadAt(p, rng.Int64N(old.Size()-100))
		}
		du, err := c.DiskUsage()
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, du)
	}
	st := c.Stats()
	last, _ := c.DiskUsage()
	c.runGC() // what one more GC round gives back once the churn stops
	du, _ := c.DiskUsage()
	t.Logf("cap %d MiB, wrote %d MiB: peak disk use %.1f MiB (%.2f x cap), last %.1f MiB, %.1f MiB after one more GC; cached %.1f MiB, evicted %.1f MiB, not stored %d chunks",
		capacity>>20, written>>20, float64(peak)/(1<<20), float64(peak)/float64(capacity), float64(last)/(1<<20), float64(du)/(1<<20),
		float64(st.Bytes)/(1<<20), float64(st.EvictedBytes)/(1<<20), st.NotStored)
	if st.Bytes > capacity {
		t.Errorf("cached bytes %d over the cap %d", st.Bytes, capacity)
	}
	limit := capacity + int64(float64(capacity)*DiskOverhead) + DiskSlack + c.opts.ValueLogFileSize
	if peak > limit {
		t.Errorf("peak disk use %d over the bound %d", peak, limit)
	}
}

// TestDiskBudget: while the directory is over its disk budget (here
// because of a foreign 40 MiB file), chunks are served but not stored;
// once it is back under, they are stored again.
func TestDiskBudget(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir, Options{Size: 8 << 20, MemorySize: -1})
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, bytes.Repeat([]byte{1}, 40<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	data := randBytes(12, 200*cs)
	src := &memSource{data: data}
	im, err := c.Image(testID("budget"), src, chunksOf(t, data, cs))
	if err != nil {
		t.Fatal(err)
	}
	checkRead(t, im, data[:100*cs], cs)
	c.Flush()
	st := c.Stats()
	if st.NotStored == 0 || st.Chunks >= 100 {
		t.Fatalf("over the budget: %+v, want chunks not stored", st)
	}
	os.Remove(junk)
	checkRead(t, im, data, cs)
	c.Flush()
	if st2 := c.Stats(); st2.Chunks <= st.Chunks+50 {
		t.Fatalf("back under the budget: %+v, want chunks stored again", st2)
	}
}
