// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/shifter-go/shifter/internal/sqtest"
)

// TestReadStats reads a 2 MiB file built by mksquashfs front to back in
// FUSE-sized requests and checks the decompression counts: every block is
// decompressed exactly once, by the read or by read-ahead, and read-ahead
// does all of it when off.
func TestReadStats(t *testing.T) {
	src := t.TempDir()
	want := randText(7, 2<<20+1000) // 16 blocks of 128 KiB and a fragment tail
	if err := os.WriteFile(filepath.Join(src, "f"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	img := sqtest.Build(t, src, "-comp", "gzip")
	for _, tc := range []struct {
		name      string
		readahead int
	}{{"readahead", 0}, {"no-readahead", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			r, in := openLookup(t, img, &Options{Readahead: tc.readahead}, "f")
			var got []byte
			buf := make([]byte, 256<<10)
			for off := int64(0); ; {
				n, err := r.ReadAt(in, buf, off)
				got = append(got, buf[:n]...)
				off += int64(n)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatal("contents differ from the source file")
			}
			st := r.ReadStats()
			if total := st.OnDemand + st.ReadAhead; total != 17 {
				t.Errorf("%+v: %d blocks decompressed, want 16 blocks and 1 fragment once each", st, total)
			}
			if tc.readahead < 0 && (st.ReadAhead != 0 || st.Waited != 0) {
				t.Errorf("%+v without read-ahead", st)
			}
			// (With read-ahead on, how the work splits depends on the
			// scheduler: a busy machine may let the read do it all.)
		})
	}
}
