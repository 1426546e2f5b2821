// SPDX-License-Identifier: BSD-3-Clause

package lzma2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"go/build"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	uxz "github.com/ulikunitz/xz"
	ulzma "github.com/ulikunitz/xz/lzma"

	"github.com/shifter-go/shifter/internal/testutil"
)

// benchCorpus gathers up to n bytes of real data of one kind: Go sources
// ("text") or /usr/bin executables ("binary").
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
	case "text":
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
	case "binary":
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
	}
	if len(buf) < n/2 {
		tb.Skipf("only %d bytes of %s data on this machine", len(buf), kind)
	}
	return buf
}

// benchBlock is one compressed block: the .xz stream mksquashfs would
// write (one block, CRC32) and the raw LZMA2 data inside it.
type benchBlock struct {
	raw      []byte // decompressed
	xz       []byte // the whole .xz stream
	lzma2    []byte // its block's LZMA2 data, through the end marker
	dictSize uint32
}

type benchSet struct {
	blocks    []benchBlock
	size      int64
	blockSize int
}

var benchSets sync.Map // kind -> *benchSet

// xzPayload returns the LZMA2 data of the first block of an .xz stream and
// its dictionary size; the block's filter chain must be LZMA2 alone.
func xzPayload(s []byte) ([]byte, uint32, error) {
	if len(s) < 13 || !bytes.HasPrefix(s, []byte("\xFD7zXZ\x00")) {
		return nil, 0, errors.New("not an .xz stream")
	}
	hs := (int(s[12]) + 1) * 4
	if s[12] == 0 || len(s) < 12+hs {
		return nil, 0, errors.New("no block")
	}
	h := s[12 : 12+hs]
	flags := h[1]
	p := 2
	uvarint := func() uint64 {
		v, n := binary.Uvarint(h[p:])
		if n <= 0 {
			p = len(h)
			return 0
		}
		p += n
		return v
	}
	if flags&0x40 != 0 {
		uvarint()
	}
	if flags&0x80 != 0 {
		uvarint()
	}
	if flags&3 != 0 {
		return nil, 0, errors.New("more than one filter")
	}
	id, size := uvarint(), uvarint()
	if id != 0x21 || size != 1 || p >= len(h) {
		return nil, 0, fmt.Errorf("filter %#x with %d property bytes, not LZMA2", id, size)
	}
	dict, err := DictSize(h[p])
	return s[12+hs:], dict, err
}

// xzCompress compresses data into an .xz stream with the xz command (C
// liblzma) and the LZMA2 options opts, as mksquashfs -comp xz does
// (CRC32 check, one block).
func xzCompress(tb testing.TB, data []byte, opts string) []byte {
	cmd := exec.Command(testutil.RequireTool(tb, "xz"), "--format=xz", "--check=crc32", "--lzma2="+opts, "-c")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("xz --lzma2=%s: %v", opts, err)
	}
	return out
}

func (s *benchSet) add(tb testing.TB, raw, xzs []byte) {
	payload, dict, err := xzPayload(xzs)
	if err != nil {
		tb.Fatal(err)
	}
	_, n, err := Decode(make([]byte, 0, len(raw)), payload, dict)
	if err != nil {
		tb.Fatal(err)
	}
	s.blocks = append(s.blocks, benchBlock{raw: raw, xz: xzs, lzma2: payload[:n], dictSize: dict})
	s.size += int64(len(raw))
}

// getBenchSet makes (once) the blocks of a kind:
//
//   - meta8k: the full 8 KiB metadata blocks (inode and directory tables)
//     of a mksquashfs -comp xz image of $GOROOT/src;
//   - text8k: Go sources in 8 KiB blocks, xz preset 6 with an 8 KiB
//     dictionary (as metadata blocks of a -b 8K image);
//   - text128k, binary128k: Go sources and executables in 128 KiB blocks,
//     preset 6 with a 128 KiB dictionary, as mksquashfs's data blocks;
//   - text128k-9e, binary128k-9e: the same at preset 9e.
func getBenchSet(tb testing.TB, kind string) *benchSet {
	if v, ok := benchSets.Load(kind); ok {
		return v.(*benchSet)
	}
	s := &benchSet{}
	if dir := os.Getenv("LZMA2_BENCH_LOAD"); dir != "" {
		loadBlocks(tb, filepath.Join(dir, kind+".blocks"), s)
		benchSets.Store(kind, s)
		return s
	}
	if kind == "meta8k" {
		s.blockSize = 8 << 10
		for _, m := range mksquashfsMeta(tb) {
			s.add(tb, m[0], m[1])
		}
	} else {
		base, rest, _ := strings.Cut(kind, "-")
		preset := "6"
		if rest != "" {
			preset = rest
		}
		data, bs := base, 128<<10
		if d, ok := strings.CutSuffix(base, "128k"); ok {
			data = d
		} else {
			data, bs = strings.TrimSuffix(base, "8k"), 8<<10
		}
		s.blockSize = bs
		n := 32 * (128 << 10)
		if bs == 8<<10 {
			n = 256 * bs
		}
		corpus := benchCorpus(tb, data, n)
		for i := 0; i+bs <= len(corpus); i += bs {
			blk := corpus[i : i+bs]
			s.add(tb, blk, xzCompress(tb, blk, fmt.Sprintf("preset=%s,dict=%d", preset, bs)))
		}
	}
	dump(tb, kind, s)
	benchSets.Store(kind, s)
	return s
}

