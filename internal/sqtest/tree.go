// SPDX-License-Identifier: BSD-3-Clause

// Package sqtest builds squashfs test images with the real mksquashfs from
// generated trees that exercise every feature of the format: all file types,
// sizes around block boundaries, sparse and duplicate files, hard links,
// long symlinks, devices with large numbers, many owners, odd modes and
// mtimes, big directories (directory index) and xattrs with shared values.
//
// Parts that need root (device nodes, ownership, trusted.* and security.*
// xattrs, xattrs on symlinks and special files) are created only when the
// tests run as root; Tree reports what it made.
package sqtest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Tree describes what MakeFeatureTree created.
type Tree struct {
	Dir      string
	Root     bool   // root-only features (devices, chown, trusted/security xattrs) are present
	Xattrs   bool   // the filesystem under Dir took user.* xattrs
	BigFile  string // relative path of the > 4 GiB sparse file, "" when not made
	Features []string
}

// TreeOptions selects optional, expensive parts of the feature tree.
type TreeOptions struct {
	// BigFile adds a sparse file larger than 4 GiB (mksquashfs reads all of
	// it, a few seconds per image).
	BigFile bool
	// Small makes a tree of a few KB for committed fixtures: one of each
	// kind of entry, small files only.
	Small bool
}

// Deterministic pseudo-random content.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// compressible content: text-like with repetition.
func textBytes(seed uint64, n int) []byte {
	words := []string{"squashfs ", "block ", "fragment ", "inode ", "directory ", "xattr\n", "shifter ", "HPC "}
	r := rand.New(rand.NewPCG(seed, 7))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

type builder struct {
	t    testing.TB
	dir  string
	tree *Tree
}

func (b *builder) path(rel string) string { return filepath.Join(b.dir, filepath.FromSlash(rel)) }

func (b *builder) check(what string, err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("sqtest: %s: %v", what, err)
	}
}

func (b *builder) mkdir(rel string, perm os.FileMode) {
	b.t.Helper()
	b.check("mkdir "+rel, os.MkdirAll(b.path(rel), 0o755))
	b.check("chmod "+rel, os.Chmod(b.path(rel), perm))
}

func (b *builder) file(rel string, data []byte, perm os.FileMode) {
	b.t.Helper()
	b.check("write "+rel, os.WriteFile(b.path(rel), data, 0o644))
	b.check("chmod "+rel, os.Chmod(b.path(rel), perm))
}

func (b *builder) feature(f string) { b.tree.Features = append(b.tree.Features, f) }

