// SPDX-License-Identifier: BSD-3-Clause

package fusefs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/squashreader"
)

// mountFUSE serves img through fusefs in this process on a new temporary
// directory; the mount is removed when the test ends.
func mountFUSE(t testing.TB, img string, mo *fusefs.MountOptions) (string, *fusefs.FS) {
	t.Helper()
	testutil.RequireFUSE(t)
	r, err := squashreader.OpenFile(img, nil)
	if err != nil {
		t.Fatalf("open %s: %v", img, err)
	}
	return mountFUSEReader(t, r, mo)
}

// mountFUSEReader is mountFUSE of an open reader, which it closes.
func mountFUSEReader(t testing.TB, r *squashreader.Reader, mo *fusefs.MountOptions) (string, *fusefs.FS) {
	t.Helper()
	testutil.RequireFUSE(t)
	fsys, err := fusefs.New(r, nil)
	if err != nil {
		r.Close()
		t.Fatalf("fusefs.New: %v", err)
	}
	mnt := t.TempDir()
	srv, err := fusefs.Mount(mnt, fsys, mo)
	if err != nil {
		r.Close()
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() {
		defer r.Close()
		var err error
		for i := 0; i < 50; i++ {
			if err = srv.Unmount(); !errors.Is(err, fusefs.ErrBusy) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
			srv.UnmountLazy()
		}
	})
	return mnt, fsys
}
