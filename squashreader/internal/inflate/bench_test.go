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
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	kzlib "github.com/klauspost/compress/zlib"
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
	data := benchCorpus(tb, kind, 32*benchBlock)
	s := &benchSet{}
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
	if dir := os.Getenv("INFLATE_BENCH_DUMP"); dir != "" {
		// Length-prefixed blocks for bench_czlib.py.
		var f []byte
		for _, c := range s.comp {
			f = binary.BigEndian.AppendUint32(f, uint32(len(c)))
			f = append(f, c...)
		}
		if err := os.WriteFile(filepath.Join(dir, kind+".blocks"), f, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	benchSets.Store(kind, s)
	return s
}

// klauspostDec decompresses as squashreader's zlibDec does: a pooled
// klauspost zlib reader reset onto a bytes.Reader, read into the buffer.
type klauspostDec struct{ pool sync.Pool }

func (z *klauspostDec) decompress(dst, src []byte) ([]byte, error) {
	br := bytes.NewReader(src)
	var zr io.ReadCloser
	if v := z.pool.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(kzlib.Resetter).Reset(br, nil); err != nil {
			return nil, err
		}
	} else {
		var err error
		if zr, err = kzlib.NewReader(br); err != nil {
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

type stdDec struct{ pool sync.Pool }

func (z *stdDec) decompress(dst, src []byte) ([]byte, error) {
	br := bytes.NewReader(src)
	var zr io.ReadCloser
	if v := z.pool.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(stdzlib.Resetter).Reset(br, nil); err != nil {
			return nil, err
		}
	} else {
		var err error
		if zr, err = stdzlib.NewReader(br); err != nil {
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
// klauspost/compress/zlib and compress/zlib; MB/s are of output.
func BenchmarkZlib(b *testing.B) {
	kp, std := &klauspostDec{}, &stdDec{}
	decoders := []struct {
		name string
		fn   func(dst, src []byte) ([]byte, error)
	}{
		{"inflate", Zlib},
		{"klauspost", kp.decompress},
		{"stdlib", std.decompress},
	}
	for _, kind := range []string{"text", "binary", "mixed"} {
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
