// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func testData(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestComputeChunkList checks the sums against sha256 of each slice, for
// sizes around chunk boundaries and every parallelism.
func TestComputeChunkList(t *testing.T) {
	const cs = MinChunkSize
	for _, size := range []int{0, 1, cs - 1, cs, cs + 1, 5*cs + 17, 8 * cs} {
		for _, par := range []int{1, 3, 0} {
			t.Run(fmt.Sprintf("size=%d/par=%d", size, par), func(t *testing.T) {
				data := testData(size)
				c, err := ComputeChunkList(bytes.NewReader(data), int64(size), cs, par)
				if err != nil {
					t.Fatal(err)
				}
				want := (size + cs - 1) / cs
				if c.Count() != int64(want) {
					t.Fatalf("Count = %d, want %d", c.Count(), want)
				}
				for i := range c.Count() {
					off, n := c.Range(i)
					if s := sha256.Sum256(data[off : off+n]); s != c.Sums[i] {
						t.Errorf("chunk %d: sum %x, want %x", i, c.Sums[i], s)
					}
					if !c.Verify(i, data[off:off+n]) {
						t.Errorf("chunk %d does not verify", i)
					}
					bad := bytes.Clone(data[off : off+n])
					bad[len(bad)/2] ^= 1
					if c.Verify(i, bad) || c.Verify(i, data[off:off+n-1]) {
						t.Errorf("chunk %d: altered bytes verify", i)
					}
				}
				if c.Verify(-1, nil) || c.Verify(c.Count(), nil) {
					t.Error("out-of-range chunk verifies")
				}
				b, err := c.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				c2, err := ParseChunkList(b)
				if err != nil {
					t.Fatalf("parse own encoding: %v\n%s", err, b)
				}
				if c2.ChunkSize != c.ChunkSize || c2.Size != c.Size || len(c2.Sums) != len(c.Sums) || c2.Digest() != c.Digest() {
					t.Fatal("round trip changed the list")
				}
			})
		}
	}
}

// TestComputeChunkListShortRead: a source shorter than the size is an error.
func TestComputeChunkListShortRead(t *testing.T) {
	if _, err := ComputeChunkList(bytes.NewReader(make([]byte, 100)), 200, MinChunkSize, 1); err == nil {
		t.Fatal("short source gave no error")
	}
	if _, err := ComputeChunkList(bytes.NewReader(nil), 0, 1000, 1); !errors.Is(err, ErrChunkList) {
		t.Fatalf("chunk size 1000: %v, want ErrChunkList", err)
	}
}

// TestChunkListMatchesSha256sum checks the encoding against coreutils:
// each line is what `sha256sum` prints for that chunk (cut by split).
func TestChunkListMatchesSha256sum(t *testing.T) {
	split, err := exec.LookPath("split")
	if err != nil {
		t.Skip("split not found")
	}
	dir := t.TempDir()
	data := testData(3*MinChunkSize + 5)
	p := filepath.Join(dir, "img")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(split, "-b", fmt.Sprint(MinChunkSize), "-d", p, filepath.Join(dir, "part.")).CombinedOutput(); err != nil {
		t.Fatalf("split: %v %s", err, out)
	}
	parts, _ := filepath.Glob(filepath.Join(dir, "part.*"))
	args := append([]string{}, parts...)
	out, err := exec.Command("sha256sum", args...).Output()
	if err != nil {
		t.Skipf("sha256sum: %v", err)
	}
	var want strings.Builder
	fmt.Fprintf(&want, "shifter-chunks 1 sha256 %d %d\n", MinChunkSize, len(data))
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		want.WriteString(strings.Fields(l)[0] + "\n")
	}
	c, err := ComputeChunkListFile(p, MinChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := c.MarshalBinary()
	if string(got) != want.String() {
		t.Fatalf("encoding:\n%s\nwant (sha256sum of split parts):\n%s", got, want.String())
	}
}

