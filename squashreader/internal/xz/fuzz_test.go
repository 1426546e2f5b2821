// SPDX-License-Identifier: BSD-3-Clause

package xz

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"testing"

	uxz "github.com/ulikunitz/xz"

	"github.com/shifter-go/shifter/squashreader/internal/codec"
)

// FuzzDecode decodes arbitrary bytes: never a panic, never output outside
// dst; errors wrap the package's errors; and where ulikunitz/xz (a
// separate implementation, one stream) decodes the input too, the bytes
// agree. Seeds: streams of the xz command with each check and filter.
func FuzzDecode(f *testing.F) {
	if _, err := exec.LookPath("xz"); err == nil {
		in := corpus()["text"][:1500]
		br := corpus()["branches"][:1500]
		for _, o := range [][]string{
			{"--check=crc32", "--lzma2=preset=6,dict=128KiB"},
			{"--check=crc32", "--x86", "--lzma2=preset=6"},
			{"--check=crc64", "--arm", "--lzma2=preset=1"},
			{"--check=sha256", "--delta=dist=2", "--powerpc", "--lzma2=preset=0"},
			{"--check=none", "--block-size=1000", "--armthumb=start=2", "--lzma2=preset=0"},
		} {
			f.Add(xzCompress(f, in, o...))
			f.Add(xzCompress(f, br, append(o[:len(o)-1:len(o)-1], "--sparc", o[len(o)-1])...))
		}
	}
	f.Add(streamSpec{check: checkCRC32, filters: [][]byte{lzma2Filter}, lzma2: lzma2Stored, out: []byte("hello")}.build())
	f.Fuzz(func(t *testing.T, src []byte) {
		dst := make([]byte, 0, 64<<10)
		got, err := Decode(dst, src)
		if err != nil {
			if !errors.Is(err, codec.ErrCorrupt) && !errors.Is(err, codec.ErrUnsupported) && !errors.Is(err, codec.ErrTooLong) {
				t.Fatalf("%v wraps none of the package's errors", err)
			}
			return
		}
		if len(got) > 0 && &got[0] != &dst[:1][0] {
			t.Fatal("output outside dst")
		}
		r, err := uxz.ReaderConfig{SingleStream: true}.NewReader(bytes.NewReader(src))
		if err != nil {
			return
		}
		want, err := io.ReadAll(io.LimitReader(r, 64<<10+1))
		if err != nil {
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("decoded %d bytes, ulikunitz/xz %d bytes, and they differ", len(got), len(want))
		}
	})
}