// mksquashfsMeta builds a mksquashfs -comp xz image of $GOROOT/src and
// returns its full (8 KiB) compressed metadata blocks, each as the
// decompressed block and its .xz stream.
func mksquashfsMeta(tb testing.TB) [][2][]byte {
	mksquashfs := testutil.RequireTool(tb, "mksquashfs")
	img := filepath.Join(tb.TempDir(), "img")
	src := filepath.Join(build.Default.GOROOT, "src")
	if out, err := exec.Command(mksquashfs, src, img, "-comp", "xz", "-noappend", "-no-progress", "-quiet", "-no-xattrs").CombinedOutput(); err != nil {
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
	var blocks [][2][]byte
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
		r, err := uxz.NewReader(bytes.NewReader(c))
		if err != nil {
			tb.Fatal(err)
		}
		raw, err := io.ReadAll(r)
		if err != nil {
			tb.Fatal(err)
		}
		if len(raw) == 8<<10 {
			blocks = append(blocks, [2][]byte{raw, c})
		}
	}
	if len(blocks) < 8 {
		tb.Fatalf("only %d full metadata blocks in the image", len(blocks))
	}
	return blocks
}

// dump writes the blocks to $LZMA2_BENCH_DUMP/kind.blocks for
// testdata/bench_clzma.py: per block the dictionary size and the
// decompressed size (big-endian uint32s), then the LZMA2 data and the .xz
// stream, each preceded by its length (uint32).
func dump(tb testing.TB, kind string, s *benchSet) {
	dir := os.Getenv("LZMA2_BENCH_DUMP")
	if dir == "" {
		return
	}
	var f []byte
	for _, b := range s.blocks {
		f = binary.BigEndian.AppendUint32(f, b.dictSize)
		f = binary.BigEndian.AppendUint32(f, uint32(len(b.raw)))
		f = binary.BigEndian.AppendUint32(f, uint32(len(b.lzma2)))
		f = append(f, b.lzma2...)
		f = binary.BigEndian.AppendUint32(f, uint32(len(b.xz)))
		f = append(f, b.xz...)
	}
	if err := os.WriteFile(filepath.Join(dir, kind+".blocks"), f, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// loadBlocks reads blocks dump wrote, for quicker runs:
// LZMA2_BENCH_LOAD=dir reads them instead of making them (the decoded
// blocks are ulikunitz/xz's output).
func loadBlocks(tb testing.TB, path string, s *benchSet) {
	f, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	be := binary.BigEndian
	for len(f) > 0 {
		rawLen := int(be.Uint32(f[4:]))
		n := int(be.Uint32(f[8:]))
		m := int(be.Uint32(f[12+n:]))
		xzs := f[16+n : 16+n+m]
		f = f[16+n+m:]
		r, err := uxz.NewReader(bytes.NewReader(xzs))
		if err != nil {
			tb.Fatal(err)
		}
		raw, err := io.ReadAll(r)
		if err != nil || len(raw) != rawLen {
			tb.Fatalf("%s: %d bytes, %v", path, len(raw), err)
		}
		s.blockSize = max(s.blockSize, rawLen)
		s.add(tb, raw, xzs)
	}
}

// ulikunitzDecode decodes a block's LZMA2 data with ulikunitz/xz/lzma's
// Reader2, a new reader per block (it has no Reset).
func ulikunitzDecode(dst []byte, b *benchBlock) ([]byte, error) {
	r, err := ulzma.Reader2Config{DictCap: int(b.dictSize)}.NewReader2(bytes.NewReader(b.lzma2))
	if err != nil {
		return nil, err
	}
	n, err := io.ReadFull(r, dst[:cap(dst)])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	return dst[:n], nil
}

// BenchmarkDecode decodes the blocks of each kind (see getBenchSet) with
// this package (the LZMA2 data of each block) and
// ulikunitz/xz/lzma's Reader2 (the LZMA2 data, a new reader per block:
// it has no Reset). MB/s are of output.
func BenchmarkDecode(b *testing.B) {
	for _, kind := range []string{"meta8k", "text8k", "text128k", "binary128k", "text128k-9e", "binary128k-9e"} {
		decoders := []struct {
			name string
			fn   func(dst []byte, b *benchBlock) ([]byte, error)
		}{
			{"lzma2", func(dst []byte, b *benchBlock) ([]byte, error) {
				out, _, err := Decode(dst, b.lzma2, b.dictSize)
				return out, err
			}},
			{"ulikunitz", ulikunitzDecode},
		}
		for _, dec := range decoders {
			b.Run(kind+"/"+dec.name, func(b *testing.B) {
				s := getBenchSet(b, kind)
				dst := make([]byte, 0, s.blockSize)
				for i := range s.blocks {
					out, err := dec.fn(dst, &s.blocks[i])
					if err != nil || !bytes.Equal(out, s.blocks[i].raw) {
						b.Fatalf("block %d: %v", i, err)
					}
				}
				b.SetBytes(s.size)
				b.ReportAllocs()
				for b.Loop() {
					for i := range s.blocks {
						if _, err := dec.fn(dst, &s.blocks[i]); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

// TestCPUTime (with LZMA2_CPUTIME=1, e.g. go test -run CPUTime -v) prints
// the decoders' MB/s of thread CPU time rather than wall time, the best of
// several rounds: steadier than BenchmarkDecode on a loaded machine (other
// processes take the CPU, not this thread's time), comparable with
// bench_clzma.py's CPU-time figures. LZMA2_CPUTIME_KINDS selects kinds
// (comma-separated).
func TestCPUTime(t *testing.T) {
	if os.Getenv("LZMA2_CPUTIME") == "" {
		t.Skip("set LZMA2_CPUTIME=1 to run")
	}
	kinds := []string{"meta8k", "text8k", "text128k", "binary128k", "text128k-9e", "binary128k-9e"}
	if k := os.Getenv("LZMA2_CPUTIME_KINDS"); k != "" {
		kinds = strings.Split(k, ",")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for _, kind := range kinds {
		s := getBenchSet(t, kind)
		dst := make([]byte, 0, s.blockSize)
		decs := []struct {
			name string
			fn   func(*benchBlock) error
		}{
			{"lzma2", func(b *benchBlock) error { _, _, err := Decode(dst, b.lzma2, b.dictSize); return err }},
			{"ulikunitz", func(b *benchBlock) error { _, err := ulikunitzDecode(dst, b); return err }},
		}
		best := make([]time.Duration, len(decs))
		for round := 0; round < 7; round++ {
			for j, dec := range decs {
				t0 := cpu()
				for range max(1, (2<<20)/int(s.size)) + 1 {
					for i := range s.blocks {
						if err := dec.fn(&s.blocks[i]); err != nil {
							t.Fatal(err)
						}
					}
				}
				d := (cpu() - t0) / time.Duration(max(1, (2<<20)/int(s.size))+1)
				if round == 0 || d < best[j] {
					best[j] = d
				}
			}
		}
		mb := func(d time.Duration) float64 { return float64(s.size) / d.Seconds() / 1e6 }
		t.Logf("%-14s lzma2 %6.1f MB/s, ulikunitz %6.1f MB/s (CPU time), ratio %.2f", kind, mb(best[0]), mb(best[1]), float64(best[1])/float64(best[0]))
	}
}

// BenchmarkReset measures the probability reset that starts each block
// (and each chunk with a state reset), lc=3 lp=0 as mksquashfs uses and
// lc+lp=4 at most, and the pool round trip around a Decode call.
func BenchmarkReset(b *testing.B) {
	for _, lc := range []uint32{3, 4} {
		b.Run(fmt.Sprintf("lc%d", lc), func(b *testing.B) {
			d := pool.Get().(*decoder)
			d.lc, d.lpMask, d.pbMask = lc, 0, 3
			for b.Loop() {
				d.reset()
			}
			pool.Put(d)
		})
	}
	b.Run("pool", func(b *testing.B) {
		for b.Loop() {
			pool.Put(pool.Get())
		}
	})
}