// MakeFeatureTree fills dir (which must exist and be empty) with the
// feature tree and returns its description.
func MakeFeatureTree(t testing.TB, dir string, opts TreeOptions) *Tree {
	t.Helper()
	b := &builder{t: t, dir: dir, tree: &Tree{Dir: dir, Root: os.Geteuid() == 0}}

	// Regular files with sizes around every block size we test (4K..1M).
	b.mkdir("files", 0o755)
	// (1 MiB - 1 and 1 MiB exactly only as text, to keep images quick to build.)
	sizes := []int{0, 1, 10, 4095, 4096, 4097, 65535, 65536, 131071, 131072, 131073, 200000, 1<<20 + 1}
	if opts.Small {
		sizes = []int{0, 1, 100, 3000}
	}
	for i, n := range sizes {
		// random: incompressible, stored uncompressed
		b.file(fmt.Sprintf("files/rand-%d", n), randBytes(uint64(i+1), n), 0o644)
		b.file(fmt.Sprintf("files/text-%d", n), textBytes(uint64(i+1), n), 0o644)
	}
	if !opts.Small {
		b.file("files/text-1048575", textBytes(50, 1<<20-1), 0o644)
		b.file("files/text-1048576", textBytes(51, 1<<20), 0o644)
	}
	b.feature("sizes")
	// Duplicates: whole files and a duplicated tail-end.
	if opts.Small {
		b.file("files/dup-a", randBytes(99, 2000), 0o644)
		b.file("files/dup-b", randBytes(99, 2000), 0o644)
	} else {
		b.file("files/dup-a", randBytes(99, 300000), 0o644)
		b.file("files/dup-b", randBytes(99, 300000), 0o644)
		b.file("files/dup-small-a", textBytes(98, 777), 0o644)
		b.file("files/dup-small-b", textBytes(98, 777), 0o644)
	}
	b.feature("duplicates")

	// Sparse file: holes of whole blocks (any block size up to 1M) around data.
	{
		n := int64(3<<20 + 5)
		if opts.Small {
			n = 40000
		}
		f, err := os.Create(b.path("files/sparse"))
		b.check("create sparse", err)
		_, err = f.WriteAt([]byte("start"), 0)
		b.check("write sparse", err)
		_, err = f.WriteAt(randBytes(5, 100), n/2)
		b.check("write sparse", err)
		_, err = f.WriteAt([]byte("end"), n-3)
		b.check("write sparse", err)
		b.check("close sparse", f.Close())
		b.feature("sparse")
	}
	if opts.BigFile {
		const big = 4<<30 + 12345
		f, err := os.Create(b.path("files/big"))
		b.check("create big", err)
		_, err = f.WriteAt([]byte("head"), 0)
		b.check("write big", err)
		_, err = f.WriteAt(randBytes(7, 70000), 1<<32-30000) // straddles 4 GiB
		b.check("write big", err)
		_, err = f.WriteAt([]byte("tail"), big-4)
		b.check("write big", err)
		b.check("close big", f.Close())
		b.tree.BigFile = "files/big"
		b.feature("big")
	}

	// Code-like data that each xz BCJ filter turns into repetition, so
	// mksquashfs -Xbcj picks every filter for some block.
	b.mkdir("bcj", 0o755)
	for name, gen := range bcjData {
		n := 64 << 10
		if opts.Small {
			n = 8 << 10
		}
		b.file("bcj/"+name, gen(n), 0o755)
	}
	b.feature("bcj")

	// Modes.
	b.mkdir("modes", 0o755)
	for _, m := range []uint32{0, 0o400, 0o755, 0o777, 0o4755, 0o2755, 0o6711, 0o1777} {
		name := fmt.Sprintf("modes/f%04o", m)
		b.file(name, []byte("m"), 0o644)
		b.check("chmod", unix.Chmod(b.path(name), m))
	}
	b.mkdir("modes/sticky", 0o755)
	b.check("chmod sticky", unix.Chmod(b.path("modes/sticky"), 0o1777))
	b.mkdir("modes/private", 0o700)
	b.feature("modes")

	// Symlinks.
	b.mkdir("links", 0o755)
	b.check("symlink", os.Symlink("../files/rand-1", b.path("links/rel")))
	b.check("symlink", os.Symlink("/nonexistent/dangling", b.path("links/dangling")))
	long := strings.Repeat("long-component/", 4000/15) + "end"
	if opts.Small {
		long = strings.Repeat("x", 300)
	}
	b.check("symlink", os.Symlink(long, b.path("links/long")))
	b.check("symlink", os.Symlink(".", b.path("links/dot")))
	b.feature("symlinks")

	// Hard links (one inode, nlink 3), also to an empty file.
	b.file("links/hard-a", textBytes(3, 5000), 0o640)
	b.check("link", os.Link(b.path("links/hard-a"), b.path("links/hard-b")))
	b.check("link", os.Link(b.path("links/hard-a"), b.path("files/hard-c")))
	b.file("links/empty-a", nil, 0o600)
	b.check("link", os.Link(b.path("links/empty-a"), b.path("links/empty-b")))
	b.feature("hardlinks")

	// Special files.
	b.mkdir("special", 0o755)
	b.check("mkfifo", unix.Mkfifo(b.path("special/fifo"), 0o640))
	if l, err := net.ListenUnix("unix", &net.UnixAddr{Name: b.path("special/socket"), Net: "unix"}); err == nil {
		l.SetUnlinkOnClose(false)
		l.Close()
		b.feature("socket")
	} else {
		t.Logf("sqtest: no socket: %v", err)
	}
	if b.tree.Root {
		devs := []struct {
			name         string
			mode         uint32
			major, minor uint32
		}{
			{"null", unix.S_IFCHR | 0o666, 1, 3},
			{"char-big", unix.S_IFCHR | 0o600, 4000, 1000000},
			{"block", unix.S_IFBLK | 0o660, 7, 0},
			{"block-big", unix.S_IFBLK | 0o644, 259, 300000},
			{"char-minor", unix.S_IFCHR | 0o644, 0, 255},
			{"char-minor-256", unix.S_IFCHR | 0o644, 0, 256},
		}
		for _, d := range devs {
			b.check("mknod "+d.name, unix.Mknod(b.path("special/"+d.name), d.mode, int(unix.Mkdev(d.major, d.minor))))
		}
		b.feature("devices")
	}

	// Directories: deep, empty, and big (> 8 KiB listing: directory index,
	// > 256 entries per header, several headers).
	b.mkdir("dirs/empty", 0o755)
	deep := "dirs/deep"
	depth := 20
	if opts.Small {
		depth = 3
	}
	for i := 0; i < depth; i++ {
		deep += fmt.Sprintf("/d%d", i)
	}
	b.mkdir(deep, 0o755)
	b.file(deep+"/leaf", []byte("leaf\n"), 0o644)
	nbig := 700
	if opts.Small {
		nbig = 30
	}
	b.mkdir("dirs/big", 0o755)
	for i := 0; i < nbig; i++ {
		name := fmt.Sprintf("dirs/big/entry-%04d-%s", i, strings.Repeat("n", i%40))
		if i%7 == 0 {
			b.mkdir(name, 0o755)
		} else {
			b.file(name, []byte(name), 0o644)
		}
	}
	b.file("dirs/unicode-\u00e9\u6f22-name", []byte("u"), 0o644)
	b.file("dirs/"+strings.Repeat("L", 255), []byte("255"), 0o644)
	b.file("dirs/sp ace\tand-tab", []byte("ws"), 0o644)
	b.feature("dirs")

	// Ownership: many ids, some > 65535.
	if b.tree.Root {
		b.mkdir("owners", 0o755)
		ids := []int{0, 1, 1000, 65534, 65535, 65536, 70000, 1 << 20, 1<<31 - 2, 4294967294}
		if opts.Small {
			ids = []int{0, 1000, 70000}
		}
		for i, id := range ids {
			name := fmt.Sprintf("owners/u%d", id)
			b.file(name, []byte(name), 0o644)
			b.check("chown", os.Lchown(b.path(name), id, ids[(i+1)%len(ids)]))
		}
		b.check("lchown", os.Lchown(b.path("links/rel"), 70001, 70002))
		b.check("chown", os.Chown(b.path("special/fifo"), 1234, 5678))
		b.feature("owners")
	}

	// Xattrs: user.* on files and dirs; shared (out-of-line) values; root:
	// trusted.*, security.*, xattrs on symlinks, devices, fifos.
	b.mkdir("xattr", 0o755)
	b.file("xattr/a", []byte("a"), 0o644)
	b.file("xattr/b", []byte("b"), 0o644)
	b.file("xattr/c", []byte("c"), 0o644)
	b.file("xattr/none", []byte("n"), 0o644)
	shared := bytes.Repeat([]byte("shared-value "), 30)
	if err := unix.Setxattr(b.path("xattr/a"), "user.one", []byte("1"), 0); err == nil {
		b.tree.Xattrs = true
		set := func(rel, name string, val []byte) {
			b.t.Helper()
			b.check("lsetxattr "+rel+" "+name, unix.Lsetxattr(b.path(rel), name, val, 0))
		}
		set("xattr/a", "user.shared", shared)
		set("xattr/a", "user.empty", nil)
		set("xattr/a", "user.bin", []byte{0, 1, 2, 255})
		set("xattr/b", "user.shared", shared) // same value: stored out of line
		set("xattr/b", "user.other", shared)
		set("xattr/c", "user.one", []byte("1")) // same set as part of a
		set("xattr", "user.dir", []byte("directory"))
		big := textBytes(11, 3000)
		set("xattr/c", "user.big", big)
		set("files/hard-c", "user.hl", []byte("hardlinked"))
		if b.tree.Root {
			set("xattr/a", "trusted.t", []byte("trusted-value"))
			set("xattr/b", "security.s", []byte("security-value"))
			set("xattr/c", "trusted.shared", shared)
			set("links/rel", "trusted.sym", []byte("on a symlink"))
			set("special/fifo", "trusted.fifo", []byte("on a fifo"))
			set("special/char-big", "security.dev", []byte("on a device"))
			set("dirs/empty", "trusted.dir", []byte("d"))
			set("special/socket", "trusted.sock", []byte("s"))
		}
		b.feature("xattrs")
	} else {
		t.Logf("sqtest: no user xattrs on %s: %v", dir, err)
	}

	// Mtimes last (writing into a directory changes its mtime).
	times := []int64{0, 1, 1000000000, 1700000000, 1<<31 - 1, 1<<32 - 1}
	entries, err := os.ReadDir(b.path("files"))
	b.check("readdir", err)
	for i, e := range entries {
		mt := time.Unix(times[i%len(times)], 0)
		b.check("chtimes", os.Chtimes(b.path("files/"+e.Name()), mt, mt))
	}
	b.check("lutimes", unix.Lutimes(b.path("links/long"), []unix.Timeval{{Sec: 5}, {Sec: 123456789}}))
	mt := time.Unix(1234567890, 0)
	b.check("chtimes", os.Chtimes(b.path("dirs/empty"), mt, mt))
	b.feature("mtimes")
	return b.tree
}

