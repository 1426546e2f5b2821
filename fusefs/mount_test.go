// SPDX-License-Identifier: BSD-3-Clause

package fusefs_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shifter-go/shifter/fusefs"
	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
)

// featureSource makes the sqtest feature tree (small: its few-KB
// variant) in a new temporary directory.
func featureSource(t *testing.T, small bool) (string, *sqtest.Tree) {
	t.Helper()
	dir := t.TempDir()
	return dir, sqtest.MakeFeatureTree(t, dir, sqtest.TreeOptions{Small: small})
}

// TestMatrixMatchesKernel compares the kernel and fusefs mounts of the
// feature tree for every compressor, layout option and some block sizes
// that internal/sqtest lists.
func TestMatrixMatchesKernel(t *testing.T) {
	testutil.RequireLoop(t)
	testutil.RequireFUSE(t)
	small, _ := featureSource(t, true)
	full := small
	if !raceEnabled {
		full, _ = featureSource(t, false)
	}
	type imgCase struct {
		name string
		src  string
		args []string
	}
	var cases []imgCase
	for _, c := range sqtest.Compressors {
		cases = append(cases, imgCase{"comp/" + c.Name, small, c.Args})
	}
	for _, c := range sqtest.Options {
		cases = append(cases, imgCase{"opt/" + c.Name, small, append([]string{"-comp", "gzip"}, c.Args...)})
	}
	if !raceEnabled { // big trees: slow under -race and no concurrency to check
		for _, bs := range []string{"4K", "1M"} {
			cases = append(cases, imgCase{"block/" + bs, full, []string{"-comp", "zstd", "-b", bs}})
		}
		cases = append(cases, imgCase{"full/xz-64K", full, []string{"-comp", "xz", "-b", "64K"}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			compareMounts(t, sqtest.Build(t, tc.src, tc.args...))
		})
	}
}

// TestLargeTreeMatchesKernel compares the mounts of a real tree: the Go
// toolchain's sources.
func TestLargeTreeMatchesKernel(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("large tree: not in -short or -race")
	}
	testutil.RequireLoop(t)
	testutil.RequireFUSE(t)
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	src := filepath.Join(strings.TrimSpace(string(goroot)), "src")
	compareMounts(t, sqtest.Build(t, src, "-comp", "zstd"))
}

