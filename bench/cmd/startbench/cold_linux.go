// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
	"github.com/shifter-go/shifter/imagestore"
)

// coldState is one state of the node before a start with the page cache
// dropped: no node cache, the cache warmed from the start-up trace only,
// or warmed with the whole image.
type coldState struct {
	Name       string    `json:"name"`
	WarmSecs   []float64 `json:"warm_seconds,omitempty"` // the warm-up's duration
	WarmBytes  []int64   `json:"warm_source_bytes,omitempty"`
	StartSecs  []float64 `json:"start_seconds"`
	StartBytes []int64   `json:"start_bytes_from_image"` // read from the image file by the start
}

// coldResults is issue 12's cold-start part.
type coldResults struct {
	ImageBytes  int64        `json:"image_bytes"`
	TraceChunks int          `json:"trace_chunks"`
	ChunkCount  int64        `json:"chunk_count"`
	States      []*coldState `json:"states"`
}

// coldShifterd measures the python start through shifterd with the page
// cache dropped before each start, in three states of the node cache,
// reps times each: a fresh daemon (and cache) every time, so that the
// only mount is the start's own.
func coldShifterd(ctx context.Context, tmp, store, udi, binDir, id string, py []string, reps int) (*coldResults, error) {
	shifter := filepath.Join(binDir, "shifter")
	meta, err := imagestore.Load(store, id)
	if err != nil {
		return nil, err
	}
	// The store's image gets a chunk list, as the gateway publishes it.
	sq, _ := imagestore.Paths(store, id)
	cl, err := imagestore.ComputeChunkListFile(sq, imagestore.DefaultChunkSize)
	if err != nil {
		return nil, err
	}
	if err := imagestore.WriteChunkList(store, id, cl); err != nil {
		return nil, err
	}
	if err := imagestore.WriteMetadata(store, meta); err != nil {
		return nil, err
	}
	res := &coldResults{ImageBytes: meta.Size, ChunkCount: cl.Count()}
	// Record the trace: one start on a fresh node.
	os.Remove(imagestore.TracePath(store, id))
	d, err := startColdDaemon(ctx, tmp, store, udi, binDir, true, 0)
	if err != nil {
		return nil, err
	}
	if _, err := timed(ctx, d.env(), shifter, append([]string{"--image=id:" + id}, py...)...); err != nil {
		d.stop()
		return nil, err
	}
	var tr *imagestore.Trace
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if tr, err = imagestore.LoadTrace(store, meta); err == nil {
			break
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("no start-up trace after 30 s: %v", err)
		}
	}
	d.stop()
	res.TraceChunks = len(tr.Chunks)

	for _, st := range []*coldState{{Name: "no cache"}, {Name: "trace warm-up"}, {Name: "full warm-up"}} {
		res.States = append(res.States, st)
		for rep := range reps {
			d, err := startColdDaemon(ctx, tmp, store, udi, binDir, st.Name != "no cache", rep+1)
			if err != nil {
				return nil, err
			}
			if st.Name != "no cache" {
				args := []string{"--config", d.conf, "warm", "id:" + id}
				if st.Name == "trace warm-up" {
					args = []string{"--config", d.conf, "warm", "--trace-only", "id:" + id}
				}
				el, err := timed(ctx, nil, filepath.Join(binDir, "shifterd"), args...)
				if err != nil {
					d.stop()
					return nil, err
				}
				st.WarmSecs = append(st.WarmSecs, el)
				st.WarmBytes = append(st.WarmBytes, d.sourceBytes())
			}
			before := d.imageBytes()
			if err := dropCaches(); err != nil {
				d.stop()
				return nil, err
			}
			el, err := timed(ctx, d.env(), shifter, append([]string{"--image=id:" + id}, py...)...)
			if err != nil {
				d.stop()
				return nil, err
			}
			st.StartSecs = append(st.StartSecs, el)
			st.StartBytes = append(st.StartBytes, d.imageBytes()-before)
			d.stop()
		}
	}
	return res, nil
}

// coldDaemon is a shifterd for one cold measurement.
type coldDaemon struct {
	conf, sock string
	cached     bool
	cmd        *exec.Cmd
}