// bcjData generates, per BCJ filter, branch instructions that all call
// one absolute target: relative in the file, identical after the
// encoder's relative-to-absolute conversion.
var bcjData = map[string]func(n int) []byte{
	"x86": func(n int) []byte {
		b := make([]byte, n)
		const target = 0x10000
		for i := 0; i+8 <= n; i += 8 {
			b[i] = 0xe8
			rel := uint32(target - (i + 5))
			b[i+1], b[i+2], b[i+3], b[i+4] = byte(rel), byte(rel>>8), byte(rel>>16), byte(rel>>24)
			b[i+5], b[i+6], b[i+7] = 0x90, 0x90, 0x90
		}
		return b
	},
	"arm": func(n int) []byte {
		b := make([]byte, n)
		const target = 0x20000
		for i := 0; i+4 <= n; i += 4 {
			a := uint32(target-(i+8)) >> 2
			b[i], b[i+1], b[i+2], b[i+3] = byte(a), byte(a>>8), byte(a>>16), 0xeb
		}
		return b
	},
	"armthumb": func(n int) []byte {
		b := make([]byte, n)
		const target = 0x20000
		for i := 0; i+4 <= n; i += 4 {
			a := uint32(target-(i+4)) >> 1
			b[i+1] = byte(0xf0 | (a>>19)&7)
			b[i] = byte(a >> 11)
			b[i+3] = byte(0xf8 | (a>>8)&7)
			b[i+2] = byte(a)
		}
		return b
	},
	"powerpc": func(n int) []byte {
		b := make([]byte, n)
		const target = 0x20000
		for i := 0; i+4 <= n; i += 4 {
			v := 0x48000001 | uint32(target-i)&0x03fffffc
			b[i], b[i+1], b[i+2], b[i+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		}
		return b
	},
	"sparc": func(n int) []byte {
		b := make([]byte, n)
		const target = 0x20000
		for i := 0; i+4 <= n; i += 4 {
			v := 0x40000000 | (uint32(target-i)>>2)&0x3fffffff
			b[i], b[i+1], b[i+2], b[i+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		}
		return b
	},
	"ia64": func(n int) []byte {
		b := make([]byte, n)
		const target = 0x20000
		for i := 0; i+16 <= n; i += 16 {
			b[i] = 0x10 // template: branch in slot 2
			field := uint64(uint32(target-i)>>4) & 0x1fffff
			norm := uint64(5)<<37 | (field&0xfffff)<<13 | (field>>20)<<36
			instr := norm << 7 // slot 2 starts at bit 87: byte 10, bit 7
			for j := 0; j < 6; j++ {
				b[i+10+j] |= byte(instr >> (8 * j))
			}
		}
		return b
	},
}
