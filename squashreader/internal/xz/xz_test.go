// SPDX-License-Identifier: BSD-3-Clause

package xz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// corpus returns the test inputs: Go source text, an x86-64 executable,
// random bytes, and patterns that the other architectures' filters
// convert (random bytes with their branch opcodes planted).
var corpus = sync.OnceValue(func() map[string][]byte {
	c := map[string][]byte{"empty": {}, "one": {'x'}, "zeros": make([]byte, 200<<10)}
	var src bytes.Buffer
	// The squashreader package's own source (the test runs in
	// squashreader/internal/xz).
	filepath.WalkDir("../..", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && src.Len() < 300<<10 {
			b, _ := os.ReadFile(p)
			src.Write(b)
		}
		return nil
	})
	c["text"] = src.Bytes()
	if exe, err := os.ReadFile("/proc/self/exe"); err == nil {
		c["exe"] = exe[:min(len(exe), 400<<10)]
	}
	r := rand.New(rand.NewPCG(1, 2))
	rnd := make([]byte, 100<<10)
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	c["random"] = rnd
	// Branch patterns, one every 16 bytes, in random filler.
	br := make([]byte, 256<<10)
	for i := range br {
		br[i] = byte(r.Uint32())
	}
	for i := 0; i+16 <= len(br); i += 16 {
		switch i / 16 % 8 {
		case 0:
			br[i+3] = 0xeb // ARM BL
		case 1:
			br[i+1], br[i+3] = 0xf0|br[i+1]&7, 0xf8|br[i+3]&7 // Thumb BL
		case 2:
			br[i], br[i+3] = 0x48|br[i]&3, br[i+3]&^3|1 // PowerPC bl
		case 3:
			br[i], br[i+1] = 0x40, br[i+1]&0x3f // SPARC call
		case 4:
			br[i+3] = 0x94 | br[i+3]&3 // ARM64 BL
		case 5:
			br[i+3] = 0x90 | br[i+3]&0x60 // ARM64 ADRP
			br[i+2] &= 0x1f
		case 6:
			br[i], br[i+4] = 0xe8, 0 // x86 CALL
		case 7:
			br[i] = 0x10 // IA-64 template with branch slots
		}
	}
	c["branches"] = br
	return c
})

