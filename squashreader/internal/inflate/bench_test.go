// SPDX-License-Identifier: BSD-3-Clause

package inflate

import (
	"bytes"
	stdzlib "compress/zlib"
	"encoding/binary"
	"go/build"
	hadler "hash/adler32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	kzlib "github.com/klauspost/compress/zlib"

	"github.com/shifter-go/shifter/internal/testutil"
)

const benchBlock = 128 << 10

// benchCorpus gathers up to n bytes of real data of one kind.
func benchCorpus(tb testing.TB, kind string, n int) []byte {
	tb.Helper()
	var buf []byte
	add := func(path string) {
		if len(buf) >= n {
			return
		}
		b, err := os.ReadFile(path)
		if err == nil {
			buf = append(buf, b[:min(len(b), n-len(buf))]...)
		}
	}
	switch kind {
	case "text": // Go sources
		root := filepath.Join(build.Default.GOROOT, "src")
		filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err == nil && !de.IsDir() && strings.HasSuffix(p, ".go") {
				add(p)
			}
			if len(buf) >= n {
				return filepath.SkipAll
			}
			return nil
		})
	case "binary": // executables
		ents, _ := os.ReadDir("/usr/bin")
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			if e.Type().IsRegular() {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, name := range names {
			add(filepath.Join("/usr/bin", name))
		}
	case "mixed": // 8 KiB runs of random bytes between executable code: partly incompressible
		bin := benchCorpus(tb, "binary", n)
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := 0; len(buf) < n && i < len(bin); i += 8 << 10 {
			buf = append(buf, bin[i:min(i+8<<10, len(bin))]...)
			r := make([]byte, 8<<10)
			for j := range r {
				r[j] = byte(rnd.Uint32())
			}
			buf = append(buf, r...)
		}
		buf = buf[:min(len(buf), n)]
	}
	if len(buf) < n/2 {
		tb.Skipf("only %d bytes of %s data on this machine", len(buf), kind)
	}
	return buf
}

type benchSet struct {
	raw  [][]byte // 128 KiB blocks
	comp [][]byte // their zlib streams (level 9, as mksquashfs's default)
	size int64
}

var benchSets sync.Map // kind -> *benchSet

func getBenchSet(tb testing.TB, kind string) *benchSet {
	if v, ok := benchSets.Load(kind); ok {
		return v.(*benchSet)
	}
	s := &benchSet{}
	if base, ok := strings.CutPrefix(kind, "mksquashfs-"); ok {
		// The data blocks of a squashfs image mksquashfs writes with
		// gzip (C zlib, level 9, 128 KiB blocks) from the same data.
		mksquashfs := testutil.RequireTool(tb, "mksquashfs")
		dir := tb.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "src"), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "src", "data"), benchCorpus(tb, base, 32*benchBlock), 0o644); err != nil {
			tb.Fatal(err)
		}
		img := filepath.Join(dir, "img")
		if out, err := exec.Command(mksquashfs, filepath.Join(dir, "src"), img, "-comp", "gzip", "-noappend", "-no-progress", "-quiet").CombinedOutput(); err != nil {
			tb.Fatalf("mksquashfs: %v\n%s", err, out)
		}
		b, err := os.ReadFile(img)
		if err != nil {
			tb.Fatal(err)
		}
		comps, raws := zlibStreamsIn(tb, b)
		for i, c := range comps {
			if len(raws[i]) == benchBlock {
				s.comp = append(s.comp, c)
				s.raw = append(s.raw, raws[i])
				s.size += benchBlock
			}
		}
		if len(s.comp) < 8 {
			tb.Fatalf("only %d gzip data blocks in the image", len(s.comp))
		}
		dump(tb, kind, s)
		benchSets.Store(kind, s)
		return s
	}
	data := benchCorpus(tb, kind, 32*benchBlock)
	for i := 0; i < len(data); i += benchBlock {
		blk := data[i:min(i+benchBlock, len(data))]
		var b bytes.Buffer
		w, _ := stdzlib.NewWriterLevel(&b, 9)
		w.Write(blk)
		w.Close()
		s.raw = append(s.raw, blk)
		s.comp = append(s.comp, b.Bytes())
		s.size += int64(len(blk))
	}
	dump(tb, kind, s)
	benchSets.Store(kind, s)
	return s
}

// dump writes the compressed blocks, length-prefixed, to
// $INFLATE_BENCH_DUMP/kind.blocks for bench_czlib.py.
func dump(tb testing.TB, kind string, s *benchSet) {
	dir := os.Getenv("INFLATE_BENCH_DUMP")
	if dir == "" {
		return
	}
	var f []byte
	for _, c := range s.comp {
		f = binary.BigEndian.AppendUint32(f, uint32(len(c)))
		f = append(f, c...)
	}
	if err := os.WriteFile(filepath.Join(dir, kind+".blocks"), f, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// pooledDec decompresses as squashreader's zlibDec did before this
// package: a pooled zlib reader (klauspost's or the standard library's)
// reset onto a bytes.Reader and read into the buffer.
type pooledDec struct {
	pool      sync.Pool
	newReader func(io.Reader) (io.ReadCloser, error)
}

func (z *pooledDec) decompress(dst, src []byte) ([]byte, error) {
	br := bytes.NewReader(src)
	var zr io.ReadCloser
	if v := z.pool.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(interface {
			Reset(io.Reader, []byte) error
		}).Reset(br, nil); err != nil {
			return nil, err
		}
	} else {
		var err error
		if zr, err = z.newReader(br); err != nil {
			return nil, err
		}
	}
	n, err := io.ReadFull(zr, dst[:cap(dst)])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	z.pool.Put(zr)
	return dst[:n], nil
}

// BenchmarkZlib decodes 128 KiB blocks of each kind with this package,
// klauspost/compress/zlib and compress/zlib; MB/s are of output. The plain
// kinds are compressed with compress/zlib at level 9; the mksquashfs- ones
// are the data blocks of an image mksquashfs made from the same data.
func BenchmarkZlib(b *testing.B) {
	kp, std := &pooledDec{newReader: kzlib.NewReader}, &pooledDec{newReader: stdzlib.NewReader}
	decoders := []struct {
		name string
		fn   func(dst, src []byte) ([]byte, error)
	}{
		{"inflate", Zlib},
		{"klauspost", kp.decompress},
		{"stdlib", std.decompress},
	}
	for _, kind := range []string{"text", "binary", "mixed", "mksquashfs-text", "mksquashfs-binary"} {
		for _, dec := range decoders {
			b.Run(kind+"/"+dec.name, func(b *testing.B) {
				s := getBenchSet(b, kind)
				dst := make([]byte, 0, benchBlock)
				for i, c := range s.comp {
					out, err := dec.fn(dst, c)
					if err != nil || !bytes.Equal(out, s.raw[i]) {
						b.Fatalf("block %d: %v", i, err)
					}
				}
				b.SetBytes(s.size)
				b.ReportAllocs()
				for b.Loop() {
					for _, c := range s.comp {
						if _, err := dec.fn(dst, c); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

// BenchmarkAdler32 measures the checksum's share of a decode, against
// hash/adler32.
func BenchmarkAdler32(b *testing.B) {
	for _, impl := range []struct {
		name string
		fn   func([]byte) uint32
	}{{"inflate", adler32}, {"stdlib", hadler.Checksum}} {
		b.Run(impl.name, func(b *testing.B) {
			s := getBenchSet(b, "text")
			b.SetBytes(s.size)
			for b.Loop() {
				for _, r := range s.raw {
					impl.fn(r)
				}
			}
		})
	}
}
