// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
)

type results struct {
	Started     time.Time            `json:"started"`
	Seconds     float64              `json:"seconds"`
	Command     string               `json:"command"`
	Host        map[string]string    `json:"host"`
	Config      *config              `json:"config"`
	Ref         string               `json:"ref"`
	LayerBytes  int64                `json:"layer_bytes_compressed"`
	TarBytes    int64                `json:"flattened_tar_bytes"`
	Samples     map[string][]float64 `json:"samples"` // floor, pull, pullN -> seconds
	Medians     map[string]float64   `json:"medians"`
	OutputCheck string               `json:"output_check"`
	Errors      []string             `json:"errors,omitempty"`
}

func bench(ctx context.Context, cfg *config) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cache := &benchutil.Cache{Dir: cfg.CacheDir, Mirror: cfg.Mirror, Log: logger}
	rootfs, err := cache.Rootfs(ctx)
	if err != nil {
		return err
	}
	binDir, err := filepath.Abs(cfg.BinDir)
	if err != nil {
		return err
	}
	for _, b := range []string{"shifter-gateway", "shifterimg"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("find %s (make build): %w", b, err)
		}
	}
	img, layerBytes, err := rootfsImage(rootfs, filepath.Join(cfg.CacheDir, "pull"))
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "pullbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The registry: go-containerregistry's, in memory, on loopback.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go srv.Serve(l)
	defer srv.Close()
	addr := l.Addr().String()
	ref, err := name.ParseReference(addr+"/bench/rootfs:latest", name.Insecure)
	if err != nil {
		return err
	}
	logger.Info("pushing image to the local registry", "ref", ref.String())
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push image: %w", err)
	}
	res := &results{
		Started: time.Now().UTC(), Command: strings.Join(os.Args, " "), Config: cfg, Ref: ref.String(), LayerBytes: layerBytes,
		Host:    map[string]string{"cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version()},
		Samples: map[string][]float64{}, Medians: map[string]float64{},
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		res.Host["kernel"] = strings.TrimSpace(string(b))
	}
	conf := filepath.Join(tmp, "udiRoot.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		return err
	}
	b := &puller{cfg: cfg, bin: binDir, conf: conf, registry: addr, tag: "docker:" + ref.String(), log: logger}
	start := time.Now()
	var floorImg, gwImg string
	for rep := range cfg.Reps {
		dir := filepath.Join(tmp, fmt.Sprint(rep))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		out := filepath.Join(dir, "floor.squashfs")
		el, n, err := floor(ctx, ref.String(), out, cfg.MksquashfsArgs)
		if err != nil {
			return err
		}
		res.TarBytes = n
		res.Samples["floor"] = append(res.Samples["floor"], el)
		ns := []int{1}
		if cfg.Concurrent > 1 {
			ns = append(ns, cfg.Concurrent)
		}
		for _, n := range ns {
			el, sq, err := b.pull(ctx, filepath.Join(dir, fmt.Sprintf("gw%d", n)), n)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res.Errors = append(res.Errors, fmt.Sprintf("rep %d, %d pulls: %v", rep+1, n, err))
				logger.Error("pull failed", "pulls", n, "err", err)
				continue
			}
			k := fmt.Sprintf("pull%d", n)
			res.Samples[k] = append(res.Samples[k], el)
			if rep == 0 && n == 1 {
				floorImg, gwImg = out, sq
				res.OutputCheck = compareImages(floorImg, gwImg, cfg.ResultsDir, res.Started.Format("20060102-150405"))
			}
		}
		logger.Info("repetition done", "rep", rep+1, "of", cfg.Reps)
	}
	res.Seconds = time.Since(start).Seconds()
	for k, v := range res.Samples {
		res.Medians[k] = benchutil.Median(v)
	}
	md := res.markdown()
	fmt.Print(md)
	if cfg.ResultsDir != "" {
		paths, err := benchutil.WriteResults(cfg.ResultsDir, "pull-"+res.Started.Format("20060102-150405"), res, md)
		if err != nil {
			return err
		}
		logger.Info("wrote results", "path", paths[0])
	}
	return nil
}

