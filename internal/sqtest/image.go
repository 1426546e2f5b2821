// SPDX-License-Identifier: BSD-3-Clause

package sqtest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/internal/testutil"
)

// Config is one set of mksquashfs options.
type Config struct {
	Name string
	Args []string
}

// Compressors lists one option set per compressor and compressor variant
// mksquashfs 4.5 offers, including the compressor-options block
// (non-default settings) and uncompressed tables.
var Compressors = []Config{
	{"gzip", []string{"-comp", "gzip"}},
	{"gzip-opts", []string{"-comp", "gzip", "-Xcompression-level", "1", "-Xwindow-size", "10", "-Xstrategy", "default,filtered,huffman_only"}},
	{"xz", []string{"-comp", "xz"}},
	{"xz-bcj-x86", []string{"-comp", "xz", "-Xbcj", "x86", "-Xdict-size", "50%"}},
	{"xz-bcj-all", []string{"-comp", "xz", "-Xbcj", "x86,arm,armthumb,powerpc,sparc,ia64"}},
	{"lzo", []string{"-comp", "lzo"}},
	{"lzo-opts", []string{"-comp", "lzo", "-Xalgorithm", "lzo1x_999", "-Xcompression-level", "9"}},
	{"lz4", []string{"-comp", "lz4"}},
	{"lz4-hc", []string{"-comp", "lz4", "-Xhc"}},
	{"zstd", []string{"-comp", "zstd"}},
	{"zstd-19", []string{"-comp", "zstd", "-Xcompression-level", "19"}},
	{"uncompressed", []string{"-noI", "-noD", "-noF", "-noX"}},
}

// Options lists the layout options the reader must handle, combined with
// gzip by the tests.
var Options = []Config{
	{"no-fragments", []string{"-no-fragments"}},
	{"always-use-fragments", []string{"-always-use-fragments"}},
	{"no-duplicates", []string{"-no-duplicates"}},
	{"no-exports", []string{"-no-exports"}},
	{"all-root", []string{"-all-root"}},
	{"no-xattrs", []string{"-no-xattrs"}},
	{"noI", []string{"-noI"}},
	{"noD-noF", []string{"-noD", "-noF"}},
}

// BlockSizes lists the block sizes the tests use: every power of two from
// 4 KiB to 1 MiB.
var BlockSizes = []string{"4K", "8K", "16K", "32K", "64K", "128K", "256K", "512K", "1M"}

// Build runs mksquashfs on srcDir with args into a new image in a test
// temporary directory and returns the image path. It skips the test (fails
// under CI=true) when mksquashfs is missing.
func Build(t testing.TB, srcDir string, args ...string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "image.sqfs")
	BuildTo(t, img, srcDir, args...)
	return img
}

// BuildTo is Build with a chosen image path.
func BuildTo(t testing.TB, img, srcDir string, args ...string) {
	t.Helper()
	mk := testutil.RequireTool(t, "mksquashfs")
	argv := append([]string{srcDir, img, "-noappend", "-quiet", "-no-progress"}, args...)
	out, err := exec.Command(mk, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("mksquashfs %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}
