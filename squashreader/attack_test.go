// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"testing"
)

// Attacks patch the uncompressed fixture (metadata stored as is) and check
// that the reader reports ErrFormat instead of panicking, looping or
// returning bad names.

func loadUncompressed(t *testing.T) ([]byte, *Reader) {
	t.Helper()
	img, err := os.ReadFile("testdata/uncompressed.sqfs")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(bytes.NewReader(img), int64(len(img)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return img, r
}

// inodeOff returns the image offset of the inode at path (first inode
// metadata block only).
func inodeOff(t *testing.T, r *Reader, p string) int64 {
	t.Helper()
	in, err := r.LookupPath(p)
	if err != nil {
		t.Fatal(err)
	}
	if in.Ref.block() != 0 {
		t.Fatalf("%s not in the first inode block", p)
	}
	return int64(r.sb.InodeTableStart) + 2 + int64(in.Ref.offset())
}

// entryOff returns the image offset of the directory entry called name
// (the entry starts 8 bytes before its name).
func entryOff(t *testing.T, r *Reader, img []byte, name string) int64 {
	t.Helper()
	start, end := int64(r.sb.DirTableStart), r.dirEnd
	i := bytes.Index(img[start:end], []byte(name))
	if i < 0 {
		t.Fatalf("entry %q not found", name)
	}
	return start + int64(i) - 8
}

func openPatched(t *testing.T, img []byte) (*Reader, error) {
	t.Helper()
	return Open(bytes.NewReader(img), int64(len(img)), nil)
}

func wantFormat(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrFormat) {
		t.Errorf("%s: error %v, want ErrFormat", what, err)
	}
	var fe *FormatError
	if err != nil && !errors.As(err, &fe) {
		t.Errorf("%s: error %v is not a *FormatError", what, err)
	}
}

func TestAttackNames(t *testing.T) {
	for _, tc := range []struct {
		entry string
		name  string
	}{
		{"f1", ".."},
		{"f2", "a/"},
		{"f3", "f\x00"},
		{"f4", "f5"}, // duplicate / out of order
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, r := loadUncompressed(t)
			off := entryOff(t, r, img, tc.entry)
			copy(img[off+8:], tc.name)
			r2, err := openPatched(t, img)
			if err != nil {
				t.Fatal(err)
			}
			sub, err := r2.LookupPath("dir/sub")
			if err != nil {
				t.Fatal(err)
			}
			ents, err := r2.ReadDir(sub, 0, 0)
			wantFormat(t, "ReadDir", err)
			for _, e := range ents {
				if checkName(e.Name) != nil {
					t.Errorf("ReadDir returned %q", e.Name)
				}
			}
			if _, err := r2.FS().ReadDir("dir/sub"); !errors.Is(err, ErrFormat) {
				t.Errorf("FS.ReadDir error %v, want ErrFormat", err)
			}
		})
	}
	t.Run("dot", func(t *testing.T) {
		img, r := loadUncompressed(t)
		off := entryOff(t, r, img, "f6")
		binary.LittleEndian.PutUint16(img[off+6:], 0) // name size 1
		img[off+8] = '.'
		r2, err := openPatched(t, img)
		if err != nil {
			t.Fatal(err)
		}
		sub, _ := r2.LookupPath("dir")
		sub, err = r2.Lookup(sub, "sub")
		if err != nil {
			t.Fatal(err)
		}
		_, err = r2.ReadDir(sub, 0, 0)
		wantFormat(t, "ReadDir", err)
	})
}

func TestAttackSelfReference(t *testing.T) {
	img, r := loadUncompressed(t)
	dir, err := r.LookupPath("dir")
	if err != nil {
		t.Fatal(err)
	}
	off := entryOff(t, r, img, "sub")
	binary.LittleEndian.PutUint16(img[off:], uint16(dir.Ref.offset())) // dir/sub -> dir
	r2, err := openPatched(t, img)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r2.LookupPath("dir/sub")
	wantFormat(t, "LookupPath(dir/sub)", err)
	n := 0
	err = fs.WalkDir(r2.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		n++
		if n > 1000 {
			t.Fatal("walk does not end")
		}
		return err
	})
	wantFormat(t, "WalkDir", err)
}

