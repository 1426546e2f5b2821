// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func modeOf(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// TestFileModes: a private image's files are 0600 from the temporary
// file on (never readable by others, even for an instant); a public
// image's 0644; a change of visibility in the metadata changes both
// files' modes (#17 item 4).
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0) // the modes must not depend on the umask
	defer syscall.Umask(old)
	dir := t.TempDir()
	id := testID("private")
	f, err := CreateTemp(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := modeOf(t, f.Name()); m != ModePrivate {
		t.Errorf("temporary file mode %o, want %o", m, ModePrivate)
	}
	f.WriteString("bytes")
	f.Close()
	m := &Metadata{ID: id, Tags: []string{}, UserACL: []uint32{1001}, Created: time.Now()}
	if err := Publish(dir, f.Name(), m); err != nil {
		t.Fatal(err)
	}
	sq, mp := Paths(dir, id)
	for _, tc := range []struct {
		name  string
		users []uint32
		want  os.FileMode
	}{
		{"private", []uint32{1001}, 0o600},
		{"made public", []uint32{}, 0o644},
		{"private again", []uint32{1001}, 0o600},
		{"root only", []uint32{0}, 0o600},
	} {
		m.UserACL = tc.users
		if tc.name != "private" {
			if err := WriteMetadata(dir, m); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range []string{sq, mp} {
			if got := modeOf(t, p); got != tc.want {
				t.Errorf("%s: %s mode %o, want %o", tc.name, filepath.Base(p), got, tc.want)
			}
		}
	}
	// Publishing a public image with the same id again opens the kept
	// squashfs to everyone.
	f, _ = CreateTemp(dir)
	f.Close()
	m.UserACL = nil
	if err := Publish(dir, f.Name(), m); err != nil {
		t.Fatal(err)
	}
	if got := modeOf(t, sq); got != 0o644 {
		t.Errorf("republished public: squashfs mode %o", got)
	}
	// SetModes repairs files left world-readable, and never follows a
	// symbolic link.
	os.Chmod(sq, 0o644)
	os.Chmod(mp, 0o666)
	m.UserACL = []uint32{7}
	if err := SetModes(dir, m); err != nil {
		t.Fatal(err)
	}
	if modeOf(t, sq) != 0o600 || modeOf(t, mp) != 0o600 {
		t.Errorf("SetModes: %o %o", modeOf(t, sq), modeOf(t, mp))
	}
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, nil, 0o644)
	os.Remove(sq)
	os.Symlink(target, sq)
	if err := SetModes(dir, m); err == nil {
		t.Error("SetModes through a symbolic link succeeded")
	}
	if got := modeOf(t, target); got != 0o644 {
		t.Errorf("SetModes changed a symbolic link's target: %o", got)
	}
}
