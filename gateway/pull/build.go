// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shifter-go/shifter/gateway/pull/flatten"
	"github.com/shifter-go/shifter/imagestore"
)

// Progress states reported by Build.
const (
	StatePulling    = "PULLING"    // downloading layer blobs; done/total in compressed bytes
	StateConversion = "CONVERSION" // flattening into mksquashfs; done/total in tar bytes
)

// progressReporter serializes and throttles progress callbacks.
type progressReporter struct {
	mu   sync.Mutex
	fn   func(state, msg string, done, total int64)
	last time.Time
}

func (pr *progressReporter) report(force bool, state, msg string, done, total int64) {
	if pr.fn == nil {
		return
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	now := time.Now()
	if !force && now.Sub(pr.last) < 200*time.Millisecond {
		return
	}
	pr.last = now
	pr.fn(state, msg, done, total)
}

// Build downloads r's layers into the blob cache, flattens them and
// writes a squashfs into out (a temporary file in the image directory,
// from imagestore.CreateTemp; mksquashfs rewrites it by name). It reports
// progress (may be nil; calls are serialized) with state StatePulling,
// then StateConversion. It returns the image's metadata without tags,
// ACLs, size or hash (the caller adds them and publishes out with
// imagestore.Publish). On error the caller removes out.
func (p *Puller) Build(ctx context.Context, r *Resolved, out *os.File, progress func(state, msg string, done, total int64)) (*imagestore.Metadata, error) {
	if r == nil || r.manifest == nil || r.config == nil {
		return nil, errors.New("build image: not a resolved image")
	}
	pr := &progressReporter{fn: progress}
	for attempt := 0; ; attempt++ {
		paths, err := p.fetchLayers(ctx, r, pr)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", r.Ref, err)
		}
		err = p.convert(ctx, r, paths, out, pr)
		if err == nil {
			return p.metadata(r), nil
		}
		// A cache file damaged on disk was evicted: fetch it once more.
		if attempt > 0 || !errors.Is(err, errEvicted) {
			return nil, fmt.Errorf("convert %s: %w", r.Ref, err)
		}
		p.log.Warn("cached layer was corrupt, downloading it again", "image", r.Ref, "err", err)
	}
}

// fetchLayers brings every layer into the cache, Jobs at a time.
func (p *Puller) fetchLayers(ctx context.Context, r *Resolved, pr *progressReporter) ([]string, error) {
	layers := r.manifest.Layers
	total := r.Size
	var done atomic.Int64
	msg := fmt.Sprintf("downloading %d layers", len(layers))
	pr.report(true, StatePulling, msg, 0, total)
	paths := make([]string, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.opts.Jobs)
	for i, l := range layers {
		g.Go(func() error {
			var counted int64
			path, err := p.fetchLayer(gctx, r, l, r.config.RootFS.DiffIDs[i], func(n int64) {
				counted += n
				pr.report(false, StatePulling, msg, done.Add(n), total)
			})
			if err != nil {
				return err
			}
			paths[i] = path
			pr.report(false, StatePulling, msg, done.Add(l.Size-counted), total)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	pr.report(true, StatePulling, "layers downloaded", total, total)
	return paths, nil
}

// CountWriter counts the bytes written through it to W and calls Fn with
// the total after each write (progress reports; the gateway's imports
// use it too).
type CountWriter struct {
	W  io.Writer
	Fn func(total int64)
	N  int64
}

func (c *CountWriter) Write(b []byte) (int, error) {
	n, err := c.W.Write(b)
	c.N += int64(n)
	c.Fn(c.N)
	return n, err
}

// tailBuffer keeps the last max bytes written (mksquashfs's output).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(bytes.ToValidUTF8(t.buf, []byte("?"))))
}

// convert flattens the cached layers into mksquashfs.
func (p *Puller) convert(ctx context.Context, r *Resolved, paths []string, out *os.File, pr *progressReporter) error {
	pr.report(true, StateConversion, "indexing layers", 0, 0)
	layers := make([]flatten.Layer, len(paths))
	for i, path := range paths {
		layers[i] = cachedLayer{p: p, path: path, want: r.manifest.Layers[i].Digest.Hex}
	}
	tree, err := flatten.Index(ctx, layers, flatten.Options{
		MaxEntries: p.opts.MaxEntries,
		MaxSize:    p.opts.MaxImageSize,
		Logger:     p.log.With("image", r.Ref),
	})
	if err != nil {
		return fmt.Errorf("index layers: %w", err)
	}
	st := tree.Stats()
	p.log.Info("flattening image", "image", r.Ref, "entries", st.Entries, "paths", st.Nodes, "files", st.Files, "dropped", st.Dropped, "bytes", st.Size)

	root := tree.Root()
	args := []string{"-", out.Name(), "-tar", "-noappend", "-exit-on-error", "-no-progress", "-quiet",
		"-root-mode", strconv.FormatInt(root.Mode&0o7777, 8),
		"-root-uid", strconv.Itoa(root.Uid), "-root-gid", strconv.Itoa(root.Gid),
		"-root-time", strconv.FormatInt(root.ModTime.Unix(), 10)}
	args = append(args, p.opts.MksquashfsArgs...)
	cmd := exec.CommandContext(ctx, p.opts.Mksquashfs, args...)
	dieWithParent(cmd)
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = p.opts.WorkDir
	output := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = output, output
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("run mksquashfs: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run mksquashfs: %w", err)
	}
	msg := fmt.Sprintf("converting %d files", st.Files)
	bw := bufio.NewWriterSize(stdin, 1<<20)
	cw := &CountWriter{W: bw, Fn: func(n int64) { pr.report(false, StateConversion, msg, n, st.Size) }}
	werr := tree.WriteTo(ctx, cw)
	if werr == nil {
		werr = bw.Flush()
	}
	stdin.Close()
	cerr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case cerr != nil:
		return fmt.Errorf("mksquashfs: %w: %s", cerr, truncate(output.String(), 2000))
	case werr != nil:
		return fmt.Errorf("write flattened tar: %w", werr)
	}
	pr.report(true, StateConversion, "converted", cw.N, st.Size)
	return nil
}

// metadata extracts the runtime metadata from the image config.
func (p *Puller) metadata(r *Resolved) *imagestore.Metadata {
	c := r.config.Config
	m := &imagestore.Metadata{
		ID:         r.ID,
		Format:     imagestore.FormatSquashfs,
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		WorkDir:    c.WorkingDir,
		User:       c.User,
		Labels:     c.Labels,
		Created:    time.Now().UTC(),
	}
	for _, e := range c.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") || strings.ContainsRune(e, 0) {
			p.log.Warn("ignoring malformed environment entry in image config", "image", r.Ref, "entry", truncate(e, 100))
			continue
		}
		m.Env = append(m.Env, e)
	}
	return m
}
