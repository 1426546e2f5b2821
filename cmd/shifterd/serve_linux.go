// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/internal/mountinfo"
	"github.com/shifter-go/shifter/nodecache"
	"github.com/shifter-go/shifter/shifterd"
)

func (a *app) serve(ctx context.Context, args []string) error {
	fl := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	mountDir := fl.String("mount-dir", "/run/shifter/shifterd/mnt", "directory of the shared mounts (made mode 0700)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fl.Arg(0))
	}
	if os.Geteuid() != 0 {
		return errors.New("serve: shifterd runs as root (it mounts images for every user)")
	}
	cfg := a.cfg
	if err := unmountStale(*mountDir); err != nil {
		a.log.Warn("stale mounts", "err", err)
	}
	b := &shifterd.CacheBackend{ImageDir: cfg.ImagePath, Log: a.log, ChunkSize: cfg.NodeCacheChunkSize}
	if cfg.ImageSource != "file" {
		b.SourceURL = cfg.ImageSource
		b.HTTPClient = &http.Client{Timeout: 5 * time.Minute}
	}
	if cfg.NodeCacheDir != "" {
		c, err := nodecache.Open(cfg.NodeCacheDir, nodecache.Options{Size: cfg.NodeCacheSize, Logger: a.log.With("component", "nodecache")})
		if err != nil {
			return err
		}
		defer c.Close()
		b.Cache = c
		b.ChunkListDir = filepath.Join(cfg.NodeCacheDir, "chunklists")
	}
	mgr, err := shifterd.NewManager(*mountDir, cfg.ShifterdIdle, b, a.log)
	if err != nil {
		return err
	}
	defer mgr.Close()
	l, err := listen(a.socket)
	if err != nil {
		return err
	}
	srv := &shifterd.Server{Manager: mgr, Backend: b, ImageDir: cfg.ImagePath, Log: a.log}
	if cfg.ShifterdMetrics != "" {
		ms, err := serveMetrics(cfg.ShifterdMetrics, mgr, b)
		if err != nil {
			l.Close()
			return err
		}
		defer ms.Close()
	}
	a.log.Info("serving", "socket", a.socket, "images", cfg.ImagePath, "cache", cfg.NodeCacheDir,
		"source", cfg.ImageSource, "idleUnmount", cfg.ShifterdIdle, "metrics", cfg.ShifterdMetrics)
	err = srv.Serve(ctx, l)
	a.log.Info("shutting down: unmounting every shared mount")
	mgr.Close()
	srv.Wait()
	os.Remove(a.socket)
	return err
}

// listen makes shifterd's socket: its directory is created 0755, a stale
// socket (nobody answers) is replaced, a live one is an error. The
// socket is mode 0666: callers are identified by SO_PEERCRED.
func listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another shifterd is listening", path)
		}
		os.Remove(path)
	}
	old := unix.Umask(0o111)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	l.SetUnlinkOnClose(false)
	return l, nil
}

// unmountStale detaches the shared mounts an earlier shifterd left under
// dir (it died without unmounting: their server is gone).
func unmountStale(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	prefix := filepath.Clean(dir) + "/"
	var errs []error
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := mountinfo.Unescape(f[4])
		if strings.HasPrefix(mp, prefix) {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
			}
		}
	}
	return errors.Join(errs...)
}

// collector exports the manager's and the cache's figures.
type collector struct {
	mgr *shifterd.Manager
	b   *shifterd.CacheBackend
}

var (
	descMounts   = prometheus.NewDesc("shifterd_mounts", "Shared mounts.", nil, nil)
	descRefs     = prometheus.NewDesc("shifterd_references", "References held on shared mounts.", nil, nil)
	descOps      = prometheus.NewDesc("shifterd_operations_total", "Mount manager operations.", []string{"op"}, nil)
	descHits     = prometheus.NewDesc("shifterd_cache_hits_total", "Chunk reads served by the node cache.", nil, nil)
	descMisses   = prometheus.NewDesc("shifterd_cache_misses_total", "Chunk reads that went to the source.", nil, nil)
	descSource   = prometheus.NewDesc("shifterd_cache_source_bytes_total", "Bytes read from image sources.", nil, nil)
	descEvicted  = prometheus.NewDesc("shifterd_cache_evicted_bytes_total", "Bytes evicted from the node cache.", nil, nil)
	descVerify   = prometheus.NewDesc("shifterd_cache_verify_failures_total", "Chunks that did not match their sha256.", nil, nil)
	descSize     = prometheus.NewDesc("shifterd_cache_bytes", "Bytes of chunks in the node cache.", nil, nil)
	descCapacity = prometheus.NewDesc("shifterd_cache_capacity_bytes", "The node cache's cap.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st, mounts, refs := c.mgr.Stats()
	ch <- prometheus.MustNewConstMetric(descMounts, prometheus.GaugeValue, float64(mounts))
	ch <- prometheus.MustNewConstMetric(descRefs, prometheus.GaugeValue, float64(refs))
	for op, v := range map[string]int64{"mount": st.Mounts, "unmount": st.Unmounts, "mount_failure": st.MountFailures,
		"acquire": st.Acquires, "release": st.Releases} {
		ch <- prometheus.MustNewConstMetric(descOps, prometheus.CounterValue, float64(v), op)
	}
	if cs := c.b.CacheStatus(); cs != nil {
		ch <- prometheus.MustNewConstMetric(descHits, prometheus.CounterValue, float64(cs.Hits))
		ch <- prometheus.MustNewConstMetric(descMisses, prometheus.CounterValue, float64(cs.Misses))
		ch <- prometheus.MustNewConstMetric(descSource, prometheus.CounterValue, float64(cs.SourceBytes))
		ch <- prometheus.MustNewConstMetric(descEvicted, prometheus.CounterValue, float64(cs.EvictedBytes))
		ch <- prometheus.MustNewConstMetric(descVerify, prometheus.CounterValue, float64(cs.VerifyFailure))
		ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(cs.Size))
		ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, float64(cs.Cap))
	}
}

func serveMetrics(addr string, mgr *shifterd.Manager, b *shifterd.CacheBackend) (*http.Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{mgr, b}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.Serve(l)
	return s, nil
}
