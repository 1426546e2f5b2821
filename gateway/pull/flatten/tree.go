// SPDX-License-Identifier: BSD-3-Clause

package flatten

import (
	"archive/tar"
	"strings"
	"time"
)

// node is one path of the merged tree.
type node struct {
	name   string
	parent *node
	kind   byte        // tar.TypeDir, TypeReg (files and their hard links), TypeSymlink or TypeFifo
	hdr    *tar.Header // attributes of dirs, symlinks and fifos (files: ino.hdr); hard-linked symlinks and fifos share it
	kids   map[string]*node
	layer  int    // the layer that last created or re-declared this path
	ino    *inode // files: the content shared by hard links
}

// inode is a regular file's content: the layer entry that carries it.
type inode struct {
	layer, ord int
	hdr        *tar.Header
	names      []*node // the surviving paths, filled by finish
}

// maxSymlinkHops bounds symlink resolution, as Linux's MAXSYMLINKS.
const maxSymlinkHops = 40

var epoch = time.Unix(0, 0)

func newDir(name string, parent *node, layer int, h *tar.Header) *node {
	if h == nil {
		h = &tar.Header{Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}
	}
	return &node{name: name, parent: parent, kind: tar.TypeDir, hdr: h, kids: map[string]*node{}, layer: layer}
}

// path returns n's path from the root, without leading "/".
func (n *node) path() string {
	if n.parent == nil {
		return ""
	}
	var parts []string
	for ; n.parent != nil; n = n.parent {
		parts = append(parts, n.name)
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, "/")
}

// lookupDir walks comps from the root and returns the directory they
// name, following symlinks inside the tree (never above its root). With
// create, missing directories are created (implicit, mode 0755, root) and
// non-directories in the way are replaced by directories; without, it
// returns nil when the path is not a directory.
func (t *Tree) lookupDir(comps []string, layer int, create bool) *node {
	cur := t.root
	for _, c := range comps {
		k := cur.kids[c]
		if k != nil && k.kind == tar.TypeSymlink {
			if r := t.resolve(k, 0); r != nil && r.kind == tar.TypeDir {
				k = r
			} else if !create {
				return nil
			} else {
				k = nil
			}
		}
		if k != nil && k.kind != tar.TypeDir {
			if !create {
				return nil
			}
			k = nil
		}
		if k == nil {
			if !create {
				return nil
			}
			k = newDir(c, cur, layer, nil)
			cur.kids[c] = k
		}
		cur = k
	}
	return cur
}

// resolve follows symlink s inside the tree: absolute targets start at the
// image root and ".." stops at it. It returns nil for dangling links and
// loops.
func (t *Tree) resolve(s *node, hops int) *node {
	if hops >= maxSymlinkHops {
		return nil
	}
	cur := s.parent
	target := s.hdr.Linkname
	if strings.HasPrefix(target, "/") {
		cur = t.root
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			if cur.parent != nil {
				cur = cur.parent
			}
			continue
		}
		if cur.kind != tar.TypeDir {
			return nil
		}
		k := cur.kids[c]
		if k == nil {
			return nil
		}
		if k.kind == tar.TypeSymlink {
			hops++
			if k = t.resolve(k, hops); k == nil {
				return nil
			}
		}
		cur = k
	}
	return cur
}

// removeLower implements an opaque marker in d at layer: every entry
// below d from a lower layer goes. Directories re-declared or holding
// entries of this layer stay.
func removeLower(d *node, layer int) {
	for name, k := range d.kids {
		if k.kind == tar.TypeDir {
			removeLower(k, layer)
			if k.layer < layer && len(k.kids) == 0 {
				delete(d.kids, name)
			}
			continue
		}
		if k.layer < layer {
			delete(d.kids, name)
		}
	}
}