// floor pulls the image with go-containerregistry, flattens it
// (mutate.Extract, what `crane export` does) and streams the tar into
// `mksquashfs - OUT -tar`: the work a gateway cannot avoid.
func floor(ctx context.Context, ref, out string, extra []string) (float64, int64, error) {
	start := time.Now()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return 0, 0, err
	}
	img, err := remote.Image(r, remote.WithContext(ctx))
	if err != nil {
		return 0, 0, fmt.Errorf("floor: fetch image: %w", err)
	}
	tr := mutate.Extract(img)
	defer tr.Close()
	args := append([]string{"-", out, "-tar", "-noappend", "-no-progress", "-quiet"}, extra...)
	cmd := exec.CommandContext(ctx, "mksquashfs", args...)
	cw := &countWriter{}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, 0, err
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("floor: start mksquashfs: %w", err)
	}
	_, cerr := io.Copy(io.MultiWriter(stdin, cw), tr)
	stdin.Close()
	werr := cmd.Wait()
	if cerr != nil || werr != nil {
		return 0, 0, fmt.Errorf("floor: flatten into mksquashfs: %v, %v: %s", cerr, werr, stderr.String())
	}
	return time.Since(start).Seconds(), cw.n, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

type puller struct {
	cfg      *config
	bin      string
	conf     string
	registry string
	tag      string
	log      *slog.Logger
}

// pull starts a fresh gateway (empty database, cache and image
// directory) in dir, runs n `shifterimg pull` at once and returns the time
// until all of them are done and the squashfs the gateway published.
func (p *puller) pull(ctx context.Context, dir string, n int) (float64, string, error) {
	images := filepath.Join(dir, "images")
	for _, d := range []string{images, filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, "", err
		}
	}
	sock := filepath.Join(dir, "gw.sock")
	gw := exec.CommandContext(ctx, filepath.Join(p.bin, "shifter-gateway"),
		"--listen", "unix:"+sock, "--image-dir", images, "--data-dir", filepath.Join(dir, "data"),
		"--system", "bench", "--insecure-registry", p.registry, "--log-level", "warn")
	var gwLog bytes.Buffer
	gw.Stdout, gw.Stderr = &gwLog, &gwLog
	if err := gw.Start(); err != nil {
		return 0, "", fmt.Errorf("start gateway: %w", err)
	}
	defer func() {
		gw.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { gw.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			gw.Process.Kill()
			<-done
		}
	}()
	if err := waitGateway(ctx, sock); err != nil {
		return 0, "", fmt.Errorf("%w: %s", err, gwLog.String())
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, filepath.Join(p.bin, "shifterimg"), "--config", p.conf,
				"--gateway", "unix:"+sock, "--system", "bench", "pull", p.tag)
			out, err := cmd.CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("shifterimg pull: %w: %s", err, strings.TrimSpace(string(out)))
			}
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	for _, err := range errs {
		if err != nil {
			return 0, "", err
		}
	}
	sq, _ := filepath.Glob(filepath.Join(images, "*.squashfs"))
	if len(sq) != 1 {
		return 0, "", fmt.Errorf("gateway published %d squashfs files, want 1", len(sq))
	}
	return el, sq[0], nil
}

func waitGateway(ctx context.Context, sock string) error {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}, Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := c.Get("http://gateway/api/list/bench/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("gateway not answering on %s after 30s", sock)
}

