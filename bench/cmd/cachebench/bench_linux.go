// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/bench/internal/benchutil"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/udiroot"
)

// variant is one way of serving the image.
type variant struct {
	Name   string
	Kind   string // kernel, file, http, slow (HTTP), slowfile (the slow FUSE passthrough)
	Cache  string // none, cold, warm
	Chunk  string // chunk size label ("" for kernel and no cache)
	store  string // the image store directory (<id>.squashfs, <id>.chunks)
	cached string // the node cache directory
}

// sample is one timed run.
type sample struct {
	Seconds      float64 `json:"seconds"`
	MountSeconds float64 `json:"mountSeconds"`
	SourceBytes  int64   `json:"sourceBytes"` // -1: unknown
}

type results struct {
	Host      map[string]string              `json:"host"`
	Pinned    string                         `json:"pinned"`
	Image     string                         `json:"image"`
	ImageSize int64                          `json:"imageSize"`
	Slow      string                         `json:"slowSource"`
	Samples   map[string]map[string][]sample `json:"samples"` // workload -> variant -> samples
	Order     []string                       `json:"order"`
}

type bencher struct {
	cfg    *config
	log    *slog.Logger
	id     string
	img    string
	mnt    string
	work   string
	http   string // base URLs
	slow   string
	res    *results
	slowFS *slowFS // the slow file source's FUSE passthrough
}

func bench(ctx context.Context, cfg *config) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (mounts, chroot, drop_caches)")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	for _, b := range []string{"shifter-mount", "shifter-mount-cache"} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil {
			return fmt.Errorf("%s: %w (make build)", b, err)
		}
	}
	bc := &benchutil.Cache{Dir: cfg.CacheDir, Log: log}
	im, err := bc.Image(ctx, benchutil.ImageSpec{Comp: cfg.Comp})
	if err != nil {
		return err
	}
	work, err := filepath.Abs(filepath.Join(cfg.CacheDir, "cachebench"))
	if err != nil {
		return err
	}
	b := &bencher{cfg: cfg, log: log, img: im.Path, work: work}
	if b.id, err = fileID(im.Path); err != nil {
		return err
	}
	st, err := os.Stat(im.Path)
	if err != nil {
		return err
	}
	bw, err := udiroot.ParseBytes(cfg.Bandwidth)
	if err != nil || bw <= 0 {
		return fmt.Errorf("--slow-bandwidth %q: not a positive size", cfg.Bandwidth)
	}
	pinned := "no"
	var set unix.CPUSet
	if n := onlineCPUs(); unix.SchedGetaffinity(0, &set) == nil && set.Count() < n {
		pinned = fmt.Sprintf("%d of %d CPUs", set.Count(), n)
	}
	b.res = &results{Host: hostInfo(), Pinned: pinned, Image: im.Path, ImageSize: st.Size(),
		Slow:    fmt.Sprintf("HTTP, %v per request, %s/s shared", cfg.Latency, cfg.Bandwidth),
		Samples: map[string]map[string][]sample{}}
	chunks := slices.Clone(cfg.ChunkSizes)
	if !slices.Contains(chunks, cfg.DefChunk) {
		chunks = append(chunks, cfg.DefChunk)
	}
	stores := map[string]string{}
	for _, c := range chunks {
		if stores[c], err = b.store(c); err != nil {
			return err
		}
	}
	def := stores[cfg.DefChunk]
	fast, err := serve(def, 0, 0)
	if err != nil {
		return err
	}
	slow, err := serve(def, cfg.Latency, float64(bw))
	if err != nil {
		return err
	}
	b.http, b.slow = fast, slow
	slowMnt, err := os.MkdirTemp("", "cachebench-slowfs-")
	if err != nil {
		return err
	}
	defer os.Remove(slowMnt)
	sfs, unmountSlow, err := mountSlow(def, slowMnt, cfg.Latency, float64(bw))
	if err != nil {
		return fmt.Errorf("slow file source: %w", err)
	}
	defer unmountSlow()
	b.slowFS = sfs
	if b.mnt, err = os.MkdirTemp("", "cachebench-mnt-"); err != nil {
		return err
	}
	defer os.Remove(b.mnt)
	caches, err := os.MkdirTemp(b.work, "caches-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(caches)

	vs := []*variant{
		{Name: "kernel loop mount", Kind: "kernel", Cache: "none", store: def},
		{Name: "no cache (file)", Kind: "file", Cache: "none", store: def},
	}
	for _, c := range cfg.ChunkSizes {
		cd := filepath.Join(caches, "file-"+c)
		vs = append(vs,
			&variant{Name: "cold cache, file, " + c, Kind: "file", Cache: "cold", Chunk: c, store: stores[c], cached: cd},
			&variant{Name: "warm cache, file, " + c, Kind: "file", Cache: "warm", Chunk: c, store: stores[c], cached: cd})
	}
	vs = append(vs, &variant{Name: "no cache, slow file", Kind: "slowfile", Cache: "none", store: slowMnt})
	for _, k := range []string{"slowfile", "http", "slow"} {
		cd := filepath.Join(caches, k)
		label := map[string]string{"slowfile": "slow file", "http": "HTTP", "slow": "slow HTTP"}[k]
		st := def
		if k == "slowfile" {
			st = slowMnt
		}
		vs = append(vs,
			&variant{Name: "cold cache, " + label + ", " + cfg.DefChunk, Kind: k, Cache: "cold", Chunk: cfg.DefChunk, store: st, cached: cd},
			&variant{Name: "warm cache, " + label + ", " + cfg.DefChunk, Kind: k, Cache: "warm", Chunk: cfg.DefChunk, store: st, cached: cd})
	}
	for _, v := range vs {
		b.res.Order = append(b.res.Order, v.Name)
	}
	start := time.Now()
	for rep := range cfg.Reps {
		for _, w := range b.cfg.Tests {
			for _, v := range vs {
				if err := ctx.Err(); err != nil {
					return err
				}
				s, err := b.one(ctx, v, w)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", w, v.Name, err)
				}
				log.Info("run", "rep", rep+1, "test", w, "variant", v.Name, "seconds", fmt.Sprintf("%.3f", s.Seconds), "source_bytes", s.SourceBytes)
				if b.res.Samples[w] == nil {
					b.res.Samples[w] = map[string][]sample{}
				}
				b.res.Samples[w][v.Name] = append(b.res.Samples[w][v.Name], s)
			}
		}
	}
	md := b.markdown(vs, time.Since(start))
	fmt.Print(md)
	if cfg.ResultsDir != "" {
		paths, err := benchutil.WriteResults(cfg.ResultsDir, "cache-"+benchutil.Stamp(start), b.res, md)
		if err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "cachebench: results in", strings.Join(paths, " "))
	}
	return nil
}

