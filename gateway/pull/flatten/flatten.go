// SPDX-License-Identifier: BSD-3-Clause

package flatten

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"
)

// Errors returned by this package; test with errors.Is.
var (
	// ErrTooLarge: a layer, the merged tree or its metadata exceed a limit.
	ErrTooLarge = errors.New("image too large")
	// ErrFormat: a layer is not a valid tar stream.
	ErrFormat = errors.New("invalid layer tar")
)

// Layer is one image layer, oldest first in a slice.
type Layer interface {
	// Open returns the layer's uncompressed tar stream. It is called once
	// per pass. Index reads each stream to its end before closing it, so
	// Close may report a verification failure (digest mismatch) then.
	Open() (io.ReadCloser, error)
}

// LayerFunc adapts a function to Layer.
type LayerFunc func() (io.ReadCloser, error)

// Open calls f.
func (f LayerFunc) Open() (io.ReadCloser, error) { return f() }

// Options bounds the work; zero fields take the defaults.
type Options struct {
	// MaxEntries bounds the tar headers read over all layers. Default 4,000,000.
	MaxEntries int
	// MaxSize bounds the bytes read from each layer and the flattened tar.
	// Default 20 GiB.
	MaxSize int64
	// MaxHeaderBytes bounds the memory held for names, link targets and
	// xattrs of the merged tree. Default 512 MiB.
	MaxHeaderBytes int64
	// Logger receives warnings about dropped entries. Default: discard.
	Logger *slog.Logger
}

// Stats counts what Index saw.
type Stats struct {
	Entries  int   // tar headers read over all layers
	Nodes    int   // paths in the merged tree (without the root)
	Files    int   // distinct regular files (inodes) in the merged tree
	Dropped  int   // entries dropped: unsafe names, device nodes, bad links, ...
	Devices  int   // device nodes among Dropped
	Xattrs   int   // xattrs stripped: trusted.* and *.overlay.*
	Size     int64 // bytes of the flattened tar
	Contents int64 // bytes of file contents in the flattened tar
}

// Tree is the merged tree of an image's layers, from Index.
type Tree struct {
	root        *node
	layers      []Layer
	opts        Options
	log         *slog.Logger
	headerBytes int64
	stats       Stats
	byLayer     []map[int]*inode
}

// maxXattrBytes bounds the xattrs of one entry (Linux's XATTR_SIZE_MAX).
const maxXattrBytes = 64 << 10

// maxLoggedDrops bounds the per-entry warnings of one Index.
const maxLoggedDrops = 20

// Index reads the headers of every layer, oldest first, and builds the
// merged tree.
func Index(ctx context.Context, layers []Layer, opts Options) (*Tree, error) {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 4_000_000
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = 20 << 30
	}
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = 512 << 20
	}
	t := &Tree{layers: layers, opts: opts, log: opts.Logger}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.root = newDir("", nil, -1, nil)
	for i, l := range layers {
		if err := t.indexLayer(ctx, i, l); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	if t.stats.Dropped > 0 {
		t.log.Warn("dropped layer entries", "dropped", t.stats.Dropped, "devices", t.stats.Devices)
	}
	if t.stats.Xattrs > 0 {
		t.log.Warn("stripped trusted.* and overlay xattrs from layer entries", "xattrs", t.stats.Xattrs)
	}
	if err := t.finish(); err != nil {
		return nil, err
	}
	return t, nil
}

// countReader fails reads past limit bytes.
type countReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if c.n > c.limit {
		return n, fmt.Errorf("%w: layer larger than %d bytes", ErrTooLarge, c.limit)
	}
	return n, err
}

func (t *Tree) indexLayer(ctx context.Context, i int, l Layer) (err error) {
	rc, err := l.Open()
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer func() {
		if cerr := rc.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	cr := &countReader{r: rc, limit: t.opts.MaxSize}
	tr := tar.NewReader(cr)
	for ord := 0; ; ord++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			if errors.Is(err, ErrTooLarge) {
				return err
			}
			return fmt.Errorf("%w: entry %d: %v", ErrFormat, ord, err)
		}
		t.stats.Entries++
		if t.stats.Entries > t.opts.MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrTooLarge, t.opts.MaxEntries)
		}
		if ord%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := t.apply(i, ord, h); err != nil {
			return err
		}
	}
	// Read to the end so that the layer's reader verifies its digest.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