// compareImages compares the numeric long listings (unsquashfs -lln) of
// the floor's squashfs and the gateway's, as sets of entries, leaving out
// what the gateway changes by design: device nodes (dropped), the root
// directory (mode and mtime from the image, not mksquashfs's defaults) and
// directory sizes (which follow from the dropped entries). When they
// differ and resultsDir is set, both full listings are written there.
func compareImages(floorImg, gwImg, resultsDir, tag string) string {
	list := func(p string) ([]string, error) {
		out, err := exec.Command("unsquashfs", "-lln", "-d", "", p).Output()
		if err != nil {
			return nil, fmt.Errorf("unsquashfs -lln %s: %w", p, err)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n"), nil
	}
	a, err := list(floorImg)
	if err != nil {
		return err.Error()
	}
	b, err := list(gwImg)
	if err != nil {
		return err.Error()
	}
	msg, same := compareListings(a, b)
	if !same && resultsDir != "" && os.MkdirAll(resultsDir, 0o755) == nil {
		os.WriteFile(filepath.Join(resultsDir, "pull-"+tag+"-floor.lln"), []byte(strings.Join(a, "\n")+"\n"), 0o644)
		os.WriteFile(filepath.Join(resultsDir, "pull-"+tag+"-gateway.lln"), []byte(strings.Join(b, "\n")+"\n"), 0o644)
	}
	return msg
}

// compareListings compares two unsquashfs -lln listings as described at
// compareImages and says how they differ.
func compareListings(a, b []string) (string, bool) {
	devs := 0
	set := func(lines []string) map[string]int {
		m := map[string]int{}
		for _, l := range lines[1:] { // lines[0] is the root
			f := strings.Fields(l)
			if len(f) < 6 {
				continue
			}
			if f[0][0] == 'c' || f[0][0] == 'b' {
				devs++
				continue
			}
			if f[0][0] == 'd' {
				f[2] = "-"
			}
			m[strings.Join(f, " ")]++
		}
		return m
	}
	sa := set(a)
	floorDevs := devs
	sb := set(b)
	var onlyA, onlyB []string
	for k, n := range sa {
		if sb[k] < n {
			onlyA = append(onlyA, k)
		}
	}
	for k, n := range sb {
		if sa[k] < n {
			onlyB = append(onlyB, k)
		}
	}
	if len(onlyA) == 0 && len(onlyB) == 0 {
		return fmt.Sprintf("ok: the same %d entries (unsquashfs -lln, directory sizes and the root left out; %d device nodes in the floor, which the gateway drops by design)", len(sa), floorDevs), true
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	ex := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return "`" + s[0] + "`"
	}
	return fmt.Sprintf("differ: %d entries only in the floor's (first %s), %d only in the gateway's (first %s)", len(onlyA), ex(onlyA), len(onlyB), ex(onlyB)), false
}

func (r *results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# pullbench %s\n\n", r.Started.Format("20060102-150405"))
	fmt.Fprintf(&b, "Command: `%s` (%d repetitions, %s).  \n", r.Command, r.Config.Reps, time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(&b, "Machine: kernel %s, %s CPUs.  \n", r.Host["kernel"], r.Host["cpus"])
	fmt.Fprintf(&b, "Image: the debootstrap'd rootfs as a two-layer Docker image in go-containerregistry's registry on 127.0.0.1 (%s of gzip'd layers, %s flattened tar); mksquashfs defaults (gzip, 128 KiB blocks) %s.\n\n",
		benchutil.MiB(r.LayerBytes), benchutil.MiB(r.TarBytes), strings.Join(r.Config.MksquashfsArgs, " "))
	b.WriteString("- floor: go-containerregistry remote.Image + mutate.Extract (what `crane export` does) streamed into `mksquashfs - OUT -tar`, in-process\n")
	b.WriteString("- pull: `shifterimg pull` through a fresh `shifter-gateway` (empty database and blob cache, unix socket), until READY\n")
	fmt.Fprintf(&b, "- pull×%d: %d `shifterimg pull` of the same tag started at once on a fresh gateway, until all are READY\n\n", r.Config.Concurrent, r.Config.Concurrent)
	t := &benchutil.Table{Header: []string{"figure", "median", "ratio"}}
	floor := benchutil.Median(r.Samples["floor"])
	one := benchutil.Median(r.Samples["pull1"])
	t.Rows = append(t.Rows, []string{"floor", benchutil.Seconds(floor), ""})
	t.Rows = append(t.Rows, []string{"pull (1)", benchutil.Seconds(one), benchutil.Ratio(one, floor) + " floor"})
	if k := fmt.Sprintf("pull%d", r.Config.Concurrent); r.Config.Concurrent != 1 {
		x := benchutil.Median(r.Samples[k])
		t.Rows = append(t.Rows, []string{fmt.Sprintf("pull ×%d concurrent", r.Config.Concurrent), benchutil.Seconds(x), benchutil.Ratio(x, one) + " one pull"})
	}
	b.WriteString(t.Markdown())
	fmt.Fprintf(&b, "\nOutput check (gateway's squashfs vs the floor's): %s\n", r.OutputCheck)
	if len(r.Errors) > 0 {
		b.WriteString("\n## Errors\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	return b.String()
}