// fileID is the sha256 of the image file, kept beside it.
func fileID(path string) (string, error) {
	if b, err := os.ReadFile(path + ".sha256"); err == nil && imagestore.ValidID(strings.TrimSpace(string(b))) {
		return strings.TrimSpace(string(b)), nil
	}
	id, err := fileSHA256(path)
	if err != nil {
		return "", err
	}
	return id, os.WriteFile(path+".sha256", []byte(id+"\n"), 0o644)
}

// store returns an image store directory holding the image as
// <id>.squashfs (a hard link) with its chunk list of the given size.
func (b *bencher) store(chunk string) (string, error) {
	cs, err := udiroot.ParseBytes(chunk)
	if err != nil {
		return "", fmt.Errorf("chunk size %q: %w", chunk, err)
	}
	dir := filepath.Join(b.work, "store-"+chunk)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	sq := filepath.Join(dir, b.id+".squashfs")
	if _, err := os.Stat(sq); err != nil {
		if err := os.Link(b.img, sq); err != nil {
			return "", fmt.Errorf("link image into %s: %w", dir, err)
		}
	}
	if _, err := imagestore.LoadChunkList(dir, b.id); err == nil {
		return dir, nil
	}
	b.log.Info("computing chunk list", "chunk_size", chunk)
	cl, err := imagestore.ComputeChunkListFile(sq, cs)
	if err != nil {
		return "", err
	}
	return dir, imagestore.WriteChunkList(dir, b.id, cl)
}