func TestAttackInodes(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name  string
		patch func(img []byte, r *Reader, off int64)
	}{
		{"file size 2^32-1", func(img []byte, r *Reader, off int64) { le.PutUint32(img[off+28:], 0xffffffff) }},
		{"fragment index == count", func(img []byte, r *Reader, off int64) { le.PutUint32(img[off+20:], r.sb.Fragments) }},
		{"fragment offset past block", func(img []byte, r *Reader, off int64) { le.PutUint32(img[off+24:], uint32(r.bs)) }},
		{"uid index == count", func(img []byte, r *Reader, off int64) { le.PutUint16(img[off+4:], r.sb.IDCount) }},
		{"type 15", func(img []byte, r *Reader, off int64) { le.PutUint16(img[off:], 15) }},
		{"inode number 0", func(img []byte, r *Reader, off int64) { le.PutUint32(img[off+12:], 0) }},
		{"inode number past count", func(img []byte, r *Reader, off int64) { le.PutUint32(img[off+12:], r.sb.Inodes+1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, r := loadUncompressed(t)
			tc.patch(img, r, inodeOff(t, r, "dir/sub/f1")) // a basic file inode
			r2, err := openPatched(t, img)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r2.LookupPath("dir/sub/f1")
			wantFormat(t, "LookupPath", err)
		})
	}
	// dir/aaaa is an extended file inode (it has an xattr).
	for _, tc := range []struct {
		name  string
		patch func(img []byte, r *Reader, off int64)
	}{
		{"extended size 2^62", func(img []byte, r *Reader, off int64) { le.PutUint64(img[off+24:], 1<<62) }},
		{"extended size 2^63", func(img []byte, r *Reader, off int64) { le.PutUint64(img[off+24:], 1<<63) }},
		{"extended blocks past end", func(img []byte, r *Reader, off int64) { le.PutUint64(img[off+16:], 1<<40) }},
		{"extended xattr id == count", func(img []byte, r *Reader, off int64) { le.PutUint32(img[off+52:], r.xattrIDs) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, r := loadUncompressed(t)
			tc.patch(img, r, inodeOff(t, r, "dir/aaaa"))
			r2, err := openPatched(t, img)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r2.LookupPath("dir/aaaa")
			wantFormat(t, "LookupPath", err)
		})
	}
	t.Run("inode ref offset 8192", func(t *testing.T) {
		_, r := loadUncompressed(t)
		_, err := r.Inode(InodeRef(8192))
		wantFormat(t, "Inode", err)
		_, err = r.Inode(InodeRef(1 << 40))
		wantFormat(t, "Inode", err)
	})
	t.Run("symlink target 2^32-1", func(t *testing.T) {
		img, r := loadUncompressed(t)
		le.PutUint32(img[inodeOff(t, r, "abs")+20:], 0xffffffff)
		r2, err := openPatched(t, img)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r2.LookupPath("abs")
		wantFormat(t, "LookupPath", err)
	})
}

func TestAttackSuperblock(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name  string
		patch func(img []byte)
	}{
		{"block size 2^32-1", func(img []byte) { le.PutUint32(img[12:], 0xffffffff) }},
		{"block size 2M", func(img []byte) { le.PutUint32(img[12:], 2<<20); le.PutUint16(img[22:], 21) }},
		{"fragments 2^32-1", func(img []byte) { le.PutUint32(img[16:], 0xffffffff) }},
		{"bytes used past end", func(img []byte) { le.PutUint64(img[40:], 1<<62) }},
		{"id table past end", func(img []byte) { le.PutUint64(img[48:], uint64(len(img))) }},
		{"inode table past end", func(img []byte) { le.PutUint64(img[64:], 1<<63) }},
		{"no ids", func(img []byte) { le.PutUint16(img[26:], 0) }},
		{"compression 9", func(img []byte) { le.PutUint16(img[20:], 9) }},
		{"version 3", func(img []byte) { le.PutUint16(img[28:], 3) }},
		{"root ref past table", func(img []byte) { le.PutUint64(img[32:], 0xffff_ffff_0000) }},
		{"xattr ids 2^32-1", func(img []byte) {
			x := le.Uint64(img[56:])
			le.PutUint32(img[x+8:], 0xffffffff)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, _ := loadUncompressed(t)
			tc.patch(img)
			_, err := openPatched(t, img)
			wantFormat(t, "Open", err)
		})
	}
}

