// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"os"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/internal/testutil"
	"golang.org/x/sys/unix"
)

// fsImmutable is FS_IMMUTABLE_FL (chattr +i).
const fsImmutable = 0x10

// setImmutable sets or clears a directory's immutable flag: nothing can
// be created, renamed or removed in it, even by root.
func setImmutable(dir string, on bool) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetInt(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	if on {
		flags |= fsImmutable
	} else {
		flags &^= fsImmutable
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, flags)
}

// TestReadOnlyStoreLeavesNoTemporaryFile reproduces the read-only store
// of #17 item 7: a store that turns read-only while an image is built
// made the publish fail and left the build's temporary file (the whole
// image) in the store until the gateway restarted. Now the file is
// removed as soon as the store allows it: at the next build, without a
// restart.
func TestReadOnlyStoreLeavesNoTemporaryFile(t *testing.T) {
	testutil.RequireRoot(t)
	p := newFakePuller()
	p.add("a:1", fakeImage{})
	p.add("b:1", fakeImage{})
	c := testConfig(t)
	tg := startGW(t, c, p)
	dir := c.Systems["sys"].ImageDir
	if err := setImmutable(dir, false); err != nil {
		testutil.Unavailable(t, "file system without chattr flags: "+err.Error())
	}
	t.Cleanup(func() { setImmutable(dir, false) })
	p.mu.Lock()
	p.afterWrite = func() {
		if err := setImmutable(dir, true); err != nil {
			t.Error(err)
		}
	}
	p.mu.Unlock()
	im := tg.pullWait(alice, "a:1", nil)
	if im.Status != api.StateFailure || !strings.Contains(im.StatusMessage, "operation not permitted") {
		t.Fatalf("pull into a read-only store: %s %q", im.Status, im.StatusMessage)
	}
	if names := tempNames(t, dir); len(names) != 1 {
		t.Fatalf("temporary files in the read-only store: %v (the test expects the one it could not remove)", names)
	}
	p.mu.Lock()
	p.afterWrite = nil
	p.mu.Unlock()
	if err := setImmutable(dir, false); err != nil {
		t.Fatal(err)
	}
	if im := tg.pullWait(alice, "b:1", nil); im.Status != api.StateReady {
		t.Fatalf("pull after the store is writable again: %s %q", im.Status, im.StatusMessage)
	}
	if names := tempNames(t, dir); len(names) != 0 {
		t.Errorf("a failed publish's temporary file is still in the store: %v", names)
	}
}
