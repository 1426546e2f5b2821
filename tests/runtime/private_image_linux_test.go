// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"testing"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/launcher"
)

// publishPrivate publishes the test image again under a new id, private
// to the users in acl, as the gateway does: files 0600, owned by root
// (#17 item 4).
func publishPrivate(t *testing.T, in *installation, name string, acl []uint32) string {
	t.Helper()
	sum := sha256.Sum256([]byte("private runtime test image " + name + in.h.dir))
	id := hex.EncodeToString(sum[:])
	tmp, err := imagestore.CreateTemp(in.store)
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(in.h.img.squashfs)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(tmp, src)
	src.Close()
	tmp.Close()
	m := &imagestore.Metadata{ID: id, Tags: []string{}, UserACL: acl, GroupACL: []uint32{},
		Env: []string{"PATH=/bin:/usr/bin"}, WorkDir: "/"}
	if err := imagestore.Publish(in.store, tmp.Name(), m); err != nil {
		t.Fatal(err)
	}
	sq, mp := imagestore.Paths(in.store, id)
	for _, p := range []string{sq, mp} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v %v, want 0600", p, st.Mode(), err)
		}
	}
	return id
}

// TestPrivateImageSetuidRuntime: a private image's files are readable by
// root only, and the setuid runtime still runs it for a user on its ACL
// (it opens them as root after the ACL check), in loop and fuse modes;
// a user not on the ACL is refused.
func TestPrivateImageSetuidRuntime(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	mine := publishPrivate(t, in, "mine", []uint32{nobodyUID})
	other := publishPrivate(t, in, "other", []uint32{nobodyUID + 1})
	for _, mode := range []string{"loop", "fuse"} {
		t.Run(mode, func(t *testing.T) {
			requireMode(t, mode)
			in.t = t
			in.config(mode, "")
			if r := in.run(in.shifter, nil, "--image=id:"+mine, "cat", "/etc/image-marker"); r.code != 0 || r.stdout == "" {
				t.Errorf("private image, caller on its ACL: exit %d %q\n%s", r.code, r.stdout, r.stderr)
			}
			// Without the setuid bit the caller's own rights cannot read
			// the image's files: refused, never run.
			if r := in.run(in.plain, nil, "--image=id:"+mine, "true"); r.code == 0 {
				t.Errorf("private image through a non-setuid runtime: exit 0\n%s", r.stderr)
			} else {
				t.Logf("non-setuid runtime: exit %d: %s", r.code, r.stderr)
			}
			if r := in.run(in.shifter, nil, "--image=id:"+other, "true"); r.code != launcher.ExitNoPerm && r.code != launcher.ExitUnknownImage {
				t.Errorf("private image, caller not on its ACL: exit %d, want %d or %d\n%s", r.code, launcher.ExitNoPerm, launcher.ExitUnknownImage, r.stderr)
			}
		})
	}
}