// TestReadOnly: every way to modify the mount fails with EROFS, as on the
// kernel mount.
func TestReadOnly(t *testing.T) {
	testutil.RequireLoop(t)
	testutil.RequireFUSE(t)
	src, _ := featureSource(t, true)
	img := sqtest.Build(t, src, "-comp", "gzip")
	mounts := map[string]string{"kernel": sqtest.MountKernel(t, img)}
	mounts["fusefs"], _ = mountFUSE(t, img, nil)
	ops := []struct {
		name string
		do   func(m string) error
	}{
		{"write", func(m string) error {
			f, err := os.OpenFile(filepath.Join(m, "files/text-100"), os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"truncate", func(m string) error { return os.Truncate(filepath.Join(m, "files/text-100"), 0) }},
		{"create", func(m string) error {
			f, err := os.Create(filepath.Join(m, "new"))
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"mkdir", func(m string) error { return os.Mkdir(filepath.Join(m, "newdir"), 0o755) }},
		{"mknod", func(m string) error { return unix.Mkfifo(filepath.Join(m, "fifo"), 0o644) }},
		{"symlink", func(m string) error { return os.Symlink("x", filepath.Join(m, "sym")) }},
		{"link", func(m string) error { return os.Link(filepath.Join(m, "files/text-100"), filepath.Join(m, "hl")) }},
		{"unlink", func(m string) error { return os.Remove(filepath.Join(m, "files/text-100")) }},
		{"rmdir", func(m string) error { return os.Remove(filepath.Join(m, "dirs/empty")) }},
		{"rename", func(m string) error { return os.Rename(filepath.Join(m, "files/text-100"), filepath.Join(m, "r")) }},
		{"chmod", func(m string) error { return os.Chmod(filepath.Join(m, "files/text-100"), 0o600) }},
		{"chown", func(m string) error { return os.Lchown(filepath.Join(m, "files/text-100"), 1, 1) }},
		{"utimes", func(m string) error {
			return unix.UtimesNano(filepath.Join(m, "files/text-100"), make([]unix.Timespec, 2))
		}},
		{"setxattr", func(m string) error {
			return unix.Lsetxattr(filepath.Join(m, "files/text-100"), "user.x", []byte("v"), 0)
		}},
		{"removexattr", func(m string) error { return unix.Lremovexattr(filepath.Join(m, "xattr"), "user.dir") }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			for name, m := range mounts {
				if err := op.do(m); !errors.Is(err, unix.EROFS) {
					t.Errorf("%s on the %s mount = %v, want EROFS", op.name, name, err)
				}
			}
		})
	}
}

// TestStatfs compares statfs with the kernel's: every figure but f_type
// (FUSE's for every FUSE mount) and f_fsid.
func TestStatfs(t *testing.T) {
	testutil.RequireLoop(t)
	testutil.RequireFUSE(t)
	src, _ := featureSource(t, true)
	for _, bs := range []string{"4K", "128K", "1M"} {
		t.Run(bs, func(t *testing.T) {
			img := sqtest.Build(t, src, "-b", bs)
			var k, f unix.Statfs_t
			if err := unix.Statfs(sqtest.MountKernel(t, img), &k); err != nil {
				t.Fatal(err)
			}
			mnt, _ := mountFUSE(t, img, nil)
			if err := unix.Statfs(mnt, &f); err != nil {
				t.Fatal(err)
			}
			if f.Type != 0x65735546 {
				t.Errorf("f_type = %#x, want FUSE_SUPER_MAGIC", f.Type)
			}
			want := fmt.Sprintf("bsize=%d frsize=%d blocks=%d bfree=%d bavail=%d files=%d ffree=%d namelen=%d ro=%v",
				k.Bsize, k.Frsize, k.Blocks, k.Bfree, k.Bavail, k.Files, k.Ffree, k.Namelen, k.Flags&unix.ST_RDONLY != 0)
			got := fmt.Sprintf("bsize=%d frsize=%d blocks=%d bfree=%d bavail=%d files=%d ffree=%d namelen=%d ro=%v",
				f.Bsize, f.Frsize, f.Blocks, f.Bfree, f.Bavail, f.Files, f.Ffree, f.Namelen, f.Flags&unix.ST_RDONLY != 0)
			if got != want {
				t.Errorf("statfs:\n got  %s\n want %s (kernel)", got, want)
			}
			if f.Flags&(unix.ST_NOSUID|unix.ST_NODEV) != unix.ST_NOSUID|unix.ST_NODEV {
				t.Errorf("statfs flags %#x lack nosuid,nodev", f.Flags)
			}
		})
	}
}

// asNobody runs a shell command as uid/gid 65534 and returns its output
// and exit status.
func asNobody(t *testing.T, script string) (string, int) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("run as nobody: %v", err)
	}
	return string(out), 0
}

