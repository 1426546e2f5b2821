// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"encoding/binary"
	"testing"

	"github.com/shifter-go/shifter/internal/sqtest"
)

// TestOutOfLineXattrs makes sure the feature tree's images really hold
// out-of-line xattr values (values shared by several inodes), so that the
// comparisons with unsquashfs and the kernel cover them, and that they
// read back as their inline twins.
func TestOutOfLineXattrs(t *testing.T) {
	tree := featureTree(t, true)
	if !tree.Xattrs {
		t.Skip("the temporary directory's filesystem takes no user xattrs")
	}
	img := sqtest.Build(t, tree.Dir)
	r, err := OpenFile(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	le := binary.LittleEndian
	ool := 0
	for _, in := range walkInodes(t, r) {
		if !in.HasXattrs() {
			continue
		}
		var e [16]byte
		if err := r.tableEntry(r.xattrIdx, int64(r.sb.XattrTableStart), uint64(in.xattr), e[:], "xattr id table"); err != nil {
			t.Fatal(err)
		}
		pos, err := r.xattrPos(le.Uint64(e[:]))
		if err != nil {
			t.Fatal(err)
		}
		end := r.xattrKVEnd()
		for i := uint32(0); i < le.Uint32(e[8:]); i++ {
			var h [4]byte
			if err := r.readMeta(&pos, h[:], end); err != nil {
				t.Fatal(err)
			}
			typ := le.Uint16(h[:])
			if err := r.skipMeta(&pos, int64(le.Uint16(h[2:])), end); err != nil {
				t.Fatal(err)
			}
			if err := r.readMeta(&pos, h[:], end); err != nil {
				t.Fatal(err)
			}
			if err := r.skipMeta(&pos, int64(le.Uint32(h[:])), end); err != nil {
				t.Fatal(err)
			}
			if typ&xattrOOL != 0 {
				ool++
			}
		}
	}
	if ool == 0 {
		t.Fatal("no out-of-line xattr value in the image")
	}
	a, _ := r.LookupPath("xattr/a")
	b, _ := r.LookupPath("xattr/b")
	va, err := r.Xattr(a, "user.shared")
	if err != nil {
		t.Fatal(err)
	}
	vb, err := r.Xattr(b, "user.shared")
	if err != nil || string(va) != string(vb) || len(va) < 100 {
		t.Fatalf("user.shared of a (%d bytes) and b (%d bytes, %v) differ", len(va), len(vb), err)
	}
}
