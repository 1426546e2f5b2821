// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
	"golang.org/x/sys/unix"
)

// openAs opens path read-only with the file-system identity of uid and
// gid, in a locked thread (setfsuid is per thread), and returns the
// error.
func openAs(t *testing.T, uid, gid int, path string) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread dies with the goroutine: its identity never leaks
		// Drop the supplementary groups of root too, as nobody has none.
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			errc <- e
			return
		}
		unix.Setfsgid(gid)
		unix.Setfsuid(uid)
		if fsuid, _ := unix.SetfsuidRetUid(-1); fsuid != uid {
			errc <- errors.New("setfsuid failed")
			return
		}
		// With an fsuid other than 0 the kernel clears the file-system
		// capabilities (CAP_DAC_OVERRIDE...) of the thread: it opens as
		// nobody would.
		f, err := os.Open(path)
		if err == nil {
			f.Close()
		}
		errc <- err
	}()
	return <-errc
}

// TestPrivateImageFilesUnreadable reproduces #17 item 4: a private
// image's files were 0644, so any local user could read its bytes
// (unsquashfs -cat as nobody printed them). Now nobody gets EACCES on a
// private image's <id>.squashfs and <id>.json and reads a public one;
// a public pull of the private digest opens it; files left
// world-readable by earlier versions are closed at start-up.
func TestPrivateImageFilesUnreadable(t *testing.T) {
	testutil.RequireRoot(t)
	p := newFakePuller()
	pubID := p.add("pub:1", fakeImage{})
	privID := p.add("priv:1", fakeImage{})
	p.add("alias:1", fakeImage{id: privID})
	p.add("alias:2", fakeImage{id: privID})
	c := testConfig(t)
	// nobody must be able to reach the image directory.
	for d := c.Systems["sys"].ImageDir; d != "/"; d = filepath.Dir(d) {
		if strings.HasPrefix(d, os.TempDir()+"/") {
			os.MkdirAll(d, 0o755)
			os.Chmod(d, 0o755)
		}
	}
	tg := startGW(t, c, p)
	dir := c.Systems["sys"].ImageDir
	tg.pullWait(bob, "pub:1", nil)
	if im := tg.pullWait(alice, "priv:1", &api.PullRequest{AllowedUIDs: "1004"}); im.Status != api.StateReady {
		t.Fatalf("private pull: %s %q", im.Status, im.StatusMessage)
	}
	const nobody = 65534
	check := func(when, id string, readable bool) {
		t.Helper()
		sq, mp := imagestore.Paths(dir, id)
		for _, p := range []string{sq, imagestore.ChunksPath(dir, id), mp} {
			err := openAs(t, nobody, nobody, p)
			switch {
			case readable && err != nil:
				t.Errorf("%s: nobody cannot open %s: %v", when, filepath.Base(p), err)
			case !readable && !errors.Is(err, syscall.EACCES):
				t.Errorf("%s: nobody opening %s: %v, want EACCES", when, filepath.Base(p), err)
			}
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if sys := st.Sys().(*syscall.Stat_t); sys.Uid != uint32(os.Getuid()) {
				t.Errorf("%s: %s owned by %d, not the gateway", when, filepath.Base(p), sys.Uid)
			}
		}
	}
	if err := openAs(t, nobody, nobody, dir); err != nil {
		t.Fatalf("nobody cannot open the image directory: %v", err)
	}
	check("published", pubID, true)
	check("published", privID, false)

	// Files left 0644 by earlier versions are closed at start-up.
	sq, mp := imagestore.Paths(dir, privID)
	os.Chmod(sq, 0o644)
	os.Chmod(imagestore.ChunksPath(dir, privID), 0o644)
	os.Chmod(mp, 0o644)
	tg.restart(p)
	check("after restart", privID, false)

	// A public pull of the same digest by one on its ACL makes the image
	// public (by one not on it, it only adds them: still private).
	tg.pullWait(bob, "alias:1", nil)
	check("pulled publicly by one not on the ACL", privID, false)
	tg.pullWait(dave, "alias:2", nil)
	check("pulled publicly", privID, true)
}
