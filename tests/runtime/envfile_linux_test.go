// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/launcher"
)

// publishImage publishes the squashfs img in the installation's store
// under a new id and returns it.
func (in *installation) publishImage(name, img string) string {
	in.t.Helper()
	sum := sha256.Sum256([]byte(name + " " + in.h.dir))
	id := hex.EncodeToString(sum[:])
	tmp, err := imagestore.CreateTemp(in.store)
	if err != nil {
		in.t.Fatal(err)
	}
	src, err := os.Open(img)
	if err != nil {
		in.t.Fatal(err)
	}
	io.Copy(tmp, src)
	src.Close()
	tmp.Close()
	if err := imagestore.Publish(in.store, tmp.Name(), &imagestore.Metadata{ID: id, Env: []string{"PATH=/bin:/usr/bin", "IMAGE_VAR=from-image"}}); err != nil {
		in.t.Fatal(err)
	}
	return id
}

// TestEnvFileInContainer: --env-file is read as Shifter reads it, in the
// container and as the user: a file only the image has is read (a
// relative path from the working directory); a file only on the host is
// not found; a file the user cannot read is refused although root could
// read it; magic links are not followed. Its variables come after the
// image's ENV and before --env and the site's siteEnv.
func TestEnvFileInContainer(t *testing.T) {
	h := newHarness(t)
	requireMode(t, "loop")
	in := install(t, h)
	img := h.imageWith("envfile", func(tree string) error {
		return os.WriteFile(filepath.Join(tree, "etc/image.env"), []byte("# in the image\nIMAGE_VAR=from-file\nSHIFTER_RUNTIME=from-file\nFLAG=from-file\nFILE_ONLY='quoted'\n"), 0o644)
	})
	id := in.publishImage("envfile", img)
	// In the test's directory, under the host's /tmp, which the container
	// has too: readable by root only.
	rootOnly := filepath.Join(h.dir, "root-only.env")
	if err := os.WriteFile(rootOnly, []byte("SECRET=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(h.dir, "shared.env")
	if err := os.WriteFile(shared, []byte("SHARED=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// In the installation's directory under /run, which the container
	// does not have.
	hostOnly := filepath.Join(in.dir, "host-only-"+filepath.Base(h.dir)+".env")
	if err := os.WriteFile(hostOnly, []byte("HOST_ONLY=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(hostOnly) })
	show := []string{"sh", "-c", "echo $IMAGE_VAR $SHIFTER_RUNTIME $FLAG $FILE_ONLY $SHARED $HOST_ONLY $SECRET"}

	for _, tc := range []struct {
		name string
		args []string
		out  string
		code int
		msg  string
	}{
		{"file only in the image", []string{"--env-file=/etc/image.env", "-e", "FLAG=from-flag"}, "from-file 1 from-flag 'quoted'\n", 0, ""},
		{"relative to the working directory", []string{"--workdir=/etc", "--env-file=image.env"}, "from-file 1 from-file 'quoted'\n", 0, ""},
		{"two files, in order", []string{"--env-file=/etc/image.env", "--env-file=" + shared}, "from-file 1 from-file 'quoted' 1\n", 0, ""},
		{"file only on the host", []string{"--env-file=" + hostOnly}, "", launcher.ExitUsage, "--env-file " + hostOnly + ": not found in the container"},
		{"file the user cannot read", []string{"--env-file=" + rootOnly}, "", launcher.ExitNoPerm, "--env-file " + rootOnly + ": not readable by uid 65534"},
		{"the host's /etc/shadow is not the container's", []string{"--env-file=/etc/shadow"}, "", launcher.ExitUsage, "not found in the container"},
		{"magic link", []string{"--env-file=/proc/self/fd/0"}, "", launcher.ExitUsage, "--env-file /proc/self/fd/0"},
		{"not a regular file", []string{"--env-file=/dev/null"}, "", launcher.ExitUsage, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in.t = t
			r := in.run(in.shifter, nil, append(append([]string{"--image=id:" + id}, tc.args...), show...)...)
			if r.code != tc.code || r.stdout != tc.out || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("exit %d stdout %q stderr %q; want %d %q and %q", r.code, r.stdout, r.stderr, tc.code, tc.out, tc.msg)
			}
			if strings.Contains(r.stdout+r.stderr, "SECRET") {
				t.Errorf("the root-only file's content reached the user")
			}
		})
	}

	// Unprivileged mode (the plain binary, a user namespace): the same.
	t.Run("unprivileged", func(t *testing.T) {
		requireMode(t, "fuse")
		if st, err := os.Stat("/dev/fuse"); err != nil || st.Mode().Perm()&0o006 != 0o006 {
			t.Skip("/dev/fuse is not usable by nobody")
		}
		in.t = t
		in.config("fuse", "")
		r := in.run(in.plain, nil, append([]string{"--image=id:" + id, "--env-file=/etc/image.env"}, show...)...)
		if r.code != 0 || r.stdout != "from-file 1 from-file 'quoted'\n" {
			t.Errorf("image file: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		r = in.run(in.plain, nil, append([]string{"--image=id:" + id, "--env-file=" + rootOnly}, show...)...)
		if r.code != launcher.ExitNoPerm || strings.Contains(r.stdout, "1") {
			t.Errorf("root-only file: exit %d stdout %q stderr %q; want %d", r.code, r.stdout, r.stderr, launcher.ExitNoPerm)
		}
	})
}
