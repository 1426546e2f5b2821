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
// a kernel mount and squashfuse_ll of the same image must agree except
// where squashfuse_ll is known to differ: its own inode numbers, st_blocks,
// st_blksize, directory st_size 0 and no "." and ".." (ignored), an empty
// xattr value answered with ENODATA, and in 0.1.105 the trusted.* and
// security.* namespaces swapped, which the walker must notice.
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
	kdir := map[string]int64{}
	for _, e := range kern.Entries {
		kdir[e.Path] = e.Size
	}
	for i := range peer.Entries {
		if e := &peer.Entries[i]; e.Type == "dir" && e.Size == 0 {
			e.Size = kdir[e.Path]
		}
	}
	unexpected := func(l *sqtest.Listing) []string {
		var out []string
		for _, d := range sqtest.CompareListings(kern, l, 50, ignore...) {
			if strings.HasPrefix(d, "/xattr/a: ") && tree.Xattrs {
				continue // user.empty: squashfuse_ll answers ENODATA for an empty value
			}
			out = append(out, d)
		}
		return out
	}
	raw := unexpected(peer)
	// Swap the namespaces back and compare again.
	for i := range peer.Entries {
		for j := range peer.Entries[i].Xattrs {
			n := &peer.Entries[i].Xattrs[j].Name
			switch {
			case strings.HasPrefix(*n, "trusted."):
				*n = "security." + strings.TrimPrefix(*n, "trusted.")
			case strings.HasPrefix(*n, "security."):
				*n = "trusted." + strings.TrimPrefix(*n, "security.")
			}
		}
	}
	swapped := unexpected(peer)
	switch {
	case len(raw) == 0:
		t.Log("squashfuse_ll matches the kernel (namespaces not swapped)")
	case len(swapped) == 0:
		want := `/xattr/b: xattrs: kernel [security.s="security-value"`
		found := false
		for _, d := range raw {
			found = found || strings.HasPrefix(d, want)
		}
		if tree.Root && !found {
			t.Errorf("walker did not report the swapped namespaces as %q...: %q", want, raw)
		}
	default:
		for _, d := range swapped {
			t.Errorf("unexpected difference: %s", d)
		}
	}
}