// limiter spaces writes to a bandwidth shared by every request.
type limiter struct {
	mu   sync.Mutex
	next time.Time
	bps  float64
}

func (l *limiter) wait(n int) {
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(float64(n) / l.bps * float64(time.Second)))
	t := l.next
	l.mu.Unlock()
	time.Sleep(time.Until(t))
}

type throttled struct {
	http.ResponseWriter
	l *limiter
}

func (t throttled) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		t.l.wait(k)
		m, err := t.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// serve serves dir's files with http.ServeContent on 127.0.0.1, each
// request delayed by latency and all of them sharing bps bytes per
// second (0: no limit), and returns the base URL.
func serve(dir string, latency time.Duration, bps float64) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	l := &limiter{bps: bps}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if latency > 0 {
			time.Sleep(latency)
		}
		name := filepath.Base(r.URL.Path)
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if bps > 0 {
			w = throttled{w, l}
		}
		http.ServeContent(w, r, name, st.ModTime(), f)
	})
	go http.Serve(ln, h)
	return "http://" + ln.Addr().String() + "/", nil
}

var sourceRE = regexp.MustCompile(`msg="node cache".*source_bytes=(\d+)`)

// one mounts the image as v says, drops the page cache, times the test
// and unmounts.
func (b *bencher) one(ctx context.Context, v *variant, test string) (sample, error) {
	s := sample{SourceBytes: -1}
	logFile := filepath.Join(b.work, "server.log")
	pidFile := filepath.Join(b.work, "server.pid")
	os.Remove(logFile)
	os.Remove(pidFile)
	img := filepath.Join(v.store, b.id+".squashfs")
	var argv []string
	switch {
	case v.Kind == "kernel":
		argv = []string{"mount", "-t", "squashfs", "-o", "loop,ro", img, b.mnt}
	case v.Cache == "none":
		argv = []string{filepath.Join(b.cfg.BinDir, "shifter-mount"), "--pid-file", pidFile, img, b.mnt}
	default:
		if v.Cache == "cold" {
			if err := os.RemoveAll(v.cached); err != nil {
				return s, err
			}
		}
		argv = []string{filepath.Join(b.cfg.BinDir, "shifter-mount"), "--pid-file", pidFile, "--log-file", logFile, "--stats",
			"--cache-dir", v.cached, "--cache-size", "16G"}
		switch v.Kind {
		case "file", "slowfile":
			argv = append(argv, img, b.mnt)
		case "http", "slow":
			// The chunk list comes from the source, pinned by its sha256
			// as the image's metadata pins it (chunksSHA256).
			sum, err := fileSHA256(filepath.Join(v.store, b.id+".chunks"))
			if err != nil {
				return s, err
			}
			url := map[string]string{"http": b.http, "slow": b.slow}[v.Kind]
			argv = append(argv, "--source", url, "--chunks-sha256", sum, b.id, b.mnt)
		}
	}
	var parent unix.Stat_t
	if err := unix.Stat(filepath.Dir(b.mnt), &parent); err != nil {
		return s, err
	}
	t0 := time.Now()
	if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return s, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	for {
		var st unix.Stat_t
		if err := unix.Stat(b.mnt, &st); err != nil {
			return s, err
		}
		if st.Dev != parent.Dev {
			break
		}
		if time.Since(t0) > 30*time.Second {
			return s, errors.New("not mounted after 30 s")
		}
		time.Sleep(50 * time.Microsecond)
	}
	s.MountSeconds = time.Since(t0).Seconds()
	pid := 0
	if v.Kind != "kernel" {
		p, err := os.ReadFile(pidFile)
		if err != nil {
			unix.Unmount(b.mnt, unix.MNT_DETACH)
			return s, err
		}
		pid, _ = strconv.Atoi(strings.TrimSpace(string(p)))
	}
	loopBefore := loopSectors(b.mnt)
	slowBefore := b.slowFS.bytes.Load()
	if err := dropCaches(); err != nil {
		unix.Unmount(b.mnt, unix.MNT_DETACH)
		return s, err
	}
	t1 := time.Now()
	var cmd *exec.Cmd
	if test == "python" {
		cmd = exec.CommandContext(ctx, "chroot", b.mnt, "python3", "-c", b.cfg.Python)
	} else {
		cmd = exec.CommandContext(ctx, "tar", "-cf", "-", ".")
		cmd.Dir = b.mnt
	}
	cmd.Stdout = io.Discard
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	runErr := cmd.Run()
	s.Seconds = time.Since(t1).Seconds()
	if v.Kind == "kernel" {
		if after := loopSectors(b.mnt); loopBefore >= 0 && after >= 0 {
			s.SourceBytes = (after - loopBefore) * 512
		}
	} else if v.Kind == "slowfile" && v.Cache == "none" {
		s.SourceBytes = b.slowFS.bytes.Load() - slowBefore // FUSE reads are no block I/O
	} else if v.Cache == "none" {
		s.SourceBytes = readBytes(pid)
	}
	if err := unmount(b.mnt, pid); err != nil {
		return s, err
	}
	if runErr != nil {
		return s, fmt.Errorf("%s: %w: %s", cmd, runErr, bytes.TrimSpace(stderr.Bytes()))
	}
	if v.Cache != "none" {
		lb, _ := os.ReadFile(logFile)
		m := sourceRE.FindAllSubmatch(lb, -1)
		if len(m) == 0 {
			return s, fmt.Errorf("no cache counters in the server's log: %s", lb)
		}
		s.SourceBytes, _ = strconv.ParseInt(string(m[len(m)-1][1]), 10, 64)
	}
	return s, nil
}

