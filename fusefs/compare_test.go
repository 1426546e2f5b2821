// SPDX-License-Identifier: BSD-3-Clause

package fusefs_test

import (
	"testing"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/squashreader"
)

// compareMounts mounts img with the kernel and with fusefs and requires
// that a walk of both finds no difference.
func compareMounts(t *testing.T, img string) {
	t.Helper()
	compareMountsWith(t, img, nil)
}

func compareMountsWith(t *testing.T, img string, mo *fusefs.MountOptions) {
	t.Helper()
	compareMountsReader(t, img, nil, mo)
}

// compareMountsReader is compareMountsWith serving img with reader
// options ro; it returns the reader (closed when the test ends).
func compareMountsReader(t *testing.T, img string, ro *squashreader.Options, mo *fusefs.MountOptions) *squashreader.Reader {
	t.Helper()
	kern, err := sqtest.WalkMount("kernel", sqtest.MountKernel(t, img))
	if err != nil {
		t.Fatal(err)
	}
	testutil.RequireFUSE(t)
	r, err := squashreader.OpenFile(img, ro)
	if err != nil {
		t.Fatalf("open %s: %v", img, err)
	}
	mnt, _ := mountFUSEReader(t, r, mo)
	ours, err := sqtest.WalkMount("fusefs", mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range sqtest.CompareListings(kern, ours, 40) {
		t.Error(d)
	}
	return r
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

// TestDirectReadsMatchesKernel: with squashreader's DirectReads (the
// default on one CPU), whole blocks go straight into the kernel's READ
// buffers; the tree reads the same as through the kernel's squashfs.
func TestDirectReadsMatchesKernel(t *testing.T) {
	testutil.RequireLoop(t)
	testutil.RequireFUSE(t)
	src := t.TempDir()
	sqtest.MakeFeatureTree(t, src, sqtest.TreeOptions{Small: true})
	for _, comp := range []string{"zstd", "gzip"} {
		t.Run(comp, func(t *testing.T) {
			r := compareMountsReader(t, sqtest.Build(t, src, "-comp", comp, "-b", "16K"), &squashreader.Options{DirectReads: 1}, nil)
			if st := r.ReadStats(); st.Direct == 0 || st.ReadAhead != 0 {
				t.Errorf("read stats %+v: want blocks decompressed straight into READ buffers, none read ahead", st)
			}
		})
	}
}
