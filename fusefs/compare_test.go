// SPDX-License-Identifier: BSD-3-Clause

package fusefs_test

import (
	"testing"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
)

// compareMounts mounts img with the kernel and with fusefs and requires
// that a walk of both finds no difference.
func compareMounts(t *testing.T, img string) {
	t.Helper()
	compareMountsWith(t, img, nil)
}

func compareMountsWith(t *testing.T, img string, mo *fusefs.MountOptions) {
	t.Helper()
	kern, err := sqtest.WalkMount("kernel", sqtest.MountKernel(t, img))
	if err != nil {
		t.Fatal(err)
	}
	mnt, _ := mountFUSE(t, img, mo)
	ours, err := sqtest.WalkMount("fusefs", mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range sqtest.CompareListings(kern, ours, 40) {
		t.Error(d)
	}
}

func TestMountMatchesKernel(t *testing.T) {
	testutil.RequireLoop(t)
	testutil.RequireFUSE(t)
	src := t.TempDir()
	sqtest.MakeFeatureTree(t, src, sqtest.TreeOptions{})
	img := sqtest.Build(t, src, "-comp", "gzip")
	compareMounts(t, img)
}

// TestNoReaddirPlusMatchesKernel: plain READDIR (and a LOOKUP per entry)
// shows the same tree.
func TestNoReaddirPlusMatchesKernel(t *testing.T) {
	testutil.RequireLoop(t)
	testutil.RequireFUSE(t)
	src := t.TempDir()
	sqtest.MakeFeatureTree(t, src, sqtest.TreeOptions{Small: true})
	compareMountsWith(t, sqtest.Build(t, src, "-comp", "lz4"), &fusefs.MountOptions{NoReaddirPlus: true})
}
