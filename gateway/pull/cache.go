// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// blobPath is where a verified blob lives in the cache.
func (p *Puller) blobPath(hexDigest string) string { return filepath.Join(p.blobDir, hexDigest) }

// flight is one blob download shared by every Build that needs the blob.
type flight struct {
	done    chan struct{}
	err     error
	cancel  context.CancelFunc
	waiters int
	subs    map[*int]func(int64) // progress of each waiting Build
}

func (p *Puller) flightProgress(f *flight) func(int64) {
	return func(n int64) {
		p.flightMu.Lock()
		defer p.flightMu.Unlock()
		for _, fn := range f.subs {
			fn(n)
		}
	}
}

// fetchLayer makes layer l (with uncompressed digest diffID) present in the
// cache and returns its path. Concurrent calls for one digest share one
// download, which is cancelled when its last waiter gives up; progress
// (may be nil) gets the bytes of the shared download while this call
// waits.
func (p *Puller) fetchLayer(ctx context.Context, r *Resolved, l v1.Descriptor, diffID v1.Hash, progress func(int64)) (string, error) {
	path := p.blobPath(l.Digest.Hex)
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == l.Size {
		now := time.Now()
		os.Chtimes(path, now, now) // last use, for PruneCache
		return path, nil
	}
	key := new(int)
	p.flightMu.Lock()
	f := p.flights[l.Digest.Hex]
	if f == nil {
		// The download serves every waiter: it does not die with the first
		// caller's context, only when no one waits any more.
		dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel, subs: map[*int]func(int64){}}
		p.flights[l.Digest.Hex] = f
		go func() {
			f.err = p.download(dctx, r, l, diffID, p.flightProgress(f))
			p.flightMu.Lock()
			delete(p.flights, l.Digest.Hex)
			p.flightMu.Unlock()
			cancel()
			close(f.done)
		}()
	}
	f.waiters++
	if progress != nil {
		f.subs[key] = progress
	}
	p.flightMu.Unlock()
	leave := func() (last bool) {
		p.flightMu.Lock()
		defer p.flightMu.Unlock()
		delete(f.subs, key)
		f.waiters--
		return f.waiters == 0
	}
	select {
	case <-ctx.Done():
		if leave() {
			f.cancel()
			<-f.done // let it clean up its temporary file
		}
		return "", ctx.Err()
	case <-f.done:
		leave()
		if f.err != nil {
			return "", f.err
		}
		return path, nil
	}
}

// download fetches a blob with retries into the cache.
func (p *Puller) download(ctx context.Context, r *Resolved, l v1.Descriptor, diffID v1.Hash, progress func(int64)) error {
	var err error
	for attempt := 0; attempt <= p.opts.Retries; attempt++ {
		if attempt > 0 {
			d := p.backoff(attempt, err)
			p.log.Info("retrying blob download", "image", r.Ref, "digest", l.Digest.String(), "attempt", attempt, "delay", d, "err", err)
			if serr := sleepCtx(ctx, d); serr != nil {
				return serr
			}
		}
		err = p.downloadOnce(ctx, r, l, diffID, progress)
		if err == nil || !retryable(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("download layer %s: %w", l.Digest, err)
	}
	return nil
}

// retryable reports whether a failed blob download may succeed again.
func retryable(err error) bool {
	if errors.Is(err, ErrInvalidImage) || errors.Is(err, ErrTooLarge) ||
		errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrTooSlow) {
		return false
	}
	return transientNetErr(err)
}

// blobReader marks failures of the verifying body reader that are not
// network errors (digest mismatch) as ErrInvalidImage.
type blobReader struct{ r io.Reader }

func (b blobReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && !transientNetErr(err) {
		err = fmt.Errorf("%w: %v", ErrInvalidImage, err)
	}
	return n, err
}

type progressWriter struct {
	fn func(int64)
}

func (w progressWriter) Write(b []byte) (int, error) {
	if w.fn != nil {
		w.fn(int64(len(b)))
	}
	return len(b), nil
}

func (p *Puller) downloadOnce(ctx context.Context, r *Resolved, l v1.Descriptor, diffID v1.Hash, progress func(int64)) (err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	layer, err := remote.Layer(r.repo.Digest(l.Digest.String()), p.remoteOptions(ctx, r.repo.Registry, r.creds)...)
	if err != nil {
		return classify(err)
	}
	body, err := layer.Compressed()
	if err != nil {
		return classify(err)
	}
	defer body.Close()
	body = &meteredBody{ReadCloser: body}
	defer p.watchSpeed(ctx, cancel, body.(*meteredBody), r.repo.RegistryStr(), l.Digest.String())()

	tmp, err := os.CreateTemp(p.tmpDir(), l.Digest.Hex+".*.partial")
	if err != nil {
		return fmt.Errorf("create cache file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	// Verify as it arrives: the compressed digest and size, and, through
	// a decompressor on a pipe, the uncompressed diff_id and size limit.
	ch := sha256.New()
	pr, pw := io.Pipe()
	diffDone := make(chan error, 1)
	go func() {
		diffDone <- checkDiffID(pr, diffID, p.opts.MaxImageSize)
		pr.Close()
	}()
	n, err := io.Copy(io.MultiWriter(tmp, ch, pw, progressWriter{progress}), io.LimitReader(blobReader{body}, l.Size+1))
	if err != nil {
		pw.CloseWithError(err)
		<-diffDone
		var de *diffError
		if errors.As(err, &de) {
			return de.err
		}
		if cause := context.Cause(ctx); errors.Is(cause, ErrTooSlow) {
			return cause
		}
		return fmt.Errorf("read blob: %w", classify(err))
	}
	pw.Close()
	if derr := <-diffDone; n == l.Size && derr != nil {
		return derr
	}
	if n != l.Size {
		return fmt.Errorf("%w: blob %s has %d bytes or more, manifest says %d", ErrInvalidImage, l.Digest, n, l.Size)
	}
	if got := hex.EncodeToString(ch.Sum(nil)); got != l.Digest.Hex {
		return fmt.Errorf("%w: blob %s has digest sha256:%s", ErrInvalidImage, l.Digest, got)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync cache file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close cache file: %w", err)
	}
	if err := os.Rename(tmp.Name(), p.blobPath(l.Digest.Hex)); err != nil {
		return fmt.Errorf("publish cache file: %w", err)
	}
	if d, err := os.Open(p.blobDir); err == nil {
		d.Sync()
		d.Close()
	}
	p.log.Debug("cached layer", "digest", l.Digest.String(), "size", l.Size)
	return nil
}

// PruneCache removes cached blobs not used for longer than maxAge and
// returns how many it removed. A Build that loses a blob this way
// downloads it again.
func (p *Puller) PruneCache(maxAge time.Duration) (int, error) {
	ents, err := os.ReadDir(p.blobDir)
	if err != nil {
		return 0, fmt.Errorf("prune blob cache: %w", err)
	}
	cutoff := time.Now().Add(-maxAge)
	n := 0
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(p.blobDir, e.Name())); err == nil {
			n++
		}
	}
	return n, nil
}