func (t *Tree) drop(layer int, name, why string) {
	t.stats.Dropped++
	if t.stats.Dropped <= maxLoggedDrops {
		t.log.Warn("dropping layer entry", "layer", layer, "path", truncate(name, 200), "reason", why)
	}
}

// apply merges entry ord of layer i into the tree.
func (t *Tree) apply(i, ord int, h *tar.Header) error {
	typ := h.Typeflag
	switch typ {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeGNUSparse, tar.TypeCont: // (the reader turns TypeRegA into TypeReg)
		typ = tar.TypeReg
	}
	comps, ok := splitName(h.Name)
	if !ok {
		t.drop(i, h.Name, "unsafe name")
		return nil
	}
	if len(comps) == 0 {
		if typ == tar.TypeDir {
			t.root.hdr = t.clean(h, tar.TypeDir)
			return nil
		}
		t.drop(i, h.Name, "non-directory root")
		return nil
	}
	dirComps, base := comps[:len(comps)-1], comps[len(comps)-1]
	if strings.HasPrefix(base, whPrefix) {
		return t.applyWhiteout(i, h.Name, dirComps, base)
	}
	switch typ {
	case tar.TypeChar, tar.TypeBlock:
		t.stats.Devices++
		t.drop(i, h.Name, "device node")
		return nil
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	default:
		t.drop(i, h.Name, fmt.Sprintf("unsupported entry type %q", typ))
		return nil
	}
	if typ == tar.TypeSymlink && (len(h.Linkname) > maxPath || strings.IndexByte(h.Linkname, 0) >= 0) {
		t.drop(i, h.Name, "bad symlink target")
		return nil
	}
	if err := t.charge(h); err != nil {
		return err
	}
	var target *node
	if typ == tar.TypeLink {
		lc, ok := splitName(h.Linkname)
		if !ok || len(lc) == 0 {
			t.drop(i, h.Name, "hard link target outside the image")
			return nil
		}
		if pd := t.lookupDir(lc[:len(lc)-1], i, false); pd != nil {
			target = pd.kids[lc[len(lc)-1]]
		}
		// Like link(2), a hard link to a symlink or fifo links to it, not
		// to what a symlink points at; directories cannot be linked.
		if target == nil || (target.ino == nil && target.kind != tar.TypeSymlink && target.kind != tar.TypeFifo) {
			t.drop(i, h.Name, "hard link target missing or a directory")
			return nil
		}
	}
	parent := t.lookupDir(dirComps, i, true)
	existing := parent.kids[base]
	var n *node
	switch typ {
	case tar.TypeDir:
		if existing != nil && existing.kind == tar.TypeDir {
			existing.hdr, existing.layer = t.clean(h, typ), i
			return nil
		}
		n = newDir(base, parent, i, t.clean(h, typ))
	case tar.TypeReg:
		n = &node{name: base, parent: parent, kind: tar.TypeReg, layer: i,
			ino: &inode{layer: i, ord: ord, hdr: t.clean(h, typ)}}
	case tar.TypeLink:
		if target == existing {
			return nil
		}
		if target.ino == nil {
			// A symlink or fifo: the names share the header, which
			// WriteTo turns into one inode.
			n = &node{name: base, parent: parent, kind: target.kind, layer: i, hdr: target.hdr}
			break
		}
		n = &node{name: base, parent: parent, kind: tar.TypeReg, layer: i, ino: target.ino}
	default:
		n = &node{name: base, parent: parent, kind: typ, layer: i, hdr: t.clean(h, typ)}
	}
	parent.kids[base] = n
	return nil
}

func (t *Tree) applyWhiteout(i int, name string, dirComps []string, base string) error {
	if base == whOpaque {
		// The marker says its directory is a directory of this layer.
		removeLower(t.lookupDir(dirComps, i, true), i)
		return nil
	}
	if strings.HasPrefix(base, whMeta) {
		return nil // other AUFS metadata (.wh..wh.plnk, ...): not content
	}
	victim := base[len(whPrefix):]
	if victim == "" || victim == "." || victim == ".." {
		t.drop(i, name, "whiteout of an invalid name")
		return nil
	}
	if d := t.lookupDir(dirComps, i, false); d != nil {
		delete(d.kids, victim)
	}
	return nil
}

// charge accounts the memory a header keeps in the tree.
func (t *Tree) charge(h *tar.Header) error {
	n := int64(len(h.Name) + len(h.Linkname) + 256)
	for k, v := range h.PAXRecords {
		if strings.HasPrefix(k, xattrPrefix) {
			n += int64(len(k) + len(v))
		}
	}
	t.headerBytes += n
	if t.headerBytes > t.opts.MaxHeaderBytes {
		return fmt.Errorf("%w: layer metadata exceeds %d bytes", ErrTooLarge, t.opts.MaxHeaderBytes)
	}
	return nil
}