// xzCompress runs the xz command on in.
func xzCompress(t testing.TB, in []byte, args ...string) []byte {
	t.Helper()
	xzBin := testutil.RequireTool(t, "xz")
	cmd := exec.Command(xzBin, append([]string{"-c", "--format=xz", "--threads=1"}, args...)...)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// TestDecodeXZ decodes what the xz command writes, with every check,
// filter and option mksquashfs can use, and some it cannot.
func TestDecodeXZ(t *testing.T) {
	opts := [][]string{
		{"--check=crc32", "--lzma2=preset=6,dict=128KiB"}, // mksquashfs -comp xz
		{"--check=crc32", "--x86", "--lzma2=preset=6,dict=128KiB"},
		{"--check=crc32", "--powerpc", "--lzma2=preset=6"},
		{"--check=crc32", "--ia64", "--lzma2=preset=6"},
		{"--check=crc32", "--arm", "--lzma2=preset=6"},
		{"--check=crc32", "--armthumb", "--lzma2=preset=6"},
		{"--check=crc32", "--sparc", "--lzma2=preset=6"},
		{"--check=crc32", "--arm64", "--lzma2=preset=6"},
		{"--check=crc32", "--x86=start=4096", "--lzma2=preset=1"},
		{"--check=crc32", "--x86=start=3", "--lzma2=preset=1"},
		{"--check=crc32", "--arm=start=1024", "--lzma2=preset=1"},
		{"--check=crc32", "--armthumb=start=6", "--lzma2=preset=1"},
		{"--check=crc32", "--powerpc=start=4", "--lzma2=preset=1"},
		{"--check=crc32", "--ia64=start=256", "--lzma2=preset=1"},
		{"--check=crc32", "--sparc=start=4100", "--lzma2=preset=1"},
		{"--check=crc32", "--arm64=start=8192", "--lzma2=preset=1"},
		{"--check=none", "-0"},
		{"--check=crc64", "-9e"},
		{"--check=sha256", "-3"},
		{"--check=crc32", "--delta=dist=1", "--lzma2=preset=2"},
		{"--check=crc32", "--delta=dist=4", "--lzma2=preset=2"},
		{"--check=crc32", "--delta=dist=256", "--lzma2=preset=2"},
		{"--check=crc32", "--delta=dist=2", "--x86", "--arm", "--lzma2=preset=2"},
		{"--check=crc64", "--block-size=40000", "-6"},
		{"--check=crc32", "--block-size=4096", "--x86", "--lzma2=preset=0"},
		{"--check=crc32", "--lzma2=preset=6,lc=0,lp=4,pb=4"},
		{"--check=crc32", "--lzma2=preset=6,lc=4,lp=0,pb=0"},
		{"--check=crc32", "--lzma2=dict=4KiB"},
	}
	c := corpus()
	for _, o := range opts {
		for name, in := range c {
			t.Run(strings.Join(o, " ")+"/"+name, func(t *testing.T) {
				t.Parallel()
				z := xzCompress(t, in, o...)
				got, err := Decode(make([]byte, 0, len(in)), z)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !bytes.Equal(got, in) {
					t.Fatalf("Decode: %d bytes differ from the %d-byte input", len(got), len(in))
				}
				// One byte less room: codec.ErrTooLong (or nothing for empty input).
				if len(in) > 0 {
					if _, err := Decode(make([]byte, 0, len(in)-1), z); !errors.Is(err, codec.ErrTooLong) {
						t.Fatalf("Decode into %d bytes: %v, want codec.ErrTooLong", len(in)-1, err)
					}
				}
				// Stream padding is accepted, other trailing bytes are not.
				if _, err := Decode(make([]byte, 0, len(in)), append(z[:len(z):len(z)], 0, 0, 0, 0)); err != nil {
					t.Fatalf("Decode with stream padding: %v", err)
				}
				if _, err := Decode(make([]byte, 0, len(in)), append(z[:len(z):len(z)], 0, 0)); !errors.Is(err, codec.ErrCorrupt) {
					t.Fatalf("Decode with 2 bytes of padding: %v, want codec.ErrCorrupt", err)
				}
			})
		}
	}
}

// stream builds an xz stream around raw LZMA2 data with the given block
// header fields, for the header tests.
type streamSpec struct {
	check       byte
	blockFlags  byte
	sizes       []uint64 // compressed, uncompressed (when the flags say)
	filters     [][]byte // each: id VLI, props size VLI, props
	hdrPad      []byte   // block header padding (zeros normally)
	lzma2       []byte
	blockPad    []byte
	checkVal    []byte // nil: computed
	out         []byte // what lzma2 decodes to (for the check)
	indexRecord []uint64
	badIndexCRC bool
}

func putVLI(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func (s streamSpec) build() []byte {
	var z []byte
	z = append(z, headerMagic...)
	z = append(z, 0, s.check)
	z = binary.LittleEndian.AppendUint32(z, crc32.ChecksumIEEE(z[6:8]))
	// Block header.
	var h []byte
	h = append(h, 0, s.blockFlags)
	for _, v := range s.sizes {
		h = putVLI(h, v)
	}
	for _, f := range s.filters {
		h = append(h, f...)
	}
	h = append(h, s.hdrPad...)
	for (len(h)+4)%4 != 0 {
		h = append(h, 0)
	}
	h[0] = byte((len(h)+4)/4 - 1)
	h = binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(h))
	blockStart := len(z)
	z = append(z, h...)
	z = append(z, s.lzma2...)
	unpadded := len(z) - blockStart
	if s.blockPad != nil {
		z = append(z, s.blockPad...)
	} else {
		for (len(z)-blockStart)%4 != 0 {
			z = append(z, 0)
		}
	}
	cv := s.checkVal
	if cv == nil {
		switch s.check {
		case checkCRC32:
			cv = binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(s.out))
		case checkNone:
		}
	}
	z = append(z, cv...)
	unpadded += checkSize[s.check]
	// Index.
	idx := []byte{0, 1}
	rec := s.indexRecord
	if rec == nil {
		rec = []uint64{uint64(unpadded), uint64(len(s.out))}
	}
	for _, v := range rec {
		idx = putVLI(idx, v)
	}
	for len(idx)%4 != 0 {
		idx = append(idx, 0)
	}
	crc := crc32.ChecksumIEEE(idx)
	if s.badIndexCRC {
		crc++
	}
	idx = binary.LittleEndian.AppendUint32(idx, crc)
	z = append(z, idx...)
	var foot []byte
	foot = binary.LittleEndian.AppendUint32(foot, uint32(len(idx)/4-1))
	foot = append(foot, 0, s.check)
	z = binary.LittleEndian.AppendUint32(z, crc32.ChecksumIEEE(foot))
	z = append(z, foot...)
	return append(z, footerMagic...)
}

// lzma2Stored is LZMA2 data of one uncompressed chunk holding "hello"
// (control 1: dictionary reset), then the end marker.
var lzma2Stored = []byte{1, 0, 4, 'h', 'e', 'l', 'l', 'o', 0}

var lzma2Filter = []byte{0x21, 1, 0} // dictionary 4 KiB