func TestParseChunkListErrors(t *testing.T) {
	sum := strings.Repeat("0a", 32) + "\n"
	hdr := func(cs, size string) string { return "shifter-chunks 1 sha256 " + cs + " " + size + "\n" }
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"no newline", "shifter-chunks 1 sha256 4096 0"},
		{"magic", "shifter-chunkz 1 sha256 4096 0\n"},
		{"version 2", "shifter-chunks 2 sha256 4096 0\n"},
		{"version 01", "shifter-chunks 01 sha256 4096 0\n"},
		{"digest", "shifter-chunks 1 sha512 4096 0\n"},
		{"extra field", "shifter-chunks 1 sha256 4096 0 x\n"},
		{"double space", "shifter-chunks 1 sha256  4096 0\n"},
		{"tab", "shifter-chunks 1 sha256\t4096 0\n"},
		{"crlf", "shifter-chunks 1 sha256 4096 0\r\n"},
		{"chunk not power of two", hdr("5000", "1") + sum},
		{"chunk too small", hdr("2048", "1") + sum},
		{"chunk too big", hdr("33554432", "1") + sum},
		{"leading zero", hdr("04096", "1") + sum},
		{"plus sign", hdr("4096", "+1") + sum},
		{"negative size", hdr("4096", "-1")},
		{"size overflow", hdr("4096", "9223372036854775807")},
		{"huge size, few lines", hdr("4096", "100000000000000") + sum},
		{"missing sum", hdr("4096", "4097") + sum},
		{"extra sum", hdr("4096", "4096") + sum + sum},
		{"uppercase hex", hdr("4096", "1") + strings.Repeat("0A", 32) + "\n"},
		{"short sum", hdr("4096", "1") + strings.Repeat("0a", 31) + "00 \n"},
		{"non hex", hdr("4096", "1") + strings.Repeat("zz", 32) + "\n"},
		{"no final newline", hdr("4096", "1") + strings.Repeat("0a", 32) + " "},
		{"trailing data", hdr("4096", "0") + "\n"},
		{"too long", hdr("4096", "0") + strings.Repeat("x", MaxChunkListSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseChunkList([]byte(tt.in))
			if !errors.Is(err, ErrChunkList) {
				t.Fatalf("ParseChunkList = %+v, %v; want an error wrapping ErrChunkList", c, err)
			}
		})
	}
	// And the valid neighbours of those cases parse.
	for _, in := range []string{hdr("4096", "0"), hdr("4096", "1") + sum, hdr("4096", "4097") + sum + sum, hdr("16777216", "16777216") + sum} {
		if _, err := ParseChunkList([]byte(in)); err != nil {
			t.Errorf("ParseChunkList(%q): %v", in, err)
		}
	}
}

func TestWriteLoadChunkList(t *testing.T) {
	dir := t.TempDir()
	id := strings.Repeat("ab", 32)
	if _, err := LoadChunkList(dir, id); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing chunk list: %v, want fs.ErrNotExist", err)
	}
	data := testData(10 * MinChunkSize)
	c, err := ComputeChunkList(bytes.NewReader(data), int64(len(data)), MinChunkSize, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteChunkList(dir, id, c); err != nil {
		t.Fatal(err)
	}
	got, err := LoadChunkList(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest() != c.Digest() {
		t.Fatal("loaded list differs")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != id+".chunks" {
		t.Fatalf("directory holds %v, want only %s.chunks", ents, id)
	}
	// A list that does not validate is not written.
	bad := &ChunkList{ChunkSize: MinChunkSize, Size: 1}
	if err := WriteChunkList(dir, id, bad); !errors.Is(err, ErrChunkList) {
		t.Fatalf("invalid list written: %v", err)
	}
	if err := WriteChunkList(dir, "../x", c); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad id: %v", err)
	}
	// A symlink is not followed; a corrupt file is refused.
	id2 := strings.Repeat("cd", 32)
	if err := os.Symlink(ChunksPath(dir, id), ChunksPath(dir, id2)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadChunkList(dir, id2); err == nil {
		t.Fatal("symlinked chunk list loaded")
	}
	os.Remove(ChunksPath(dir, id2))
	if err := os.WriteFile(ChunksPath(dir, id2), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadChunkList(dir, id2); !errors.Is(err, ErrChunkList) {
		t.Fatalf("corrupt chunk list: %v", err)
	}
}

// FuzzParseChunks: ParseChunkList either fails with ErrChunkList or
// returns a valid list whose canonical encoding is exactly the input.
func FuzzParseChunks(f *testing.F) {
	sum := strings.Repeat("0a", 32) + "\n"
	f.Add([]byte("shifter-chunks 1 sha256 4096 0\n"))
	f.Add([]byte("shifter-chunks 1 sha256 4096 1\n" + sum))
	f.Add([]byte("shifter-chunks 1 sha256 4096 8193\n" + sum + sum + sum))
	f.Add([]byte("shifter-chunks 1 sha256 262144 262144\n" + hex.EncodeToString(make([]byte, 32)) + "\n"))
	f.Add([]byte("shifter-chunks 1 sha256 4096 99999999999\n" + sum))
	f.Add([]byte("shifter-chunks 1 sha256 4096 1\n" + strings.Repeat("0A", 32) + "\n"))
	f.Add([]byte("shifter-chunks 2 sha256 4096 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseChunkList(b)
		if err != nil {
			if !errors.Is(err, ErrChunkList) {
				t.Fatalf("error %v does not wrap ErrChunkList", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed list does not validate: %v", err)
		}
		enc, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("accepted a non-canonical encoding: %q (canonical %q, %v)", b, enc, err)
		}
	})
}
