// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"encoding/binary"
	"fmt"
	"go/build"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"

	"github.com/shifter-go/shifter/internal/testutil"
)

// benchBlock is one compressed block and its decompressed size.
type benchBlock struct {
	z      []byte
	rawLen int
}

type benchSet struct {
	blocks []benchBlock
	size   int64 // total decompressed bytes
	max    int
}

var benchSets sync.Map // kind -> *benchSet

// getBenchSet returns the blocks of one kind: "binary" and "text" are
// 128 KiB chunks of /usr/bin executables and /usr/share text (3 MiB of
// each), each compressed by the zstd command at level 15 (mksquashfs's
// default) from a file, without a checksum, as mksquashfs writes a data
// block (one frame, single segment, with its content size); "meta" are the
// full 8 KiB metadata blocks of a mksquashfs -comp zstd image of a tree
// with $GOROOT/src's directories and file names (empty files).
func getBenchSet(tb testing.TB, kind string) *benchSet {
	if s, ok := benchSets.Load(kind); ok {
		return s.(*benchSet)
	}
	s := &benchSet{}
	switch kind {
	case "binary", "text":
		testutil.RequireTool(tb, "zstd")
		data := realData(tb, kind, 3<<20)
		dir := tb.TempDir()
		var names []string
		for i := 0; i+128<<10 <= len(data); i += 128 << 10 {
			name := filepath.Join(dir, fmt.Sprintf("%03d", i>>17))
			if err := os.WriteFile(name, data[i:i+128<<10], 0o644); err != nil {
				tb.Fatal(err)
			}
			names = append(names, name)
		}
		if out, err := exec.Command("zstd", append([]string{"-q", "-15", "--no-check"}, names...)...).CombinedOutput(); err != nil {
			tb.Fatalf("zstd: %v: %s", err, out)
		}
		for _, name := range names {
			z, err := os.ReadFile(name + ".zst")
			if err != nil {
				tb.Fatal(err)
			}
			s.add(z, 128<<10)
		}
	case "meta":
		for _, b := range mksquashfsMeta(tb) {
			s.add(b, 8<<10)
		}
	}
	dump(tb, kind, s)
	benchSets.Store(kind, s)
	return s
}

func (s *benchSet) add(z []byte, n int) {
	s.blocks = append(s.blocks, benchBlock{z, n})
	s.size += int64(n)
	s.max = max(s.max, n)
}

// mksquashfsMeta builds a mksquashfs -comp zstd image of a copy of
// $GOROOT/src's tree with empty files and returns its full (8 KiB)
// compressed metadata blocks.
func mksquashfsMeta(tb testing.TB) [][]byte {
	mksquashfs := testutil.RequireTool(tb, "mksquashfs")
	dir := tb.TempDir()
	tree := filepath.Join(dir, "src")
	root := filepath.Join(build.Default.GOROOT, "src")
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if de.IsDir() {
			return os.MkdirAll(filepath.Join(tree, rel), 0o755)
		}
		return os.WriteFile(filepath.Join(tree, rel), nil, 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
	img := filepath.Join(dir, "img")
	if out, err := exec.Command(mksquashfs, tree, img, "-comp", "zstd", "-noappend", "-no-progress", "-quiet", "-no-xattrs").CombinedOutput(); err != nil {
		tb.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		tb.Fatal(err)
	}
	le := binary.LittleEndian
	inodeStart, dirStart := le.Uint64(b[64:]), le.Uint64(b[72:])
	end := uint64(len(b))
	for _, off := range []int{48, 56, 80, 88} { // id, xattr, fragment, export tables
		if t := le.Uint64(b[off:]); t > dirStart && t < end {
			end = t
		}
	}
	var blocks [][]byte
	buf := make([]byte, 0, 8<<10)
	for p := inodeStart; p+2 <= end; {
		h := le.Uint16(b[p:])
		n := uint64(h & 0x7FFF)
		if p+2+n > end {
			break
		}
		c := b[p+2 : p+2+n]
		p += 2 + n
		if h&0x8000 != 0 {
			continue // stored uncompressed
		}
		raw, err := Decode(buf, c)
		if err != nil {
			tb.Fatal(err)
		}
		if len(raw) == 8<<10 {
			blocks = append(blocks, c)
		}
	}
	if len(blocks) < 8 {
		tb.Fatalf("only %d full metadata blocks in the image", len(blocks))
	}
	return blocks
}

// dump writes the blocks to $ZSTD_BENCH_DUMP/kind.blocks for
// testdata/bench_czstd.py: per block the decompressed size and the
// compressed size (little-endian uint32s), then the frame.
func dump(tb testing.TB, kind string, s *benchSet) {
	dir := os.Getenv("ZSTD_BENCH_DUMP")
	if dir == "" {
		return
	}
	var f []byte
	for _, b := range s.blocks {
		f = binary.LittleEndian.AppendUint32(f, uint32(b.rawLen))
		f = binary.LittleEndian.AppendUint32(f, uint32(len(b.z)))
		f = append(f, b.z...)
	}
	if err := os.WriteFile(filepath.Join(dir, kind+".blocks"), f, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkDecode decodes every block of a set once per iteration, with
// Decode and with klauspost/compress/zstd's DecodeAll (one decoder, no
// concurrency, as squashreader used it), into a buffer of the block size.
// MB/s are of decompressed output.
func BenchmarkDecode(b *testing.B) {
	kd, err := kzstd.NewReader(nil, kzstd.WithDecoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	defer kd.Close()
	decoders := []struct {
		name string
		fn   func(dst, src []byte) ([]byte, error)
	}{
		{"zstd", Decode},
		{"klauspost", func(dst, src []byte) ([]byte, error) { return kd.DecodeAll(src, dst) }},
	}
	for _, kind := range []string{"binary", "text", "meta"} {
		for _, dec := range decoders {
			b.Run(kind+"/"+dec.name, func(b *testing.B) {
				s := getBenchSet(b, kind)
				dst := make([]byte, 0, s.max)
				b.SetBytes(s.size)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for _, blk := range s.blocks {
						out, err := dec.fn(dst[:0], blk.z)
						if err != nil || len(out) != blk.rawLen {
							b.Fatalf("%d bytes, %v", len(out), err)
						}
					}
				}
			})
		}
	}
}
