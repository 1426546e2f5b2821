// SPDX-License-Identifier: BSD-3-Clause

package udiroot

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/shifter-go/shifter/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestOpenTrustedAttacks builds trees under a root-owned 0755 directory
// and checks that every way an ordinary user could have influenced the
// file is refused.
func TestOpenTrustedAttacks(t *testing.T) {
	testutil.RequireRoot(t)
	const other = 65534 // nobody
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // creates dir/etc/udiRoot.conf somehow
		msg   string                         // "" = must succeed
	}{
		{"good", func(t *testing.T, dir string) {}, ""},
		{"file owned by user", func(t *testing.T, dir string) {
			must(t, os.Chown(filepath.Join(dir, "etc/udiRoot.conf"), other, 0))
		}, "owned by uid 65534"},
		{"file group-writable", func(t *testing.T, dir string) {
			must(t, os.Chmod(filepath.Join(dir, "etc/udiRoot.conf"), 0o664))
		}, "writable by group or others"},
		{"file world-writable", func(t *testing.T, dir string) {
			must(t, os.Chmod(filepath.Join(dir, "etc/udiRoot.conf"), 0o646))
		}, "writable by group or others"},
		{"directory owned by user", func(t *testing.T, dir string) {
			must(t, os.Chown(filepath.Join(dir, "etc"), other, other))
		}, "owned by uid 65534"},
		{"directory world-writable sticky", func(t *testing.T, dir string) {
			must(t, os.Chmod(filepath.Join(dir, "etc"), 0o1777))
		}, "writable by group or others"},
		{"file is a symlink", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "etc/udiRoot.conf")
			must(t, os.Rename(p, filepath.Join(dir, "etc/real.conf")))
			must(t, os.Symlink("real.conf", p))
		}, "symlink"},
		{"directory is a symlink", func(t *testing.T, dir string) {
			must(t, os.Rename(filepath.Join(dir, "etc"), filepath.Join(dir, "real")))
			must(t, os.Symlink("real", filepath.Join(dir, "etc")))
		}, "symlink"},
		{"file is a fifo", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "etc/udiRoot.conf")
			must(t, os.Remove(p))
			must(t, unix.Mkfifo(p, 0o644))
		}, "not a regular file"},
		{"file is a directory", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "etc/udiRoot.conf")
			must(t, os.Remove(p))
			must(t, os.Mkdir(p, 0o755))
		}, "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			must(t, os.Chmod(dir, 0o755))
			must(t, os.Mkdir(filepath.Join(dir, "etc"), 0o755))
			must(t, os.WriteFile(filepath.Join(dir, "etc/udiRoot.conf"), []byte("system=x\n"), 0o644))
			tc.setup(t, dir)
			d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			must(t, err)
			defer unix.Close(d)
			f, err := openTrustedAt(d, dir, "etc/udiRoot.conf")
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("openTrustedAt = %v, want success", err)
				}
				b, _ := io.ReadAll(f)
				f.Close()
				if string(b) != "system=x\n" {
					t.Errorf("read %q", b)
				}
				return
			}
			if err == nil {
				f.Close()
				t.Fatalf("openTrustedAt succeeded, want error containing %q", tc.msg)
			}
			if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("openTrustedAt = %v, want ErrUntrusted containing %q", err, tc.msg)
			}
		})
	}
}

// TestOpenTrustedPublic exercises the exported walk from / on real
// system paths.
func TestOpenTrustedPublic(t *testing.T) {
	testutil.RequireRoot(t)
	// A file under a world-writable ancestor (/tmp) is refused even when
	// the file itself is root-owned 0644.
	dir := t.TempDir()
	p := filepath.Join(dir, "udiRoot.conf")
	must(t, os.WriteFile(p, []byte("system=x\n"), 0o644))
	must(t, os.Chmod(dir, 0o755))
	if f, err := OpenTrusted(p); err == nil {
		f.Close()
		if st, _ := os.Stat(os.TempDir()); st.Mode().Perm()&0o022 != 0 {
			t.Errorf("OpenTrusted(%s) succeeded under writable %s", p, os.TempDir())
		}
	} else if !errors.Is(err, ErrUntrusted) {
		t.Errorf("OpenTrusted(%s) = %v, want ErrUntrusted", p, err)
	}
	// Load in trusted mode refuses the same file.
	if _, err := Load(p, true); err == nil {
		t.Errorf("Load(%s, trusted) succeeded", p)
	}
	for _, bad := range []string{"relative", "/etc/../etc/passwd", "/", "/etc//passwd"} {
		if f, err := OpenTrusted(bad); err == nil || !errors.Is(err, ErrUntrusted) {
			if f != nil {
				f.Close()
			}
			t.Errorf("OpenTrusted(%q) = %v, want ErrUntrusted", bad, err)
		}
	}
	// /etc/passwd is root-owned 0644 under root-owned / and /etc on any
	// sane system.
	var st syscall.Stat_t
	if syscall.Stat("/etc", &st) == nil && st.Uid == 0 && st.Mode&0o022 == 0 {
		f, err := OpenTrusted("/etc/passwd")
		if err != nil {
			t.Fatalf("OpenTrusted(/etc/passwd) = %v", err)
		}
		f.Close()
	}
	if _, err := OpenTrusted("/etc/no-such-file-here"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenTrusted(missing) = %v, want ErrNotExist", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
