// SPDX-License-Identifier: BSD-3-Clause

package inflate

import (
	"bytes"
	"compress/flate"
	stdzlib "compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	kzlib "github.com/klauspost/compress/zlib"

	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

type namedInput struct {
	name string
	data []byte
}

// testInputs are the uncompressed inputs of the differential tests.
func testInputs(t testing.TB) []namedInput {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 1))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	in := []namedInput{
		{"empty", nil},
		{"one", []byte("a")},
		{"tiny", []byte("hello, hello, world")},
		{"all-bytes", all},
		{"random-64k", random(64 << 10)},
		{"zeros-100k", make([]byte, 100<<10)},
		{"run-258", bytes.Repeat([]byte{'x'}, 259)},
		{"text-32k", benchCorpus(t, "text", 32<<10)},
		{"text", benchCorpus(t, "text", 160<<10)},
		{"binary", benchCorpus(t, "binary", 160<<10)},
		{"mixed", benchCorpus(t, "mixed", 96<<10)},
	}
	// Overlapping matches of every distance 1..40: a random period
	// repeated, after a random prefix, plus lengths around 258.
	for p := 1; p <= 40; p++ {
		pat := random(p)
		b := random(50)
		for len(b) < 50+3000 {
			b = append(b, pat...)
		}
		in = append(in, namedInput{fmt.Sprintf("period-%d", p), b})
	}
	return in
}

type encoder struct {
	name string
	enc  func([]byte) []byte
}

// goEncoders are compress/zlib at every level (HuffmanOnly, default, 0-9)
// and klauspost/compress/zlib at a few levels (it picks fixed blocks and
// block boundaries differently).
func goEncoders() []encoder {
	var encs []encoder
	for lvl := flate.HuffmanOnly; lvl <= 9; lvl++ {
		encs = append(encs, zlibEncoder(fmt.Sprintf("stdlib-%d", lvl), func(w io.Writer) (io.WriteCloser, error) {
			return stdzlib.NewWriterLevel(w, lvl)
		}))
	}
	for _, lvl := range []int{1, 5, 9, -2} {
		encs = append(encs, zlibEncoder(fmt.Sprintf("klauspost-%d", lvl), func(w io.Writer) (io.WriteCloser, error) {
			return kzlib.NewWriterLevel(w, lvl)
		}))
	}
	return encs
}

// zlibEncoder is an encoder that compresses with the writer newWriter makes.
func zlibEncoder(name string, newWriter func(io.Writer) (io.WriteCloser, error)) encoder {
	return encoder{name, func(b []byte) []byte {
		var buf bytes.Buffer
		w, err := newWriter(&buf)
		if err != nil {
			panic(err)
		}
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}}
}

var stdlibReader struct {
	sync.Mutex
	r io.ReadCloser
}

// stdlibZlib decodes with compress/zlib, reading at most limit+1 bytes. It
// reuses one reader: a new one allocates tens of KiB, which made the
// bit-flip test slow.
func stdlibZlib(src []byte, limit int) ([]byte, error) {
	sr := &stdlibReader
	sr.Lock()
	defer sr.Unlock()
	var err error
	if sr.r == nil {
		sr.r, err = stdzlib.NewReader(bytes.NewReader(src))
	} else {
		err = sr.r.(stdzlib.Resetter).Reset(bytes.NewReader(src), nil)
	}
	if err != nil {
		sr.r = nil
		return nil, err
	}
	return io.ReadAll(io.LimitReader(sr.r, int64(limit)+1))
}

// checkZlib decodes a valid stream into buffers of the exact size, one
// byte short and roomy, and raw deflate, and compares with want.
func checkZlib(t *testing.T, comp, want []byte) {
	t.Helper()
	got, err := Zlib(make([]byte, 0, len(want)), comp)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Zlib(exact cap %d) = %d bytes, %v; want %d bytes (equal: %v)", len(want), len(got), err, len(want), bytes.Equal(got, want))
	}
	got, err = Zlib(make([]byte, 7, len(want)+300), comp)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Zlib(roomy cap) = %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
	if len(want) > 0 {
		if _, err := Zlib(make([]byte, 0, len(want)-1), comp); !errors.Is(err, codec.ErrTooLong) {
			t.Fatalf("Zlib(cap %d, one short) error = %v, want codec.ErrTooLong", len(want)-1, err)
		}
	}
	got, n, err := Deflate(make([]byte, 0, len(want)), comp[2:])
	if err != nil || !bytes.Equal(got, want) || n != len(comp)-6 {
		t.Fatalf("Deflate = %d bytes, used %d, %v; want %d bytes, used %d", len(got), n, err, len(want), len(comp)-6)
	}
}

func TestGoEncoders(t *testing.T) {
	inputs := testInputs(t)
	for _, enc := range goEncoders() {
		t.Run(enc.name, func(t *testing.T) {
			for _, in := range inputs {
				// The inputs over 64 KiB at a few levels only, to keep
				// the test (and its -race run) short.
				switch enc.name {
				case "stdlib--2", "stdlib-0", "stdlib-1", "stdlib-6", "stdlib-9", "klauspost-1", "klauspost-9":
				default:
					if len(in.data) > 64<<10 {
						continue
					}
				}
				comp := enc.enc(in.data)
				t.Run(in.name, func(t *testing.T) { checkZlib(t, comp, in.data) })
			}
		})
	}
}

// readStreams reads a file of length-prefixed (big-endian uint32) streams.
func readStreams(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 || int(binary.BigEndian.Uint32(b)) > len(b)-4 {
			t.Fatalf("%s: bad stream framing", path)
		}
		n := int(binary.BigEndian.Uint32(b))
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out
}