// runningSum is "hello" with the delta filter (distance 1) undone: what
// lzma2Stored decodes to behind a delta filter.
var runningSum = []byte{0x68, 0x68 + 0x65, (0x68 + 0x65 + 0x6c) & 0xff, (0x68 + 0x65 + 0x6c + 0x6c) & 0xff, (0x68 + 0x65 + 0x6c + 0x6c + 0x6f) & 0xff}

// TestHeaders checks every header rule with hand-made streams. Each
// stream is also given to the xz command, which must agree on accepting
// or rejecting it.
func TestHeaders(t *testing.T) {
	hello := []byte("hello")
	base := func() streamSpec {
		return streamSpec{check: checkCRC32, filters: [][]byte{lzma2Filter}, lzma2: lzma2Stored, out: hello}
	}
	tests := []struct {
		name string
		mod  func(*streamSpec)
		raw  func([]byte) []byte
		want string // "" = valid: the output is the spec's out
	}{
		{"valid", func(s *streamSpec) {}, nil, ""},
		{"sizes present", func(s *streamSpec) { s.blockFlags = 0xc0; s.sizes = []uint64{9, 5} }, nil, ""},
		{"wrong compressed size", func(s *streamSpec) { s.blockFlags = 0x40; s.sizes = []uint64{8} }, nil, "block data at byte 24"},
		{"wrong uncompressed size", func(s *streamSpec) { s.blockFlags = 0x80; s.sizes = []uint64{4} }, nil, "more than the 4 bytes"},
		{"uncompressed size too big", func(s *streamSpec) { s.blockFlags = 0x80; s.sizes = []uint64{6} }, nil, "decodes to 5 bytes, its header says 6"},
		{"reserved block flags", func(s *streamSpec) { s.blockFlags = 0x04 }, nil, "block flags"},
		{"non-zero header padding", func(s *streamSpec) { s.hdrPad = []byte{0, 1} }, nil, "header padding"},
		{"non-zero block padding", func(s *streamSpec) { s.blockPad = []byte{0, 0, 1} }, nil, "block padding"},
		{"bad check", func(s *streamSpec) { s.checkVal = []byte{1, 2, 3, 4} }, nil, "CRC32 of the block"},
		{"check none", func(s *streamSpec) { s.check = checkNone }, nil, ""},
		{"unknown check type", func(s *streamSpec) { s.check = 2; s.checkVal = []byte{0, 0, 0, 0} }, nil, "check type 2"},
		{"bad index CRC", func(s *streamSpec) { s.badIndexCRC = true }, nil, "index CRC32"},
		{"index record wrong", func(s *streamSpec) { s.indexRecord = []uint64{21, 6} }, nil, "index record"},
		{"redundant VLI zero", func(s *streamSpec) { s.filters = [][]byte{{0xa1, 0x00, 1, 0}} }, nil, "redundant zero"},
		{"LZMA2 not last", func(s *streamSpec) { s.blockFlags = 1; s.filters = [][]byte{lzma2Filter, {0x04, 0}} }, nil, "not last"},
		{"BCJ last", func(s *streamSpec) { s.filters = [][]byte{{0x04, 0}} }, nil, "last in the chain"},
		{"unknown filter", func(s *streamSpec) { s.blockFlags = 1; s.filters = [][]byte{{0x0c, 0}, lzma2Filter} }, nil, "filter 0xc"},
		{"BCJ with 2-byte props", func(s *streamSpec) { s.blockFlags = 1; s.filters = [][]byte{{0x04, 2, 0, 0}, lzma2Filter} }, nil, "BCJ properties"},
		{"delta without props", func(s *streamSpec) { s.blockFlags = 1; s.filters = [][]byte{{0x03, 0}, lzma2Filter} }, nil, "delta properties"},
		{"dictionary property 41", func(s *streamSpec) { s.filters = [][]byte{{0x21, 1, 41}} }, nil, "dictionary size property"},
		{"LZMA2 props 2 bytes", func(s *streamSpec) { s.filters = [][]byte{{0x21, 2, 0, 0}} }, nil, "LZMA2 properties"},
		{"x86 filter", func(s *streamSpec) { s.blockFlags = 1; s.filters = [][]byte{{0x04, 0}, lzma2Filter} }, nil, ""},
		{"four filters", func(s *streamSpec) {
			s.blockFlags = 3
			s.filters = [][]byte{{0x04, 0}, {0x03, 1, 0}, {0x07, 4, 0, 0, 0, 0}, lzma2Filter}
			s.out = runningSum
		}, nil, ""},
		{"bad magic", func(s *streamSpec) {}, func(z []byte) []byte { z[0] = 0; return z }, "no xz magic"},
		{"bad header CRC", func(s *streamSpec) {}, func(z []byte) []byte { z[8]++; return z }, "stream header CRC32"},
		{"bad block header CRC", func(s *streamSpec) {}, func(z []byte) []byte { z[12+8]++; return z }, "block header CRC32"},
		{"bad footer magic", func(s *streamSpec) {}, func(z []byte) []byte { z[len(z)-1] = 'X'; return z }, "footer magic"},
		{"bad footer CRC", func(s *streamSpec) {}, func(z []byte) []byte { z[len(z)-12]++; return z }, "footer CRC32"},
		{"footer flags differ", func(s *streamSpec) {}, func(z []byte) []byte {
			f := z[len(z)-12:]
			f[9] = 4
			binary.LittleEndian.PutUint32(f, crc32.ChecksumIEEE(f[4:10]))
			return z
		}, "footer flags"},
		{"backward size wrong", func(s *streamSpec) {}, func(z []byte) []byte {
			f := z[len(z)-12:]
			f[4]++
			binary.LittleEndian.PutUint32(f, crc32.ChecksumIEEE(f[4:10]))
			return z
		}, "index is"},
		{"trailing garbage", func(s *streamSpec) {}, func(z []byte) []byte { return append(z, 0, 0, 0, 1) }, "data after the stream"},
		{"second stream", func(s *streamSpec) {}, func(z []byte) []byte { return append(z, z...) }, "data after the stream"},
		{"truncated", func(s *streamSpec) {}, func(z []byte) []byte { return z[:len(z)-1] }, "footer"},
	}
	xzBin, _ := exec.LookPath("xz")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.mod(&s)
			z := s.build()
			if tc.raw != nil {
				z = tc.raw(z)
			}
			got, err := Decode(make([]byte, 0, 64), z)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Decode: %v", err)
			case tc.want == "" && !bytes.Equal(got, s.out):
				t.Fatalf("Decode = %q, want %q", got, s.out)
			case tc.want != "" && err == nil:
				t.Fatalf("Decode accepted it, want an error with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Decode: %v, want an error with %q", err, tc.want)
			case tc.want != "" && !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrUnsupported) && !errors.Is(err, codec.ErrTooLong):
				t.Fatalf("Decode: %v wraps none of the package's errors", err)
			}
			if xzBin == "" || tc.name == "second stream" {
				return // xz reads concatenated streams; we read one
			}
			cmd := exec.Command(xzBin, "-dc")
			cmd.Stdin = bytes.NewReader(z)
			xout, xerr := cmd.Output()
			if (xerr == nil) != (tc.want == "") {
				t.Errorf("xz -dc: %v (output %q); we: %v", xerr, xout, err)
			}
		})
	}
}