func startColdDaemon(ctx context.Context, tmp, store, udi, binDir string, cached bool, n int) (*coldDaemon, error) {
	dir := filepath.Join(tmp, fmt.Sprintf("cold-%d-%v", n, cached))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d := &coldDaemon{conf: filepath.Join(dir, "udiRoot.conf"), sock: filepath.Join(dir, "shifterd.sock"), cached: cached}
	c := fmt.Sprintf("imagePath=%s\nudiMount=%s\nimageMount=shifterd\nshifterdSocket=%s\nshifterdIdleUnmount=0\n", store, udi, d.sock)
	if cached {
		c += fmt.Sprintf("nodeCacheDir=%s\nnodeCacheSize=4G\n", filepath.Join(dir, "cache"))
	}
	if err := os.WriteFile(d.conf, []byte(c), 0o644); err != nil {
		return nil, err
	}
	d.cmd = exec.CommandContext(ctx, filepath.Join(binDir, "shifterd"), "--config", d.conf, "serve", "--mount-dir", filepath.Join(dir, "mnt"))
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(d.sock); err == nil {
			return d, nil
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("shifterd did not start")
		}
	}
}

func (d *coldDaemon) env() []string {
	return append(os.Environ(), "SHIFTER_CONFIG="+d.conf)
}

func (d *coldDaemon) stop() {
	d.cmd.Process.Signal(os.Interrupt)
	d.cmd.Wait()
}

// sourceBytes is what the node cache has read from the image file.
func (d *coldDaemon) sourceBytes() int64 {
	out, err := exec.Command(filepath.Join(filepath.Dir(d.cmd.Path), "shifterd"), "--config", d.conf, "status", "--json").Output()
	if err != nil {
		return -1
	}
	var st struct {
		Cache *struct {
			SourceBytes int64 `json:"sourceBytes"`
		} `json:"cache"`
	}
	if json.Unmarshal(out, &st) != nil || st.Cache == nil {
		return -1
	}
	return st.Cache.SourceBytes
}

// imageBytes is what the daemon has read from the image file: the cache's
// source counter when it has a cache, else every byte it read (it reads
// little else once serving, and the page cache was dropped: /proc/PID/io
// read_bytes).
func (d *coldDaemon) imageBytes() int64 {
	if d.cached {
		return d.sourceBytes()
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", d.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "read_bytes: "); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	return -1
}

func dropCaches() error {
	exec.Command("sync").Run()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}

// timed runs a command and returns its duration.
func timed(ctx context.Context, env []string, name string, args ...string) (float64, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return time.Since(start).Seconds(), nil
}

func (c *coldResults) markdown() string {
	var b strings.Builder
	b.WriteString("\n## shifterd, page cache dropped before each start (issue 12)\n\n")
	fmt.Fprintf(&b, "A fresh shifterd (and node cache) per run; the image is %s in %d chunks, its start-up trace %d chunks (%.0f%%).\n\n",
		mib(c.ImageBytes), c.ChunkCount, c.TraceChunks, 100*float64(c.TraceChunks)/float64(max(c.ChunkCount, 1)))
	t := &benchutil.Table{Header: []string{"state", "warm-up", "read by the warm-up", "python start", "read from the image file by the start"}}
	var full float64
	for _, st := range c.States {
		if st.Name == "full warm-up" {
			full = benchutil.Median(st.StartSecs)
		}
	}
	for _, st := range c.States {
		warm, wb := "-", "-"
		if len(st.WarmSecs) > 0 {
			warm = fmt.Sprintf("%.2f s", benchutil.Median(st.WarmSecs))
			wb = fmt.Sprintf("%s (%.0f%% of the image)", mib(medianInt(st.WarmBytes)), 100*float64(medianInt(st.WarmBytes))/float64(c.ImageBytes))
		}
		s := benchutil.Median(st.StartSecs)
		t.Rows = append(t.Rows, []string{st.Name, warm, wb, fmt.Sprintf("%.3f s (%s of full warm-up)", s, benchutil.Ratio(s, full)), mib(medianInt(st.StartBytes))})
	}
	b.WriteString(t.Markdown())
	b.WriteString("\nTargets: a trace-only warm-up reads under 25% of the image and gives the start-up time of a full warm-up.\n")
	return b.String()
}

func medianInt(xs []int64) int64 {
	f := make([]float64, len(xs))
	for i, x := range xs {
		f[i] = float64(x)
	}
	return int64(benchutil.Median(f))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