// readBytes is the bytes process pid caused to be read from storage
// (/proc/PID/io read_bytes), -1 when unknown.
func readBytes(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "read_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// loopSectors is the sectors read by the loop device mounted on mnt, -1
// when it is not one.
func loopSectors(mnt string) int64 {
	var st unix.Stat_t
	if unix.Stat(mnt, &st) != nil || unix.Major(st.Dev) != 7 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/stat", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return -1
	}
	n, _ := strconv.ParseInt(f[2], 10, 64)
	return n
}

// onlineCPUs counts the machine's CPUs (runtime.NumCPU counts those of
// the affinity mask).
func onlineCPUs() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	return strings.Count(string(b), "\nprocessor") + strings.Count(string(b[:min(len(b), 9)]), "processor")
}

func dropCaches() error {
	unix.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

// unmount unmounts mnt and waits for the server pid (if any) to exit.
func unmount(mnt string, pid int) error {
	var err error
	for i := range 50 {
		if err = unix.Unmount(mnt, 0); err == nil || !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mnt, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for pid > 0 && unix.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			unix.Kill(pid, unix.SIGKILL)
			return fmt.Errorf("server %d still running 30 s after unmount", pid)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func hostInfo() map[string]string {
	h := map[string]string{"cpus": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h["kernel"] = unix.ByteSliceToString(u.Release[:])
	}
	return h
}

func (b *bencher) median(test, v string, f func(sample) float64) float64 {
	var xs []float64
	for _, s := range b.res.Samples[test][v] {
		xs = append(xs, f(s))
	}
	return benchutil.Median(xs)
}

func bytesCell(x float64) string {
	if x < 0 {
		return "n/a"
	}
	return benchutil.MiB(int64(x))
}

func (b *bencher) markdown(vs []*variant, took time.Duration) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Node cache benchmark\n\nImage %s (%s), %d repetitions (medians), pinned: %s, %s.\n", filepath.Base(b.res.Image), benchutil.MiB(b.res.ImageSize), b.cfg.Reps, b.res.Pinned, took.Round(time.Second))
	fmt.Fprintf(&sb, "Page cache dropped after each mount. Slow source: %s. Source bytes: the cache's counters; no cache: the server's read_bytes; kernel: the loop device's sectors read.\n\n", b.res.Slow)
	secs := func(s sample) float64 { return s.Seconds }
	mnts := func(s sample) float64 { return s.MountSeconds }
	src := func(s sample) float64 { return float64(s.SourceBytes) }
	total := func(s sample) float64 { return s.MountSeconds + s.Seconds }
	base := vs[1].Name // no cache
	for _, test := range b.cfg.Tests {
		title := map[string]string{"python": "Python start-up (chroot MNT python3 -c '" + b.cfg.Python + "')", "tar": "tar -cf - . of the whole tree into a pipe"}[test]
		fmt.Fprintf(&sb, "## %s\n\n", title)
		t := benchutil.Table{Header: []string{"variant", "test", "vs no cache", "mount", "mount + test", "vs no cache", "from the source"}}
		bt, btt := b.median(test, base, secs), b.median(test, base, total)
		for _, v := range vs {
			x, xt := b.median(test, v.Name, secs), b.median(test, v.Name, total)
			t.Rows = append(t.Rows, []string{v.Name, benchutil.Seconds(x), benchutil.Ratio(x, bt), benchutil.Seconds(b.median(test, v.Name, mnts)),
				benchutil.Seconds(xt), benchutil.Ratio(xt, btt), bytesCell(b.median(test, v.Name, src))})
		}
		sb.WriteString(t.Markdown())
		sb.WriteString("\n")
	}
	// Targets.
	def := b.cfg.DefChunk
	warm, cold := "warm cache, file, "+def, "cold cache, file, "+def
	sb.WriteString("## Targets (issue 11)\n\nTimes are medians of the test alone (after the page cache is dropped), and of mount + test.\n\n")
	for _, test := range []string{"python", "tar"} {
		if _, ok := b.res.Samples[test][warm]; !ok {
			continue
		}
		wb := b.median(test, warm, src)
		fmt.Fprintf(&sb, "- %s, warm cache: %s from the source (target 0): %s\n", test, bytesCell(wb), pass(wb == 0))
		for _, f := range []struct {
			what string
			f    func(sample) float64
		}{{"test", secs}, {"mount + test", total}} {
			wt, kt := b.median(test, warm, f.f), b.median(test, "kernel loop mount", f.f)
			fmt.Fprintf(&sb, "- %s (%s), warm cache vs kernel loop mount with a cold page cache: %.2fx (target <= 1): %s\n", test, f.what, wt/kt, pass(wt <= kt))
			ct, nt := b.median(test, cold, f.f), b.median(test, base, f.f)
			fmt.Fprintf(&sb, "- %s (%s), cold cache vs no cache: %.2fx (target <= 1.1): %s\n", test, f.what, ct/nt, pass(ct <= 1.1*nt))
			sn, sw := b.median(test, "no cache, slow file", f.f), b.median(test, "warm cache, slow file, "+def, f.f)
			fmt.Fprintf(&sb, "- %s (%s), slow source: reading it (no cache) / warm cache = %.1fx (target >= 5): %s\n", test, f.what, sn/sw, pass(sn >= 5*sw))
			hc, hw := b.median(test, "cold cache, slow HTTP, "+def, f.f), b.median(test, "warm cache, slow HTTP, "+def, f.f)
			fmt.Fprintf(&sb, "  (slow HTTP source, which only a cache reads: cold cache / warm cache = %.1fx)\n", hc/hw)
		}
	}
	if len(b.cfg.ChunkSizes) > 1 {
		sb.WriteString("\n## Chunk size (file source; mount + test)\n\n")
		t := benchutil.Table{Header: []string{"chunk size", "python cold", "python warm", "tar cold", "tar warm", "python cold from the source"}}
		for _, c := range b.cfg.ChunkSizes {
			row := []string{c}
			for _, k := range []string{"python/cold", "python/warm", "tar/cold", "tar/warm"} {
				test, state, _ := strings.Cut(k, "/")
				row = append(row, benchutil.Seconds(b.median(test, state+" cache, file, "+c, total)))
			}
			row = append(row, bytesCell(b.median("python", "cold cache, file, "+c, src)))
			t.Rows = append(t.Rows, row)
		}
		sb.WriteString(t.Markdown())
	}
	sb.WriteString("\n")
	return sb.String()
}

func pass(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