// TestAttackData corrupts data and fragment blocks and block size words:
// reads fail with ErrFormat, never return bytes from elsewhere.
func TestAttackData(t *testing.T) {
	le := binary.LittleEndian
	for _, fix := range []string{"gzip", "xz", "lzo", "lz4", "zstd"} {
		for _, target := range []string{"dir/aaaa"} { // (fixture fragments are stored uncompressed)
			t.Run(fix+"/"+target, func(t *testing.T) {
				img, err := os.ReadFile("testdata/" + fix + ".sqfs")
				if err != nil {
					t.Fatal(err)
				}
				r, err := Open(bytes.NewReader(img), int64(len(img)), nil)
				if err != nil {
					t.Fatal(err)
				}
				in, err := r.LookupPath(target)
				if err != nil {
					t.Fatal(err)
				}
				var off, n int64
				word := uint32(0)
				if len(in.starts) > 0 {
					off, word = in.starts[0], in.sizes[0]
				} else {
					k, err := r.fragment(in.frag)
					if err != nil {
						t.Fatal(err)
					}
					off, word = k.off, k.word
				}
				n = int64(word &^ uncompressedBit)
				r.Close()
				if word&uncompressedBit != 0 {
					t.Fatal("block stored uncompressed: corruption would be undetectable")
				}
				// Zero the second half of the compressed block.
				for i := off + n/2; i < off+n; i++ {
					img[i] ^= 0x55
				}
				r2, err := Open(bytes.NewReader(img), int64(len(img)), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer r2.Close()
				in2, err := r2.LookupPath(target)
				if err != nil {
					t.Fatal(err)
				}
				_, err = r2.ReadAt(in2, make([]byte, in2.Size), 0)
				wantFormat(t, "ReadAt", err)
			})
		}
	}
	t.Run("size word claims compressed", func(t *testing.T) {
		img, r := loadUncompressed(t)
		in, err := r.LookupPath("dir/aaaa")
		if err != nil {
			t.Fatal(err)
		}
		// The extended file inode's block list starts 56 bytes in.
		off := inodeOff(t, r, "dir/aaaa") + 56
		if w := le.Uint32(img[off:]); w != in.sizes[0] {
			t.Fatalf("block list not found: 0x%x", w)
		}
		le.PutUint32(img[off:], in.sizes[0]&^uncompressedBit)
		r2, err := openPatched(t, img)
		if err != nil {
			t.Fatal(err)
		}
		in2, err := r2.LookupPath("dir/aaaa")
		if err != nil {
			t.Fatal(err)
		}
		_, err = r2.ReadAt(in2, make([]byte, 10), 0)
		wantFormat(t, "ReadAt", err)
	})
	t.Run("short uncompressed block", func(t *testing.T) {
		img, r := loadUncompressed(t)
		in, _ := r.LookupPath("dir/aaaa")
		off := inodeOff(t, r, "dir/aaaa") + 56
		le.PutUint32(img[off:], in.sizes[0]-1)
		r2, err := openPatched(t, img)
		if err != nil {
			t.Fatal(err)
		}
		in2, _ := r2.LookupPath("dir/aaaa")
		_, err = r2.ReadAt(in2, make([]byte, 10), 0)
		wantFormat(t, "ReadAt", err)
	})
}