const xattrPrefix = "SCHILY.xattr."

// overlayXattr reports whether an xattr must not reach the image: the
// runtime mounts the squashfs as an overlayfs lower layer, where
// overlayfs reads trusted.overlay.* (and user.overlay.* on user-xattr
// mounts) as its own metadata (opaque directories, redirects, metacopy),
// and trusted.* is the privileged namespace no image may set.
func overlayXattr(name string) bool {
	if strings.HasPrefix(name, "trusted.") {
		return true
	}
	_, rest, _ := strings.Cut(name, ".")
	return strings.HasPrefix(rest, "overlay.")
}

// maxTime is the latest time squashfs can store (unsigned 32-bit seconds).
var maxTime = time.Unix(math.MaxUint32, 0)

// clean keeps the attributes of h that go into the image: type, mode
// (permission, setuid/setgid and sticky bits), numeric owner, mtime,
// size, symlink target and xattrs (but trusted.* and *.overlay.*, see
// overlayXattr). User and group names are dropped so mksquashfs never
// maps them through the gateway's own accounts.
func (t *Tree) clean(h *tar.Header, typ byte) *tar.Header {
	c := &tar.Header{
		Typeflag: typ,
		Mode:     h.Mode & 0o7777,
		Uid:      max(h.Uid, 0),
		Gid:      max(h.Gid, 0),
		ModTime:  h.ModTime.Truncate(time.Second),
	}
	if int64(c.Uid) > math.MaxUint32 {
		c.Uid = 0
	}
	if int64(c.Gid) > math.MaxUint32 {
		c.Gid = 0
	}
	if c.ModTime.Before(epoch) {
		c.ModTime = epoch
	} else if c.ModTime.After(maxTime) {
		c.ModTime = maxTime
	}
	switch typ {
	case tar.TypeReg:
		c.Size = h.Size
	case tar.TypeSymlink:
		c.Linkname = h.Linkname
	}
	var total int
	keys := make([]string, 0, len(h.PAXRecords))
	for k := range h.PAXRecords {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := h.PAXRecords[k]
		name, ok := strings.CutPrefix(k, xattrPrefix)
		if !ok || name == "" || len(name) > maxName || strings.IndexByte(name, 0) >= 0 {
			continue
		}
		if overlayXattr(name) {
			t.stats.Xattrs++
			continue
		}
		if total += len(name) + len(v); total > maxXattrBytes {
			break
		}
		if c.PAXRecords == nil {
			c.PAXRecords = map[string]string{}
		}
		c.PAXRecords[k] = v
	}
	return c
}

// finish collects the surviving names of each file and the flattened size.
func (t *Tree) finish() error {
	t.byLayer = make([]map[int]*inode, len(t.layers))
	var size int64 = 1024 // end-of-archive blocks
	var walk func(n *node)
	walk = func(n *node) {
		for _, name := range sortedKids(n) {
			k := n.kids[name]
			t.stats.Nodes++
			size += 3 * 512 // header, with room for PAX records
			if k.ino != nil {
				if len(k.ino.names) == 0 {
					if t.byLayer[k.ino.layer] == nil {
						t.byLayer[k.ino.layer] = map[int]*inode{}
					}
					t.byLayer[k.ino.layer][k.ino.ord] = k.ino
					t.stats.Files++
					t.stats.Contents += k.ino.hdr.Size
					size += (k.ino.hdr.Size + 511) &^ 511
				}
				k.ino.names = append(k.ino.names, k)
			}
			if k.kind == tar.TypeDir {
				walk(k)
			}
		}
	}
	walk(t.root)
	t.stats.Size = size
	if size > t.opts.MaxSize {
		return fmt.Errorf("%w: flattened image of %d bytes exceeds %d", ErrTooLarge, size, t.opts.MaxSize)
	}
	return nil
}

func sortedKids(n *node) []string {
	names := make([]string, 0, len(n.kids))
	for k := range n.kids {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Stats returns what Index counted.
func (t *Tree) Stats() Stats { return t.stats }

// Root returns the attributes of the image's root directory (from a "./"
// entry, else mode 0755, owned by root, mtime 0).
func (t *Tree) Root() tar.Header { return *t.root.hdr }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
