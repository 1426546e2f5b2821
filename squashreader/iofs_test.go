// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"bytes"
	"encoding/binary"
	"os"
	"runtime"
	"testing"
)

// TestReadFileClaimedSize reads a file that claims 1 GiB (sparse blocks,
// so the image is 8 KiB) and whose first block is made corrupt: ReadFile
// must fail with ErrFormat having allocated in proportion to what it
// read, not to the claimed size.
func TestReadFileClaimedSize(t *testing.T) {
	img, err := os.ReadFile("testdata/crafted/bigsparse.sqfs")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(bytes.NewReader(img), int64(len(img)), nil)
	if err != nil {
		t.Fatal(err)
	}
	in, err := r.LookupPath("huge")
	if err != nil {
		t.Fatal(err)
	}
	if in.Size != 1<<30 || len(in.sizes) != 1024 || in.sizes[0] != 0 {
		t.Fatalf("fixture: size %d, %d blocks, first word 0x%x; want a 1 GiB file of 1024 sparse blocks", in.Size, len(in.sizes), in.sizes[0])
	}
	// The extended file inode's block list starts 56 bytes in: make the
	// first block 64 compressed bytes of whatever is at blocks_start.
	off := inodeOff(t, r, "huge") + 56
	r.Close()
	binary.LittleEndian.PutUint32(img[off:], 64)
	// No read-ahead: only ReadFile's own allocations are measured.
	r2, err := Open(bytes.NewReader(img), int64(len(img)), &Options{Readahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if in2, err := r2.LookupPath("huge"); err != nil || in2.sizes[0] != 64 {
		t.Fatalf("patch missed the block list: %v", err)
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b, err := FS{r2}.ReadFile("huge")
	runtime.ReadMemStats(&after)
	if b != nil {
		t.Errorf("ReadFile returned %d bytes with its error", len(b))
	}
	wantFormat(t, "ReadFile", err)
	// One read buffer (8 blocks of 1 MiB) and the failed block's; the
	// claimed 1 GiB, or the 64 MiB of it ReadFile once preallocated,
	// would be far over.
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Errorf("ReadFile allocated %d MiB for a file it could not read", n>>20)
	}
}
