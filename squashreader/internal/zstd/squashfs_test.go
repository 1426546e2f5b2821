// SPDX-License-Identifier: BSD-3-Clause

package zstd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	kzstd "github.com/klauspost/compress/zstd"

	"github.com/shifter-go/shifter/internal/testutil"
)

// frameLen returns the length of the zstd frame at the start of b, by its
// header and block headers, or -1.
func frameLen(b []byte) int {
	if len(b) < 6 || binary.LittleEndian.Uint32(b) != frameMagic {
		return -1
	}
	fhd := b[4]
	n := 5 + [4]int{0, 1, 2, 4}[fhd&3] + [4]int{0, 2, 4, 8}[fhd>>6]
	if fhd&0x20 == 0 {
		n++
	} else if fhd>>6 == 0 {
		n++
	}
	for {
		if n+3 > len(b) {
			return -1
		}
		h := int(b[n]) | int(b[n+1])<<8 | int(b[n+2])<<16
		size := h >> 3
		if (h>>1)&3 == 1 {
			size = 1
		}
		n += 3 + size
		if h&1 != 0 {
			break
		}
	}
	if fhd&4 != 0 {
		n += 4
	}
	if n > len(b) {
		return -1
	}
	return n
}

// TestSquashfs decodes every zstd frame of squashfs images that mksquashfs
// makes (block sizes 4 KiB and 128 KiB, compression levels 1 and 22) from
// executables and text: data blocks, fragment blocks and 8 KiB metadata
// blocks, found by their magic number and measured by their block
// headers. Each must decode as klauspost/compress/zstd decodes it, into a
// buffer of the block size.
func TestSquashfs(t *testing.T) {
	testutil.RequireTool(t, "mksquashfs")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	bin := realData(t, "binary", 1200<<10)
	txt := realData(t, "text", 600<<10)
	for i, sz := range []int{0, 1, 100, 3000, 4096, 5000, 70000, 131072, 200000, 700000} {
		d := filepath.Join(src, fmt.Sprintf("d%d", i%3))
		os.MkdirAll(d, 0o755)
		off := (i * 37000) % (len(bin) - sz)
		os.WriteFile(filepath.Join(d, fmt.Sprintf("bin%d", i)), bin[off:off+sz], 0o644)
		if sz <= len(txt) {
			os.WriteFile(filepath.Join(d, fmt.Sprintf("txt%d", i)), txt[:sz], 0o644)
		}
	}
	kd, err := kzstd.NewReader(nil, kzstd.WithDecoderConcurrency(1), kzstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer kd.Close()
	for _, bs := range []int{4096, 131072} {
		for _, lvl := range []int{1, 22} {
			img := filepath.Join(dir, fmt.Sprintf("img-%d-%d", bs, lvl))
			out, err := exec.Command("mksquashfs", src, img, "-comp", "zstd", "-noappend", "-quiet",
				"-b", fmt.Sprint(bs), "-Xcompression-level", fmt.Sprint(lvl)).CombinedOutput()
			if err != nil {
				t.Fatalf("mksquashfs: %v: %s", err, out)
			}
			data, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			frames, bytesOut := 0, 0
			buf := make([]byte, 0, max(bs, 8192))
			for p := 0; p+4 <= len(data); p++ {
				if binary.LittleEndian.Uint32(data[p:]) != frameMagic {
					continue
				}
				n := frameLen(data[p:])
				if n < 0 {
					continue
				}
				z := data[p : p+n]
				got, err := Decode(buf, z)
				want, kerr := kd.DecodeAll(z, nil)
				if (err == nil) != (kerr == nil) || err == nil && !bytes.Equal(got, want) {
					t.Errorf("%s: frame at %d: %d bytes, %v; klauspost %d bytes, %v", img, p, len(got), err, len(want), kerr)
				}
				if err == nil {
					frames++
					bytesOut += len(got)
				}
			}
			if bytesOut < len(bin)/2 {
				t.Errorf("%s: only %d frames, %d bytes", img, frames, bytesOut)
			}
			t.Logf("block size %d, level %d: %d frames, %d bytes", bs, lvl, frames, bytesOut)
		}
	}
}