// TestMutations flips bits and truncates mksquashfs-like streams: never a
// panic or output past cap(dst); where we accept, the xz command accepts
// and gives the same bytes.
func TestMutations(t *testing.T) {
	xzBin := testutil.RequireTool(t, "xz")
	in := corpus()["text"][:3000]
	z := xzCompress(t, in, "--check=crc32", "--x86", "--lzma2=preset=6,dict=128KiB")
	r := rand.New(rand.NewPCG(3, 4))
	muts := [][]byte{z} // the unmutated stream first: it must pass
	for n := 0; n < len(z); n += 1 + n/64 {
		muts = append(muts, z[:n])
	}
	for range 300 {
		m := bytes.Clone(z)
		m[r.IntN(len(m))] ^= 1 << r.IntN(8)
		muts = append(muts, m)
	}
	for i, m := range muts {
		dst := make([]byte, 0, len(in)+16)
		got, err := Decode(dst, m)
		cmd := exec.Command(xzBin, "-dc")
		cmd.Stdin = bytes.NewReader(m)
		xout, xerr := cmd.Output()
		if err != nil {
			if !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrUnsupported) && !errors.Is(err, codec.ErrTooLong) {
				t.Errorf("mutation %d: %v wraps none of the package's errors", i, err)
			}
			if xerr == nil {
				t.Errorf("mutation %d: we rejected it (%v), xz -dc decoded %d bytes", i, err, len(xout))
			}
			continue
		}
		if i == 0 && !bytes.Equal(got, in) {
			t.Fatalf("unmutated stream: decoded %d bytes that differ from the input", len(got))
		}
		if len(got) > cap(dst) || (len(got) > 0 && &got[0] != &dst[:1][0]) {
			t.Fatalf("mutation %d: output outside dst", i)
		}
		if xerr != nil || !bytes.Equal(xout, got) {
			t.Errorf("mutation %d: we decoded %d bytes, xz -dc: %v (%d bytes)", i, len(got), xerr, len(xout))
		}
	}
}
