// SPDX-License-Identifier: BSD-3-Clause

package xz

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestCRC32Table checks the compiled-in table against hash/crc32's and,
// when they differ, prints the file that should replace crc32_table.go.
func TestCRC32Table(t *testing.T) {
	want := crc32.MakeTable(crc32.IEEE)
	var tab [8][256]uint32
	tab[0] = *want
	for i := range 256 {
		c := tab[0][i]
		for k := 1; k < 8; k++ {
			c = tab[0][c&0xff] ^ c>>8
			tab[k][i] = c
		}
	}
	if tab == crc32Table {
		return
	}
	var b strings.Builder
	for k := range tab {
		b.WriteString("\t{\n")
		for j := 0; j < 256; j += 8 {
			b.WriteString("\t\t")
			for i, v := range tab[k][j : j+8] {
				if i > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprintf(&b, "0x%08x,", v)
			}
			b.WriteByte('\n')
		}
		b.WriteString("\t},\n")
	}
	t.Fatalf("crc32Table differs from hash/crc32's; its rows should be:\n%s", b.String())
}

func TestCRC32IEEE(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, crc32Small+100)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for _, n := range []int{0, 1, 7, 8, 9, 12, 63, 64, 65, 1000, 8192, crc32Small - 1, crc32Small, crc32Small + 1, crc32Small + 100} {
		for _, off := range []int{0, 3} {
			if off+n > len(buf) {
				continue
			}
			b := buf[off : off+n]
			if got, want := crc32IEEE(b), crc32.ChecksumIEEE(b); got != want {
				t.Errorf("%d bytes at %d: 0x%08x, want 0x%08x", n, off, got, want)
			}
		}
	}
}
