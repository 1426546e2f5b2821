// SPDX-License-Identifier: BSD-3-Clause

package fusefs_test

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/squashreader"
)

// These tests call the raw file system directly, without a mount.

func newFS(t *testing.T, opts *fusefs.Options) (*fusefs.FS, *squashreader.Reader, *sqtest.Tree) {
	t.Helper()
	src, tree := featureSource(t, true)
	img := sqtest.Build(t, src, "-comp", "gzip")
	r, err := squashreader.OpenFile(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f, err := fusefs.New(r, opts)
	if err != nil {
		t.Fatal(err)
	}
	return f, r, tree
}

func hdr(node uint64, uid uint32) *fuse.InHeader {
	return &fuse.InHeader{NodeId: node, Caller: fuse.Caller{Owner: fuse.Owner{Uid: uid, Gid: uid}}}
}

// lookupPath walks a slash-separated path from the root with Lookup.
func lookupPath(t *testing.T, f *fusefs.FS, p string) *fuse.EntryOut {
	t.Helper()
	out := &fuse.EntryOut{NodeId: fuse.FUSE_ROOT_ID}
	for _, name := range strings.Split(p, "/") {
		var next fuse.EntryOut
		if st := f.Lookup(nil, hdr(out.NodeId, 0), name, &next); !st.Ok() || next.NodeId == 0 {
			t.Fatalf("Lookup(%q in %s) = %v, node %d", name, p, st, next.NodeId)
		}
		out = &next
	}
	return out
}

func TestLookup(t *testing.T) {
	f, r, _ := newFS(t, nil)
	e := lookupPath(t, f, "files/text-100")
	in, err := r.LookupPath("files/text-100")
	if err != nil {
		t.Fatal(err)
	}
	if e.Ino != uint64(in.Ino) || e.Size != 100 || e.Mode != syscall.S_IFREG|0o644 || e.EntryTimeout() < 24*365*3600e9 {
		t.Errorf("Lookup(files/text-100) = %+v, want ino %d, 100 bytes, 0100644, a long timeout", e, in.Ino)
	}
	var ga fuse.AttrOut
	if st := f.GetAttr(nil, &fuse.GetAttrIn{InHeader: *hdr(e.NodeId, 0)}, &ga); !st.Ok() || ga.Attr != e.Attr {
		t.Errorf("GetAttr(node %d) = %v, %+v, want %+v", e.NodeId, st, ga.Attr, e.Attr)
	}

	files := lookupPath(t, f, "files")
	var out fuse.EntryOut
	if st := f.Lookup(nil, hdr(files.NodeId, 0), "missing", &out); !st.Ok() || out.NodeId != 0 || out.EntryTimeout() == 0 {
		t.Errorf("Lookup(missing) = %v, node %d, timeout %v; want OK, node 0 and a negative-entry timeout", st, out.NodeId, out.EntryTimeout())
	}
	if st := f.Lookup(nil, hdr(files.NodeId, 0), strings.Repeat("x", 257), &out); st != fuse.Status(syscall.ENAMETOOLONG) {
		t.Errorf("Lookup(257 bytes) = %v, want ENAMETOOLONG", st)
	}
	if st := f.Lookup(nil, hdr(e.NodeId, 0), "x", &out); st != fuse.ENOTDIR {
		t.Errorf("Lookup in a file = %v, want ENOTDIR", st)
	}
	if st := f.GetAttr(nil, &fuse.GetAttrIn{InHeader: *hdr(0, 0)}, &ga); st.Ok() {
		t.Errorf("GetAttr(node 0) = OK")
	}

	// Without negative caching, a missing name is ENOENT.
	f2, _, _ := newFS(t, &fusefs.Options{NegativeTimeout: -1})
	files = lookupPath(t, f2, "files")
	if st := f2.Lookup(nil, hdr(files.NodeId, 0), "missing", &out); st != fuse.ENOENT {
		t.Errorf("Lookup(missing) without negative timeout = %v, want ENOENT", st)
	}
}

// parseDirents decodes a READDIR or READDIRPLUS reply.
func parseDirents(t *testing.T, b []byte, plus bool) (names []string, offs []uint64, nodes []uint64) {
	t.Helper()
	entrySize := int(unsafe.Sizeof(fuse.EntryOut{}))
	for len(b) > 0 {
		var node uint64
		if plus {
			node = binary.NativeEndian.Uint64(b[0:8])
			b = b[entrySize:]
		}
		off := binary.NativeEndian.Uint64(b[8:16])
		n := int(binary.NativeEndian.Uint32(b[16:20]))
		names = append(names, string(b[24:24+n]))
		offs = append(offs, off)
		nodes = append(nodes, node)
		rec := (24 + n + 7) &^ 7
		b = b[rec:]
	}
	return
}

// TestReadDirResume lists directories in replies of many sizes, resuming
// at each returned offset, and checks the concatenation against the
// reader's listing.
func TestReadDirResume(t *testing.T) {
	f, r, _ := newFS(t, nil)
	for _, dir := range []string{"dirs/big", "files", "dirs/empty"} {
		in, err := r.LookupPath(dir)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{".", ".."}
		ents, err := r.ReadDir(in, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			want = append(want, e.Name)
		}
		node := lookupPath(t, f, dir).NodeId
		for _, plus := range []bool{false, true} {
			for _, size := range []uint32{200, 512, 4096, 65536} {
				var got []string
				off := uint64(0)
				for calls := 0; ; calls++ {
					if calls > 10000 {
						t.Fatalf("%s: no progress", dir)
					}
					buf := make([]byte, size)
					out := fuse.NewDirEntryList(buf, off)
					rin := &fuse.ReadIn{InHeader: *hdr(node, 0), Offset: off, Size: size}
					var st fuse.Status
					if plus {
						st = f.ReadDirPlus(nil, rin, out)
					} else {
						st = f.ReadDir(nil, rin, out)
					}
					if !st.Ok() {
						t.Fatalf("ReadDir(%s, off %d) = %v", dir, off, st)
					}
					names, offs, nodes := parseDirents(t, out.Bytes(), plus)
					if len(names) == 0 {
						break
					}
					for i, n := range names {
						if plus && n != "." && n != ".." && nodes[i] == 0 {
							t.Errorf("READDIRPLUS %s/%s without a node", dir, n)
						}
					}
					got = append(got, names...)
					off = offs[len(offs)-1]
				}
				if !slices.Equal(got, want) {
					t.Errorf("ReadDir(%s, plus=%v, size %d) = %d names %q..., want %d", dir, plus, size, len(got), got[:min(len(got), 5)], len(want))
				}
			}
		}
	}
}

func TestXattrs(t *testing.T) {
	f, _, tree := newFS(t, nil)
	if !tree.Xattrs {
		t.Skip("no xattrs in the tree (the file system under TMPDIR takes none)")
	}
	a := lookupPath(t, f, "xattr/a").NodeId
	// Sizes: the value of user.shared is 390 bytes.
	if n, st := f.GetXAttr(nil, hdr(a, 0), "user.shared", nil); st != fuse.ERANGE || n != 390 {
		t.Errorf("GetXAttr(size 0) = %d, %v; want 390, ERANGE (go-fuse turns it into the size)", n, st)
	}
	if n, st := f.GetXAttr(nil, hdr(a, 0), "user.shared", make([]byte, 10)); st != fuse.ERANGE || n != 390 {
		t.Errorf("GetXAttr(10 bytes) = %d, %v; want 390, ERANGE", n, st)
	}
	buf := make([]byte, 390)
	if n, st := f.GetXAttr(nil, hdr(a, 0), "user.shared", buf); !st.Ok() || !bytes.HasPrefix(buf[:n], []byte("shared-value ")) {
		t.Errorf("GetXAttr = %d, %v, %q", n, st, buf[:n])
	}
	if _, st := f.GetXAttr(nil, hdr(a, 0), "user.nope", buf); st != fuse.ENOATTR {
		t.Errorf("GetXAttr(missing) = %v, want ENODATA", st)
	}
	if n, st := f.GetXAttr(nil, hdr(a, 0), "user.empty", buf); !st.Ok() || n != 0 {
		t.Errorf("GetXAttr(user.empty) = %d, %v; want 0, OK", n, st)
	}
	none := lookupPath(t, f, "xattr/none").NodeId
	if n, st := f.ListXAttr(nil, hdr(none, 0), buf); !st.Ok() || n != 0 {
		t.Errorf("ListXAttr(no xattrs) = %d, %v", n, st)
	}
	list := func(uid uint32) string {
		n, st := f.ListXAttr(nil, hdr(a, uid), nil)
		if st != fuse.ERANGE {
			t.Fatalf("ListXAttr(size 0) = %d, %v", n, st)
		}
		b := make([]byte, n)
		m, st := f.ListXAttr(nil, hdr(a, uid), b)
		if !st.Ok() || m != n {
			t.Fatalf("ListXAttr = %d, %v; want %d", m, st, n)
		}
		return strings.ReplaceAll(string(b), "\x00", " ")
	}
	root, user := list(0), list(1000)
	if !strings.Contains(root, "user.one user.empty user.bin user.shared ") {
		t.Errorf("ListXAttr as root = %q", root)
	}
	if tree.Root && (!strings.Contains(root, "trusted.t") || strings.Contains(user, "trusted.")) {
		t.Errorf("ListXAttr: root %q, uid 1000 %q; want trusted.* for root only", root, user)
	}
}

func TestReadAndReadOnly(t *testing.T) {
	f, _, _ := newFS(t, nil)
	e := lookupPath(t, f, "files/text-100")
	buf := make([]byte, 4096)
	rr, st := f.Read(nil, &fuse.ReadIn{InHeader: *hdr(e.NodeId, 0), Offset: 90, Size: 4096}, buf)
	if !st.Ok() {
		t.Fatal(st)
	}
	if b, _ := rr.Bytes(nil); len(b) != 10 {
		t.Errorf("Read at 90 of a 100-byte file = %d bytes, want 10", len(b))
	}
	rr, st = f.Read(nil, &fuse.ReadIn{InHeader: *hdr(e.NodeId, 0), Offset: 1000, Size: 4096}, buf)
	if b, _ := rr.Bytes(nil); !st.Ok() || len(b) != 0 {
		t.Errorf("Read past the end = %d bytes, %v", len(b), st)
	}
	if _, st := f.Read(nil, &fuse.ReadIn{InHeader: *hdr(fuse.FUSE_ROOT_ID, 0), Size: 10}, buf); st.Ok() {
		t.Error("Read of a directory = OK")
	}
	var oo fuse.OpenOut
	if st := f.Open(nil, &fuse.OpenIn{InHeader: *hdr(e.NodeId, 0), Flags: syscall.O_RDWR}, &oo); st != fuse.EROFS {
		t.Errorf("Open(O_RDWR) = %v, want EROFS", st)
	}
	if st := f.Open(nil, &fuse.OpenIn{InHeader: *hdr(e.NodeId, 0)}, &oo); !st.Ok() || oo.OpenFlags&fuse.FOPEN_KEEP_CACHE == 0 {
		t.Errorf("Open (kernel without no-open support) = %v, flags %#x; want FOPEN_KEEP_CACHE", st, oo.OpenFlags)
	}
	var eo fuse.EntryOut
	for name, st := range map[string]fuse.Status{
		"mkdir":    f.Mkdir(nil, &fuse.MkdirIn{InHeader: *hdr(1, 0)}, "d", &eo),
		"unlink":   f.Unlink(nil, hdr(1, 0), "files"),
		"setattr":  f.SetAttr(nil, &fuse.SetAttrIn{}, &fuse.AttrOut{}),
		"setxattr": f.SetXAttr(nil, &fuse.SetXAttrIn{}, "user.x", nil),
		"create":   f.Create(nil, &fuse.CreateIn{}, "x", &fuse.CreateOut{}),
	} {
		if st != fuse.EROFS {
			t.Errorf("%s = %v, want EROFS", name, st)
		}
	}
	if s := f.Stats(); s["MODIFY(EROFS)"] != 5 || s["OPEN"] != 2 || s.Total() == 0 {
		t.Errorf("Stats() = %v", s)
	}
}
