// SPDX-License-Identifier: BSD-3-Clause

package fusefs_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
)

// mountSquashfuseLL mounts img with Debian's squashfuse_ll (a peer, used to
// check the walker and as a reference point) and unmounts it at cleanup.
func mountSquashfuseLL(t testing.TB, img string) string {
	t.Helper()
	testutil.RequireFUSE(t)
	bin := testutil.RequireTool(t, "squashfuse_ll")
	mnt := t.TempDir()
	if out, err := exec.Command(bin, "-o", "ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("squashfuse_ll %s %s: %v\n%s", img, mnt, err, out)
	}
	t.Cleanup(func() { sqtest.Unmount(t, mnt) })
	return mnt
}

// TestWalkerKernelVsSquashfuseLL checks the walker itself against a peer:
// a kernel mount and squashfuse_ll 0.1.105 of the same image must differ
// exactly where squashfuse_ll is known to differ, and the walker must see
// those differences: trusted.* and security.* xattr names swapped, an
// empty xattr value answered with ENODATA, directory st_size 0, its own
// inode numbers, st_blocks, st_blksize and no "." and ".." in listings.
func TestWalkerKernelVsSquashfuseLL(t *testing.T) {
	testutil.RequireLoop(t)
	src := t.TempDir()
	tree := sqtest.MakeFeatureTree(t, src, sqtest.TreeOptions{})
	img := sqtest.Build(t, src, "-comp", "gzip")
	kern, err := sqtest.WalkMount("kernel", sqtest.MountKernel(t, img))
	if err != nil {
		t.Fatal(err)
	}
	peer, err := sqtest.WalkMount("squashfuse_ll", mountSquashfuseLL(t, img))
	if err != nil {
		t.Fatal(err)
	}
	if len(kern.Entries) < 800 {
		t.Fatalf("kernel walk found only %d entries", len(kern.Entries))
	}
	ignore := []string{sqtest.FieldIno, sqtest.FieldBlocks, sqtest.FieldBlksize, sqtest.FieldDots, sqtest.FieldDirentIno}
	diffs := sqtest.CompareListings(kern, peer, 0, ignore...)
	if tree.Root && tree.Xattrs {
		want := `/xattr/b: xattrs: kernel [security.s="security-value"`
		found := false
		for _, d := range diffs {
			found = found || strings.HasPrefix(d, want)
		}
		if !found {
			t.Errorf("walker did not report squashfuse_ll's swapped xattr namespaces (%q)", want)
		}
	}
	// Undo the known differences and compare again: nothing may remain.
	kdir := map[string]int64{}
	for _, e := range kern.Entries {
		kdir[e.Path] = e.Size
	}
	for i := range peer.Entries {
		e := &peer.Entries[i]
		if e.Type == "dir" && e.Size == 0 {
			e.Size = kdir[e.Path]
		}
		for j := range e.Xattrs {
			n := &e.Xattrs[j].Name
			switch {
			case strings.HasPrefix(*n, "trusted."):
				*n = "security." + strings.TrimPrefix(*n, "trusted.")
			case strings.HasPrefix(*n, "security."):
				*n = "trusted." + strings.TrimPrefix(*n, "security.")
			}
		}
	}
	for _, d := range sqtest.CompareListings(kern, peer, 50, ignore...) {
		if strings.HasPrefix(d, "/xattr/a: ") && tree.Xattrs {
			continue // user.empty: squashfuse_ll answers ENODATA for an empty value
		}
		t.Errorf("unexpected difference: %s", d)
	}
}