// traversable makes every directory from dir up to / traversable by
// others (t.TempDir makes 0700 ones).
func traversable(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, st.Mode().Perm()|0o055); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestPermissions: an unprivileged user gets the kernel mount's answers:
// EACCES on a 0600 file of another owner and on a 0700 directory, access
// to world-readable files, and no trusted.* xattrs in listings.
func TestPermissions(t *testing.T) {
	testutil.RequireLoop(t)
	testutil.RequireFUSE(t)
	src := t.TempDir()
	write := func(rel string, mode os.FileMode, uid int) {
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rel+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	write("secret", 0o600, 1000)
	write("public", 0o644, 1000)
	write("private/inner", 0o644, 0)
	if err := os.Chmod(filepath.Join(src, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	xattrs := unix.Setxattr(filepath.Join(src, "public"), "trusted.t", []byte("t"), 0) == nil &&
		unix.Setxattr(filepath.Join(src, "public"), "user.u", []byte("u"), 0) == nil
	img := sqtest.Build(t, src, "-comp", "gzip")
	kern := sqtest.MountKernel(t, img)
	ours, _ := mountFUSE(t, img, &fusefs.MountOptions{AllowOther: true})
	traversable(t, kern)
	traversable(t, ours)
	script := `cd "$1" || exit 9
for f in secret public private/inner; do cat "$f" >/dev/null 2>&1 && echo "$f readable" || echo "$f denied"; done
ls private >/dev/null 2>&1 && echo "private listable" || echo "private denied"
getfattr -d -m - public 2>/dev/null | grep = || true`
	if _, err := exec.LookPath("getfattr"); err != nil {
		script = strings.Replace(script, "getfattr -d -m - public 2>/dev/null | grep = || true", "", 1)
	}
	wantOut, wantCode := asNobody(t, "set -- "+kern+"; "+script)
	gotOut, gotCode := asNobody(t, "set -- "+ours+"; "+script)
	if gotOut != wantOut || gotCode != wantCode {
		t.Errorf("as uid 65534, fusefs:\n%s(exit %d)\nkernel:\n%s(exit %d)", gotOut, gotCode, wantOut, wantCode)
	}
	for _, want := range []string{"secret denied", "public readable", "private/inner denied", "private denied"} {
		if !strings.Contains(gotOut, want) {
			t.Errorf("as uid 65534 on fusefs: missing %q in\n%s", want, gotOut)
		}
	}
	if xattrs && strings.Contains(gotOut, "trusted") {
		t.Errorf("trusted.* listed to an unprivileged user:\n%s", gotOut)
	}
}

// TestConcurrentReaders reads every file of the feature tree from many
// goroutines at once and checks the contents against the kernel mount's.
func TestConcurrentReaders(t *testing.T) {
	testutil.RequireLoop(t)
	testutil.RequireFUSE(t)
	src, _ := featureSource(t, false)
	img := sqtest.Build(t, src, "-comp", "gzip", "-b", "64K")
	kern, err := sqtest.WalkMount("kernel", sqtest.MountKernel(t, img))
	if err != nil {
		t.Fatal(err)
	}
	mnt, _ := mountFUSE(t, img, nil)
	var files []sqtest.WalkEntry
	for _, e := range kern.Entries {
		if e.Type == "file" {
			files = append(files, e)
		}
	}
	const workers = 16
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := range files {
				e := files[(i+w*7)%len(files)]
				p := filepath.Join(mnt, e.Path)
				var st unix.Stat_t
				if err := unix.Lstat(p, &st); err != nil || st.Size != e.Size {
					errs <- fmt.Errorf("lstat %s: size %d, %v; kernel %d", e.Path, st.Size, err, e.Size)
					return
				}
				f, err := os.Open(p)
				if err != nil {
					errs <- err
					return
				}
				h := sha256.New()
				// Odd-sized reads, so that requests cross blocks.
				_, err = io.CopyBuffer(h, f, make([]byte, 4096+w*1000))
				f.Close()
				if err != nil {
					errs <- err
					return
				}
				if got := fmt.Sprintf("%x", h.Sum(nil)); got != e.SHA256 {
					errs <- fmt.Errorf("%s: sha256 %s, kernel %s", e.Path, got, e.SHA256)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestWarmWalkUsesKernelCaches walks the mount twice: the second walk
// must be answered from the kernel's caches (entries, attributes,
// listings, symlinks, pages), reaching the server only for xattrs, which
// the kernel does not cache.
func TestWarmWalkUsesKernelCaches(t *testing.T) {
	testutil.RequireFUSE(t)
	src, _ := featureSource(t, true)
	img := sqtest.Build(t, src, "-comp", "gzip")
	mnt, fsys := mountFUSE(t, img, nil)
	cold, err := sqtest.WalkMount("cold", mnt)
	if err != nil {
		t.Fatal(err)
	}
	coldStats := fsys.Stats()
	fsys.ResetStats()
	warm, err := sqtest.WalkMount("warm", mnt)
	if err != nil {
		t.Fatal(err)
	}
	warmStats := fsys.Stats()
	t.Logf("%d entries; cold walk: %d requests %v; warm walk: %d requests %v",
		len(cold.Entries), coldStats.Total(), coldStats, warmStats.Total(), warmStats)
	for _, d := range sqtest.CompareListings(cold, warm, 20) {
		t.Error(d)
	}
	for op, n := range warmStats {
		if op != "GETXATTR" && op != "LISTXATTR" {
			t.Errorf("warm walk sent %d %s requests, want 0", n, op)
		}
	}
	// A name that is not there is remembered too.
	fsys.ResetStats()
	for i := 0; i < 3; i++ {
		if _, err := os.Lstat(filepath.Join(mnt, "files", "no-such-file")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("lstat of a missing name = %v", err)
		}
	}
	if n := fsys.Stats()["LOOKUP"]; n != 1 {
		t.Errorf("3 lstats of a missing name sent %d LOOKUPs, want 1", n)
	}
}

// TestBigFileRead reads a file over 4 GiB at offsets around 4 GiB.
func TestBigFileRead(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("builds an image of a > 4 GiB sparse file: not in -short or -race")
	}
	testutil.RequireLoop(t)
	testutil.RequireFUSE(t)
	src := t.TempDir()
	tree := sqtest.MakeFeatureTree(t, src, sqtest.TreeOptions{Small: true, BigFile: true})
	if tree.BigFile == "" {
		t.Skip("no big file made")
	}
	img := sqtest.Build(t, src, "-comp", "lz4")
	kern := filepath.Join(sqtest.MountKernel(t, img), tree.BigFile)
	mnt, _ := mountFUSE(t, img, nil)
	ours := filepath.Join(mnt, tree.BigFile)
	for _, off := range []int64{0, 1<<32 - 30001, 1<<32 - 1, 1 << 32, 4<<30 + 12345 - 100} {
		want, got := make([]byte, 70000), make([]byte, 70000)
		nw, errw := readAt(kern, want, off)
		ng, errg := readAt(ours, got, off)
		if nw != ng || !bytes.Equal(want[:nw], got[:ng]) || (errw == nil) != (errg == nil) {
			t.Errorf("read at %d: fusefs %d bytes (%v), kernel %d bytes (%v), equal=%v", off, ng, errg, nw, errw, bytes.Equal(want[:nw], got[:ng]))
		}
	}
}

func readAt(path string, p []byte, off int64) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := f.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// TestKernelReadahead: as root, Mount has set the mount's readahead window
// (its bdi's read_ahead_kb) by the time it returns; a negative
// KernelReadahead leaves the kernel's default.
func TestKernelReadahead(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFUSE(t)
	src, _ := featureSource(t, true)
	img := sqtest.Build(t, src)
	for _, tc := range []struct {
		name string
		ra   int
		want string
	}{
		{"default", 0, "1024"},
		{"256 KiB", 256 << 10, "256"},
		{"kernel default", -1, ""}, // whatever the kernel chose: not 1024 or 256
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt, _ := mountFUSE(t, img, &fusefs.MountOptions{KernelReadahead: tc.ra})
			var sx unix.Statx_t
			if err := unix.Statx(unix.AT_FDCWD, mnt, unix.AT_STATX_DONT_SYNC, unix.STATX_TYPE, &sx); err != nil {
				t.Fatal(err)
			}
			p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", sx.Dev_major, sx.Dev_minor)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.TrimSpace(string(b))
			if tc.want != "" && got != tc.want {
				t.Errorf("%s = %s, want %s", p, got, tc.want)
			}
			if tc.want == "" && (got == "1024" || got == "256") {
				t.Errorf("%s = %s, want the kernel's default", p, got)
			}
		})
	}
}
