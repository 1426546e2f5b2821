// SPDX-License-Identifier: BSD-3-Clause

package flatten

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
)

// WriteTo writes the merged tree to w as one tar stream: first every
// directory, symlink and fifo (parents before children; a symlink or fifo
// with several names once, then hard links to it), then, reading
// the layers again in order, each surviving file's content once under
// its first name followed by hard links for its other names. The root
// directory itself is not in the stream (see Root).
func (t *Tree) WriteTo(ctx context.Context, w io.Writer) error {
	tw := tar.NewWriter(w)
	if err := t.writeMeta(ctx, tw, t.root, "", map[*tar.Header]string{}); err != nil {
		return err
	}
	for i, l := range t.layers {
		if len(t.byLayer[i]) == 0 {
			continue
		}
		if err := t.writeLayer(ctx, tw, i, l); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finish tar: %w", err)
	}
	return nil
}

func entryHeader(h *tar.Header, name string) *tar.Header {
	c := *h
	c.Name = name
	if c.Typeflag == tar.TypeDir {
		c.Name += "/"
	}
	return &c
}

// writeMeta writes d's directories, symlinks and fifos. Symlinks and
// fifos that share a header (hard links to them in a layer) are written
// once, later names as hard links to the first (written maps headers to
// the name they were written under).
func (t *Tree) writeMeta(ctx context.Context, tw *tar.Writer, d *node, prefix string, written map[*tar.Header]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, name := range sortedKids(d) {
		k := d.kids[name]
		if k.kind == tar.TypeReg {
			continue
		}
		p := prefix + name
		h := k.hdr
		if k.kind != tar.TypeDir {
			if first, ok := written[k.hdr]; ok {
				lh := *k.hdr
				lh.Typeflag, lh.Size, lh.Linkname = tar.TypeLink, 0, first
				h = &lh
			} else {
				written[k.hdr] = p
			}
		}
		if err := tw.WriteHeader(entryHeader(h, p)); err != nil {
			return fmt.Errorf("write %q: %w", truncate(p, 200), err)
		}
		if k.kind == tar.TypeDir {
			if err := t.writeMeta(ctx, tw, k, p+"/", written); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *Tree) writeLayer(ctx context.Context, tw *tar.Writer, i int, l Layer) (err error) {
	rc, err := l.Open()
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer func() {
		if cerr := rc.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	tr := tar.NewReader(rc)
	left := len(t.byLayer[i])
	for ord := 0; left > 0; ord++ {
		h, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%w: layer ended before entry %d (changed since indexing?)", ErrFormat, ord)
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return fmt.Errorf("%w: entry %d: %v", ErrFormat, ord, err)
		}
		ino := t.byLayer[i][ord]
		if ino == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		left--
		if h.Size != ino.hdr.Size {
			return fmt.Errorf("%w: entry %d changed size since indexing", ErrFormat, ord)
		}
		first := ino.names[0].path()
		if err := tw.WriteHeader(entryHeader(ino.hdr, first)); err != nil {
			return fmt.Errorf("write %q: %w", truncate(first, 200), err)
		}
		if n, err := io.CopyN(tw, tr, ino.hdr.Size); err != nil {
			return fmt.Errorf("copy %q (%d of %d bytes): %w", truncate(first, 200), n, ino.hdr.Size, err)
		}
		for _, other := range ino.names[1:] {
			lh := *ino.hdr
			lh.Typeflag, lh.Size, lh.Linkname = tar.TypeLink, 0, first
			if err := tw.WriteHeader(entryHeader(&lh, other.path())); err != nil {
				return fmt.Errorf("write link %q: %w", truncate(other.path(), 200), err)
			}
		}
	}
	return nil
}