// errEvicted marks a cached blob found corrupt and removed: downloading it
// again may succeed.
var errEvicted = errors.New("evicted from the blob cache")

// diffError carries a decompression-side failure through the pipe.
type diffError struct{ err error }

func (e *diffError) Error() string { return e.err.Error() }

// checkDiffID decompresses r and compares its sha256 with want; it stops
// with ErrTooLarge past limit bytes. Failures close the pipe with a
// *diffError so the writer side stops too.
func checkDiffID(pr *io.PipeReader, want v1.Hash, limit int64) error {
	fail := func(err error) error {
		pr.CloseWithError(&diffError{err})
		return err
	}
	dr, err := decompress(pr)
	if err != nil {
		return fail(fmt.Errorf("%w: decompress layer: %v", ErrInvalidImage, err))
	}
	defer dr.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(dr, limit+1))
	if err != nil {
		var de *diffError
		if errors.As(err, &de) {
			return err
		}
		return fail(fmt.Errorf("%w: decompress layer: %v", ErrInvalidImage, err))
	}
	if n > limit {
		return fail(fmt.Errorf("%w: layer %s uncompresses to more than %d bytes", ErrTooLarge, want, limit))
	}
	// Drain what the decompressor did not need (trailing garbage) so the
	// compressed digest covers the whole blob.
	io.Copy(io.Discard, pr)
	if got := hex.EncodeToString(h.Sum(nil)); got != want.Hex {
		return fail(fmt.Errorf("%w: layer uncompresses to sha256:%s, config diff_id is %s", ErrInvalidImage, got, want))
	}
	return nil
}

// decompress returns the uncompressed stream of a layer blob, detected by
// its magic bytes: gzip, zstd, or a plain tar.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return nil, err
	}
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		return zr, nil
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// cachedLayer reads a cached blob as an uncompressed tar stream and, when
// read to its end, verifies the compressed digest again (Close reports a
// mismatch and evicts the blob).
type cachedLayer struct {
	p    *Puller
	path string
	want string // hex
}

func (c cachedLayer) Open() (io.ReadCloser, error) {
	f, err := os.Open(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open cached layer: %w: %w", errEvicted, err) // pruned meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("open cached layer: %w", err)
	}
	h := sha256.New()
	tee := &eofReader{r: io.TeeReader(f, h)}
	dr, err := decompress(tee)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: decompress cached layer: %v", ErrInvalidImage, err)
	}
	return &verifyingReader{Reader: dr, dr: dr, f: f, tee: tee, h: h, c: c}, nil
}

type eofReader struct {
	r   io.Reader
	eof bool
}

func (e *eofReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err == io.EOF {
		e.eof = true
	}
	return n, err
}

type verifyingReader struct {
	io.Reader
	dr  io.ReadCloser
	f   *os.File
	tee *eofReader
	h   hash.Hash
	c   cachedLayer
}

func (v *verifyingReader) Read(b []byte) (int, error) {
	n, err := v.Reader.Read(b)
	switch {
	case err == io.EOF:
		// Hash any compressed bytes after the end of the stream too.
		io.Copy(io.Discard, v.tee)
	case err != nil:
		// Corrupt data often fails decompression before the end: tell a
		// changed cache file from a bad layer by hashing the rest.
		io.Copy(io.Discard, v.tee)
		if verr := v.verify(); verr != nil {
			return n, verr
		}
	}
	return n, err
}

// verify compares the hash of the whole file with the digest and evicts
// the file on a mismatch.
func (v *verifyingReader) verify() error {
	if !v.tee.eof {
		return nil
	}
	if got := hex.EncodeToString(v.h.Sum(nil)); got != v.c.want {
		os.Remove(v.c.path)
		return fmt.Errorf("%w: %w: cached blob sha256:%s changed on disk (now sha256:%s)", ErrInvalidImage, errEvicted, v.c.want, got)
	}
	return nil
}

func (v *verifyingReader) Close() error {
	v.dr.Close()
	v.f.Close()
	return v.verify()
}
