// SPDX-License-Identifier: BSD-3-Clause

package fusefs_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/squashreader"
)

// mounted reports whether mnt is the mount point of a mount.
func mounted(t *testing.T, mnt string) bool {
	t.Helper()
	_, ok := testutil.MountAt(t, mnt)
	return ok
}

// TestUnmount: Unmount of an idle mount removes it and ends the server; a
// busy mount gives ErrBusy and stays; UnmountLazy detaches it at once and
// the server ends when the last open file is closed.
func TestUnmount(t *testing.T) {
	testutil.RequireFUSE(t)
	src, _ := featureSource(t, true)
	img := sqtest.Build(t, src, "-comp", "gzip")
	r, err := squashreader.OpenFile(img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fsys, err := fusefs.New(r, nil)
	if err != nil {
		t.Fatal(err)
	}

	mnt := t.TempDir()
	srv, err := fusefs.Mount(mnt, fsys, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !mounted(t, mnt) {
		t.Fatal("Mount returned but nothing is mounted")
	}
	if err := srv.Unmount(); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	select {
	case <-srv.Done():
	default:
		t.Error("Unmount returned before the server ended")
	}
	if mounted(t, mnt) {
		t.Error("still mounted after Unmount")
	}

	mnt = t.TempDir()
	srv, err = fusefs.Mount(mnt, fsys, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.UnmountLazy() })
	f, err := os.Open(filepath.Join(mnt, "files/text-3000"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := srv.Unmount(); !errors.Is(err, fusefs.ErrBusy) {
		t.Fatalf("Unmount with an open file = %v, want ErrBusy", err)
	}
	if !mounted(t, mnt) {
		t.Fatal("busy mount was unmounted")
	}
	if err := srv.UnmountLazy(); err != nil {
		t.Fatalf("UnmountLazy: %v", err)
	}
	if mounted(t, mnt) {
		t.Error("still in the mount table after UnmountLazy")
	}
	b := make([]byte, 100)
	if _, err := f.ReadAt(b, 2000); err != nil {
		t.Errorf("read of a file open across UnmountLazy: %v", err)
	}
	select {
	case <-srv.Done():
		t.Fatal("server ended while a file was open")
	case <-time.After(50 * time.Millisecond):
	}
	f.Close()
	select {
	case <-srv.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("server still running 5 s after the last file was closed")
	}
}