// TestCZlibStreams decodes streams that C zlib wrote (testdata/czlib.streams,
// made by testdata/gen_czlib.py): every level, window bits 9-15, memLevel
// 1 and 9, and the filtered, Huffman-only, RLE and fixed strategies. The
// oracle is compress/zlib's output for the same stream.
func TestCZlibStreams(t *testing.T) {
	streams := readStreams(t, filepath.Join("testdata", "czlib.streams"))
	if len(streams) < 50 {
		t.Fatalf("only %d streams in testdata/czlib.streams", len(streams))
	}
	for i, comp := range streams {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			want, err := stdlibZlib(comp, 1<<24)
			if err != nil {
				t.Fatalf("compress/zlib: %v", err)
			}
			checkZlib(t, comp, want)
		})
	}
}

// TestGzipTool compresses with the gzip command and decodes its raw
// deflate data (the gzip wrapper stripped) with Deflate.
func TestGzipTool(t *testing.T) {
	gzip := testutil.RequireTool(t, "gzip")
	for _, in := range testInputs(t) {
		if len(in.data) < 1000 && in.name != "tiny" && in.name != "empty" {
			continue
		}
		for _, lvl := range []string{"-1", "-6", "-9"} {
			t.Run(in.name+lvl, func(t *testing.T) {
				cmd := exec.Command(gzip, "-c", "-n", lvl)
				cmd.Stdin = bytes.NewReader(in.data)
				gz, err := cmd.Output()
				if err != nil {
					t.Fatalf("gzip: %v", err)
				}
				// RFC 1952: 10-byte header (-n: no name, FLG 0), deflate,
				// CRC32 and ISIZE.
				if len(gz) < 18 || gz[0] != 0x1f || gz[1] != 0x8b || gz[3] != 0 {
					t.Fatalf("unexpected gzip header % x", gz[:min(len(gz), 10)])
				}
				raw := gz[10 : len(gz)-8]
				got, n, err := Deflate(make([]byte, 0, len(in.data)), raw)
				if err != nil || !bytes.Equal(got, in.data) || n != len(raw) {
					t.Fatalf("Deflate = %d bytes, used %d of %d, %v", len(got), n, len(raw), err)
				}
				if crc := binary.LittleEndian.Uint32(gz[len(gz)-8:]); crc32.ChecksumIEEE(got) != crc {
					t.Fatalf("crc32 mismatch")
				}
				// Trailing bytes after the deflate data are not used.
				if _, n2, err := Deflate(make([]byte, 0, len(in.data)), gz[10:]); err != nil || n2 != n {
					t.Fatalf("Deflate with the trailer after it: used %d, %v; want %d", n2, err, n)
				}
			})
		}
	}
}

// zlibStreamsIn finds the zlib streams in a squashfs image the plain way:
// every offset where a zlib header starts and compress/zlib decodes a
// stream of at most 1 MiB. It returns the streams (cut at their end, as
// squashfs stores them, with what compress/zlib decoded).
func zlibStreamsIn(t testing.TB, img []byte) (comps, raws [][]byte) {
	t.Helper()
	for i := 0; i+6 <= len(img); i++ {
		if img[i]&0x0f != 8 || img[i]>>4 > 7 || (uint(img[i])<<8|uint(img[i+1]))%31 != 0 || img[i+1]&0x20 != 0 {
			continue
		}
		br := bytes.NewReader(img[i:])
		r, err := stdzlib.NewReader(br)
		if err != nil {
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
		if err != nil || len(raw) > 1<<20 {
			continue
		}
		used := len(img) - i - br.Len()
		comps = append(comps, img[i:i+used])
		raws = append(raws, raw)
		i += used - 1
	}
	return comps, raws
}

func checkImage(t *testing.T, img []byte, minStreams int) {
	t.Helper()
	comps, raws := zlibStreamsIn(t, img)
	if len(comps) < minStreams {
		t.Fatalf("found %d zlib streams in the image, want at least %d", len(comps), minStreams)
	}
	for i, comp := range comps {
		got, err := Zlib(make([]byte, 0, 1<<20), comp)
		if err != nil || !bytes.Equal(got, raws[i]) {
			t.Fatalf("stream %d (%d bytes): Zlib = %d bytes, %v; want %d bytes", i, len(comp), len(got), err, len(raws[i]))
		}
	}
	t.Logf("%d zlib streams decoded", len(comps))
}

// TestSquashfsBlocks decodes the metadata and data blocks of squashfs
// images that mksquashfs wrote with gzip: the committed test image of
// squashreader and, with mksquashfs, fresh images of text and binaries at
// 4 KiB and 128 KiB block sizes.
func TestSquashfsBlocks(t *testing.T) {
	t.Run("testdata", func(t *testing.T) {
		img, err := os.ReadFile(filepath.Join("..", "..", "testdata", "gzip.sqfs"))
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img, 2)
	})
	for _, bs := range []string{"4096", "131072"} {
		t.Run("mksquashfs-"+bs, func(t *testing.T) {
			mksquashfs := testutil.RequireTool(t, "mksquashfs")
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			if err := os.Mkdir(src, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, in := range testInputs(t) {
				if err := os.WriteFile(filepath.Join(src, in.name), in.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			img := filepath.Join(dir, "img.sqfs")
			out, err := exec.Command(mksquashfs, src, img, "-comp", "gzip", "-b", bs, "-noappend", "-no-progress", "-quiet").CombinedOutput()
			if err != nil {
				t.Fatalf("mksquashfs: %v\n%s", err, out)
			}
			b, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, b, 10)
		})
	}
}
