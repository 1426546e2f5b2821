// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
)

// makeSquashfs builds a squashfs image with the real mksquashfs from
// files (name -> content) and returns its path (in dir, named name).
func makeSquashfs(t *testing.T, dir, name string, files map[string]string) string {
	t.Helper()
	testutil.RequireTool(t, "mksquashfs")
	src := t.TempDir()
	for n, c := range files {
		p := filepath.Join(src, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, name)
	if b, err := exec.Command("mksquashfs", src, out, "-noappend", "-quiet", "-no-progress", "-all-root", "-no-xattrs").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, b)
	}
	return out
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// chown sets a file's owner and mode.
func chown(t *testing.T, p string, uid, gid int, mode os.FileMode) {
	t.Helper()
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
	if mode != 0 {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// importFixtures lays out the files of the attack cases: a world-
// traversable directory holding alice's (uid 1001) own image, her
// symbolic links, a FIFO, bob's (1002) private image and his private
// directory, a root-only secret and files that are no squashfs.
type importFixtures struct {
	dir, good, goodID, secret string
}

func newImportFixtures(t *testing.T) importFixtures {
	t.Helper()
	testutil.RequireRoot(t)
	d := worldDir(t)
	f := importFixtures{dir: d}
	f.good = makeSquashfs(t, d, "alice.squashfs", map[string]string{"bin/app": "#!/bin/sh\necho hi\n", "etc/os-release": "ID=test\n"})
	chown(t, f.good, 1001, 1001, 0o600)
	f.goodID = sha256File(t, f.good)
	// A root-only file holding a valid squashfs: only the requester's
	// rights keep it out.
	f.secret = makeSquashfs(t, d, "root-only.squashfs", map[string]string{"secret": "root's"})
	chown(t, f.secret, 0, 0, 0o600)
	bobs := makeSquashfs(t, d, "bob.squashfs", map[string]string{"bob": "private"})
	chown(t, bobs, 1002, 1002, 0o600)
	bobDir := filepath.Join(d, "bobdir")
	os.Mkdir(bobDir, 0o700)
	open := makeSquashfs(t, bobDir, "open.squashfs", map[string]string{"x": "y"})
	chown(t, open, 1002, 1002, 0o644)
	chown(t, bobDir, 1002, 1002, 0o700)
	for name, target := range map[string]string{"to-secret": f.secret, "to-bob": bobs, "to-good": f.good} {
		if err := os.Symlink(target, filepath.Join(d, name)); err != nil {
			t.Fatal(err)
		}
		os.Lchown(filepath.Join(d, name), 1001, 1001)
	}
	if err := syscall.Mkfifo(filepath.Join(d, "fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	chown(t, filepath.Join(d, "fifo"), 1001, 1001, 0)
	os.WriteFile(filepath.Join(d, "garbage"), bytes.Repeat([]byte("not a squashfs "), 1000), 0o644)
	chown(t, filepath.Join(d, "garbage"), 1001, 1001, 0)
	good, _ := os.ReadFile(f.good)
	// Cut inside the image (mksquashfs pads the file to 4 KiB past
	// bytes_used, superblock offset 40).
	used := binary.LittleEndian.Uint64(good[40:48])
	os.WriteFile(filepath.Join(d, "truncated"), good[:used*2/3], 0o644)
	chown(t, filepath.Join(d, "truncated"), 1001, 1001, 0)
	// Whole, with a valid superblock, but its tables (at the end, up to
	// bytes_used) overwritten: only reading the copy through finds it.
	corrupt := bytes.Clone(good)
	for i := used - 48; i < used; i++ {
		corrupt[i] = 0xff
	}
	os.WriteFile(filepath.Join(d, "corrupt"), corrupt, 0o644)
	chown(t, filepath.Join(d, "corrupt"), 1001, 1001, 0)
	os.Mkdir(filepath.Join(d, "adir"), 0o755)
	return f
}

// TestOpenAsUser opens files with a user's rights: every attack on
// reading what the user may not read fails, with the gateway running
// as root, and the gateway's own threads keep root's rights.
func TestOpenAsUser(t *testing.T) {
	f := newImportFixtures(t)
	cases := []struct {
		name, path string
		err        error // nil: opens
	}{
		{"own file", f.good, nil},
		{"own symlink to own file", filepath.Join(f.dir, "to-good"), nil},
		{"root-only file", f.secret, os.ErrPermission},
		{"/etc/shadow", "/etc/shadow", os.ErrPermission},
		{"symlink to a root-only file", filepath.Join(f.dir, "to-secret"), os.ErrPermission},
		{"another user's private file", filepath.Join(f.dir, "bob.squashfs"), os.ErrPermission},
		{"symlink to another user's private file", filepath.Join(f.dir, "to-bob"), os.ErrPermission},
		{"readable file in another user's private directory", filepath.Join(f.dir, "bobdir", "open.squashfs"), os.ErrPermission},
		{"magic link to root's file system", "/proc/self/root" + f.secret, syscall.ELOOP},
		{"magic link to the gateway's descriptors", "/proc/self/fd/0", syscall.ELOOP},
		{"FIFO", filepath.Join(f.dir, "fifo"), errNotRegular},
		{"character device", "/dev/zero", errNotRegular},
		{"directory", filepath.Join(f.dir, "adir"), errNotRegular},
		{"missing", filepath.Join(f.dir, "nothing"), os.ErrNotExist},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan struct{})
			var file *os.File
			var err error
			go func() { file, err = openAsUser(c.path, 1001, 1001, []uint32{1001}); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("openAsUser hangs")
			}
			if file != nil {
				file.Close()
			}
			if c.err == nil && err != nil || c.err != nil && !errors.Is(err, c.err) {
				t.Errorf("openAsUser(%s) = %v, want %v", c.path, err, c.err)
			}
		})
	}
	// The threads that took the user's identity served no one else.
	for range 20 {
		b, err := os.ReadFile(f.secret)
		if err != nil || len(b) == 0 {
			t.Fatalf("root lost its rights after openAsUser: %v", err)
		}
	}
	// A group the user is in grants what it grants.
	grp := makeSquashfs(t, f.dir, "group.squashfs", map[string]string{"g": "g"})
	chown(t, grp, 0, 5000, 0o640)
	if file, err := openAsUser(grp, 1001, 1001, []uint32{1001, 5000}); err != nil {
		t.Errorf("group-readable file, user in the group: %v", err)
	} else {
		file.Close()
	}
	if _, err := openAsUser(grp, 1001, 1001, []uint32{1001}); !errors.Is(err, os.ErrPermission) {
		t.Errorf("group-readable file, user not in the group: %v", err)
	}
}

// TestOpenOwned is the check of a gateway that does not run as root: a
// file the requester does not own is refused, whatever its mode.
func TestOpenOwned(t *testing.T) {
	f := newImportFixtures(t)
	cases := []struct {
		name, path string
		err        error
	}{
		{"own file", f.good, nil},
		{"own symlink to own file", filepath.Join(f.dir, "to-good"), nil},
		{"root's file", f.secret, os.ErrPermission},
		{"symlink to root's file", filepath.Join(f.dir, "to-secret"), os.ErrPermission},
		{"another user's world-readable file", filepath.Join(f.dir, "bobdir", "open.squashfs"), os.ErrPermission},
		{"FIFO", filepath.Join(f.dir, "fifo"), errNotRegular},
		{"magic link", "/proc/self/fd/0", syscall.ELOOP},
	}
	for _, c := range cases {
		file, err := openOwned(c.path, 1001)
		if file != nil {
			file.Close()
		}
		if c.err == nil && err != nil || c.err != nil && !errors.Is(err, c.err) {
			t.Errorf("%s: openOwned(%s) = %v, want %v", c.name, c.path, err, c.err)
		}
	}
}

// importGW starts a test gateway that lets alice, bob and admin import.
func importGW(t *testing.T, users *ImportUsers) *testGW {
	c := testConfig(t)
	c.ImportUsers = users
	return startGW(t, c, newFakePuller())
}

func (tg *testGW) doImport(user, tag string, req any) (api.Image, int) {
	tg.t.Helper()
	var im api.Image
	code := tg.do("POST", "/api/doimport/sys/custom/"+tag+"/", user, req, &im)
	return im, code
}

// waitImport polls the caller's import of a custom tag until it ends.
func (tg *testGW) waitImport(user, tag string) api.Image {
	tg.t.Helper()
	return tg.waitAt(user, "/api/doimport/sys/custom/"+tag+"/", "import of "+tag)
}

// storeFiles lists the image directory.
func storeFiles(t *testing.T, tg *testGW) []string {
	t.Helper()
	ents, err := os.ReadDir(tg.cfg.Systems["sys"].ImageDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestImportAttacks imports through the API: a good import is
// published byte for byte under the sha256 of the file and found as
// custom:TAG; each attack fails with a clear reason and leaves nothing
// in the image store.
func TestImportAttacks(t *testing.T) {
	f := newImportFixtures(t)
	tg := importGW(t, &ImportUsers{Users: []string{"alice", "bob", "carol", "admin"}})
	body := func(p string) map[string]string { return map[string]string{"filepath": p, "format": "squashfs"} }

	failures := []struct {
		name, path, msg string
	}{
		{"/etc/shadow", "/etc/shadow", "permission denied"},
		{"root-only squashfs", f.secret, "permission denied"},
		{"symlink to a root-only squashfs", filepath.Join(f.dir, "to-secret"), "permission denied"},
		{"another user's private squashfs", filepath.Join(f.dir, "bob.squashfs"), "permission denied"},
		{"squashfs in another user's private directory", filepath.Join(f.dir, "bobdir", "open.squashfs"), "permission denied"},
		{"magic link", "/proc/self/root" + f.secret, "too many levels of symbolic links"},
		{"FIFO", filepath.Join(f.dir, "fifo"), "not a regular file (a FIFO)"},
		{"device", "/dev/zero", "not a regular file (a character device)"},
		{"directory", filepath.Join(f.dir, "adir"), "not a regular file (a directory)"},
		{"not a squashfs", filepath.Join(f.dir, "garbage"), "not a usable squashfs image"},
		{"truncated squashfs", filepath.Join(f.dir, "truncated"), "not a usable squashfs image"},
		{"corrupt squashfs", filepath.Join(f.dir, "corrupt"), "not a usable squashfs image"},
		{"missing", filepath.Join(f.dir, "nothing"), "no such file"},
	}
	for i, c := range failures {
		tag := fmt.Sprintf("attack%d:1", i)
		if _, code := tg.doImport(alice, tag, body(c.path)); code != 200 {
			t.Fatalf("%s: import request: %d", c.name, code)
		}
		im := tg.waitImport(alice, tag)
		if im.Status != api.StateFailure || !strings.Contains(im.StatusMessage, c.msg) {
			t.Errorf("%s: %s %q; want FAILURE with %q", c.name, im.Status, im.StatusMessage, c.msg)
		}
		// Everyone sees a public import in the queue: not its path.
		if strings.Contains(im.StatusMessage, f.dir) || strings.Contains(im.StatusMessage, c.path) {
			t.Errorf("%s: the message names the path: %q", c.name, im.StatusMessage)
		}
		if _, code := tg.lookupType(alice, "custom", tag); code != 404 {
			t.Errorf("%s: lookup after a failed import: %d", c.name, code)
		}
	}
	if files := storeFiles(t, tg); len(files) != 0 {
		t.Fatalf("failed imports left files in the image store: %v", files)
	}

	// Refused requests.
	refused := []struct {
		name, user, path string
		req              any
		code             int
	}{
		{"anonymous", anon, "/api/doimport/sys/custom/x:1/", body(f.good), 401},
		{"not in import_users", "dave:1004:1004", "/api/doimport/sys/custom/x:1/", body(f.good), 403},
		{"format ext4", alice, "/api/doimport/sys/custom/x:1/", map[string]string{"filepath": f.good, "format": "ext4"}, 400},
		{"no format", alice, "/api/doimport/sys/custom/x:1/", map[string]string{"filepath": f.good}, 400},
		{"relative path", alice, "/api/doimport/sys/custom/x:1/", body("alice.squashfs"), 400},
		{"docker type", alice, "/api/doimport/sys/docker/x:1/", body(f.good), 400},
		{"tag with a slash", alice, "/api/doimport/sys/custom/a%2Fb:1/", body(f.good), 400},
		{"unknown system", alice, "/api/doimport/nosys/custom/x:1/", body(f.good), 404},
		{"pull of a custom tag", alice, "/api/pull/sys/custom/x:1/", nil, 400},
	}
	for _, c := range refused {
		if code := tg.do("POST", c.path, c.user, c.req, nil); code != c.code {
			t.Errorf("%s: %d, want %d", c.name, code, c.code)
		}
	}
	if files := storeFiles(t, tg); len(files) != 0 {
		t.Fatalf("refused imports left files in the image store: %v", files)
	}

	// A good import, through alice's own symbolic link.
	if im, code := tg.doImport(alice, "load_test:v1", body(filepath.Join(f.dir, "to-good"))); code != 200 || im.Status != api.StatePending || im.Itype != "custom" {
		t.Fatalf("import: %d %+v", code, im)
	}
	im := tg.waitImport(alice, "load_test:v1")
	if im.Status != api.StateReady || im.ID != f.goodID {
		t.Fatalf("import: %s %q id %s, want READY %s", im.Status, im.StatusMessage, im.ID, f.goodID)
	}
	for _, u := range []string{alice, bob, anon} {
		got, code := tg.lookupType(u, "custom", "load_test:v1")
		if code != 200 || got.ID != f.goodID || got.Itype != "custom" || got.Tag[0] != "load_test:v1" {
			t.Errorf("lookup custom:load_test:v1 as %q: %d %+v", u, code, got)
		}
	}
	if _, code := tg.lookupType(alice, "docker", "load_test:v1"); code != 404 {
		t.Errorf("a custom tag is found as a docker tag: %d", code)
	}
	sq, mp := imagestore.Paths(tg.cfg.Systems["sys"].ImageDir, f.goodID)
	want, _ := os.ReadFile(f.good)
	if got, err := os.ReadFile(sq); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("published image differs from the user's file (%v)", err)
	}
	m, err := imagestore.Load(filepath.Dir(mp), f.goodID)
	if err != nil || len(m.Tags) != 0 || !m.Public() || m.SHA256 != f.goodID {
		t.Fatalf("metadata %+v, %v: want public, sha256 = id, and no tags (custom tags are the gateway's)", m, err)
	}
	if st, _ := os.Stat(f.good); st.Mode().Perm() != 0o600 {
		t.Errorf("the user's file was modified: mode %v", st.Mode())
	}
	var l []api.Image
	for _, x := range tg.list(bob) {
		if x.ID == f.goodID {
			l = append(l, x)
		}
	}
	if len(l) != 1 || l[0].Itype != "custom" || l[0].Tag[0] != "load_test:v1" {
		t.Errorf("list: %+v", l)
	}

	// Another import user cannot take the tag over; its importer and an
	// administrator can.
	other := makeSquashfs(t, f.dir, "bob2.squashfs", map[string]string{"trojan": "x"})
	chown(t, other, 1002, 1002, 0o600)
	if _, code := tg.doImport(bob, "load_test:v1", body(other)); code != 403 {
		t.Errorf("bob replaces alice's custom tag: %d, want 403", code)
	}
	if got, _ := tg.lookupType(alice, "custom", "load_test:v1"); got.ID != f.goodID {
		t.Errorf("alice's tag moved to %s", got.ID)
	}
	// An administrator expires it as any image; the tag is free again.
	if code := tg.do("GET", "/api/expire/sys/custom/load_test:v1/", admin, nil, nil); code != 200 {
		t.Fatalf("expire custom:load_test:v1: %d", code)
	}
	if _, code := tg.lookupType(alice, "custom", "load_test:v1"); code != 404 {
		t.Errorf("lookup after expire: %d", code)
	}
	if _, code := tg.doImport(bob, "load_test:v1", body(other)); code != 200 {
		t.Errorf("bob imports the expired tag: %d", code)
	}
	if im := tg.waitImport(bob, "load_test:v1"); im.Status != api.StateReady || im.ID != sha256File(t, other) {
		t.Errorf("bob's import of the freed tag: %+v", im)
	}
	if _, code := tg.doImport(alice, "load_test:v1", body(f.good)); code != 403 {
		t.Errorf("alice replaces bob's tag: %d, want 403", code)
	}
	if _, code := tg.doImport(admin, "load_test:v1", body(f.good)); code != 200 {
		t.Errorf("an administrator replaces bob's tag: %d, want 200", code)
	}
	if im := tg.waitImport(admin, "load_test:v1"); im.Status != api.StateFailure || !strings.Contains(im.StatusMessage, "permission denied") {
		t.Errorf("admin (uid 1500) imports alice's 0600 file: %+v; want a permission failure", im)
	}
	// The administrator's failed attempt left the tag to bob.
	if _, code := tg.doImport(bob, "load_test:v1", body(other)); code != 200 {
		t.Errorf("bob re-imports his tag after an administrator's failed import: %d", code)
	}
	tg.waitImport(bob, "load_test:v1")
	// Bob's own tag, private to him and carol (allowed_uids).
	if _, code := tg.doImport(bob, "bobs:1", map[string]string{"filepath": other, "format": "squashfs", "allowed_uids": "1003"}); code != 200 {
		t.Fatalf("bob's private import: %d", code)
	}
	if im := tg.waitImport(bob, "bobs:1"); im.Status != api.StateReady {
		t.Fatalf("bob's private import: %+v", im)
	}
	for _, c := range []struct {
		user string
		code int
	}{{bob, 200}, {carol, 200}, {alice, 404}, {anon, 404}} {
		if _, code := tg.lookupType(c.user, "custom", "bobs:1"); code != c.code {
			t.Errorf("lookup of bob's private import as %q: %d, want %d", c.user, code, c.code)
		}
	}
	// Nobody else's import, public or private, may shadow bob's private
	// tag in his and carol's lookups (the newest visible binding wins).
	if _, code := tg.doImport(alice, "bobs:1", body(f.good)); code != 403 {
		t.Errorf("alice imports bob's private tag publicly: %d, want 403", code)
	}
	if _, code := tg.doImport(alice, "bobs:1", map[string]string{"filepath": f.good, "format": "squashfs", "allowed_uids": "1002"}); code != 403 {
		t.Errorf("alice imports bob's private tag privately: %d, want 403", code)
	}
	if got, _ := tg.lookupType(bob, "custom", "bobs:1"); got.ID != sha256File(t, other) {
		t.Errorf("bob's private tag now names %s", got.ID)
	}
}

// TestImportHashesTheCopy changes the user's file right after the
// gateway copied it: the image published is the bytes copied, under
// their own sha256, never a hash of the changed file.
func TestImportHashesTheCopy(t *testing.T) {
	f := newImportFixtures(t)
	tg := importGW(t, &ImportUsers{All: true})
	orig, _ := os.ReadFile(f.good)
	changed := makeSquashfs(t, t.TempDir(), "changed.squashfs", map[string]string{"other": "content"})
	nb, _ := os.ReadFile(changed)
	copied, release := make(chan struct{}), make(chan struct{})
	tg.g.hookImportCopied = func(*jobRecord) {
		if err := os.WriteFile(f.good, nb, 0o600); err != nil {
			t.Error(err)
		}
		close(copied)
		<-release
	}
	tg.doImport(alice, "changing:1", map[string]string{"filepath": f.good, "format": "squashfs"})
	<-copied
	// Meanwhile the queue shows the import as Shifter's does.
	var q api.List
	if code := tg.do("GET", "/api/queue/sys/", anon, nil, &q); code != 200 || len(q.List) != 1 ||
		q.List[0].Status != api.StateHashing || q.List[0].Itype != "custom" || q.List[0].Image != "changing:1" {
		t.Errorf("queue during the import: %d %+v", code, q.List)
	}
	close(release)
	im := tg.waitImport(alice, "changing:1")
	if im.Status != api.StateReady || im.ID != f.goodID {
		t.Fatalf("import: %s %q id %s, want READY %s", im.Status, im.StatusMessage, im.ID, f.goodID)
	}
	sq, _ := imagestore.Paths(tg.cfg.Systems["sys"].ImageDir, im.ID)
	got, _ := os.ReadFile(sq)
	if !bytes.Equal(got, orig) || sha256File(t, sq) != im.ID {
		t.Fatal("the published image is not the copy made, or not under its own sha256")
	}
}

// TestImportResumes: an import interrupted by a gateway stop stays
// queued in the database and runs again at the next start, as pulls do.
func TestImportResumes(t *testing.T) {
	f := newImportFixtures(t)
	tg := importGW(t, &ImportUsers{All: true})
	copied := make(chan struct{})
	g := tg.g
	g.hookImportCopied = func(*jobRecord) {
		close(copied)
		<-g.ctx.Done()
	}
	tg.doImport(alice, "resumed:1", map[string]string{"filepath": f.good, "format": "squashfs"})
	<-copied
	tg.restart(tg.puller)
	im := tg.waitImport(alice, "resumed:1")
	if im.Status != api.StateReady || im.ID != f.goodID {
		t.Fatalf("import after a restart: %+v", im)
	}
	var j *jobRecord
	tg.g.db.view(func(t tx) (err error) {
		j, err = t.getJob(key(pfxJob, "sys", itypeCustom, "resumed:1", ""))
		return err
	})
	if j == nil || j.Attempts != 2 || j.FilePath != f.good {
		t.Errorf("job after a restart: %+v", j)
	}
	if files := storeFiles(t, tg); len(files) != 3 {
		t.Errorf("image store after the resumed import: %v (want the image, its chunk list and metadata)", files)
	}
}

// TestImportDisabled: without import_users nobody imports.
func TestImportDisabled(t *testing.T) {
	for _, u := range []*ImportUsers{nil, {}} {
		tg := importGW(t, u)
		if code := tg.do("POST", "/api/doimport/sys/custom/x:1/", alice, map[string]string{"filepath": "/x", "format": "squashfs"}, nil); code != 403 {
			t.Errorf("import_users %+v: %d, want 403", u, code)
		}
	}
}

// TestShifterImportClient imports an image built by the real mksquashfs
// with requests as Shifter's clients build them (its documented curl
// command, with the C shifterimg's escaping and headers), authenticated
// by a real munged over TCP, waits for READY and looks it up as
// custom:TAG, as `shifter --image=custom:TAG` does.
func TestShifterImportClient(t *testing.T) {
	sock := startMunged(t)
	d := worldDir(t)
	img := makeSquashfs(t, d, "my image.squashfs", map[string]string{"usr/bin/tool": "#!/bin/sh\n", "data/big": strings.Repeat("x", 1<<20)})
	chown(t, img, 65534, 65534, 0o600) // nobody's own, readable by nobody else
	want, _ := os.ReadFile(img)
	c := testConfig(t)
	c.Systems["sys"].MungeSocket = sock
	c.ImportUsers = &ImportUsers{Users: []string{"nobody"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{Config: c, Puller: newFakePuller()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	srv := newTCPServer(t, g.Handler())
	cred := func(uid uint32) string { return mungeCred(t, sock, uid, uid, "") }

	tag := "load_test:v1"
	path := "/api/doimport/sys/" + curlEscape("custom") + "/" + curlEscape(tag) + "/"
	payload := fmt.Sprintf(`{"filepath":%q,"format":"squashfs"}`, img)
	// A user munge knows but import_users does not name.
	if code, _, body := shifterimgRequest(t, srv, "POST", path, cred(4242), payload); code != 403 {
		t.Fatalf("import by uid 4242: %d %s", code, body)
	}
	code, _, body := shifterimgRequest(t, srv, "POST", path, cred(65534), payload)
	if code != 200 {
		t.Fatalf("import: %d %s", code, body)
	}
	var rec map[string]any
	json.Unmarshal(body, &rec)
	if cField(rec, "itype") != "custom" || cField(rec, "status") != api.StatePending {
		t.Fatalf("import answer: %s", body)
	}
	lookup := "/api/lookup/sys/" + curlEscape("custom") + "/" + curlEscape(tag) + "/"
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, body = shifterimgRequest(t, srv, "GET", lookup, cred(4242), "")
		if code == 200 {
			break
		}
		var st map[string]any
		_, _, sb := shifterimgRequest(t, srv, "GET", path, cred(65534), "")
		json.Unmarshal(sb, &st)
		if s := cField(st, "status"); s == api.StateFailure || time.Now().After(deadline) {
			t.Fatalf("import did not become READY: %s", sb)
		}
		time.Sleep(50 * time.Millisecond)
	}
	json.Unmarshal(body, &rec)
	id, _ := cField(rec, "id").(string)
	if id != sha256File(t, img) || cField(rec, "itype") != "custom" || cField(rec, "status") != api.StateReady {
		t.Fatalf("lookup of custom:%s: %s", tag, body)
	}
	sq, _ := imagestore.Paths(c.Systems["sys"].ImageDir, id)
	if got, err := os.ReadFile(sq); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the published image is not byte-identical to the user's file (%v)", err)
	}
	// shifterimg images lists it with its type.
	_, _, body = shifterimgRequest(t, srv, "GET", "/api/list/sys/", cred(4242), "")
	var list map[string][]map[string]any
	json.Unmarshal(body, &list)
	if len(list["list"]) != 1 || cField(list["list"][0], "itype") != "custom" || cField(list["list"][0], "id") != id {
		t.Errorf("list: %s", body)
	}
	// Shifter's documented command (doc/import.md), run by the user:
	// curl -d JSON -H "authentication: $(munge -n)" URL, a form-encoded
	// POST. The same bytes give the same image.
	if curl, err := exec.LookPath("curl"); err == nil {
		cmd := exec.Command(curl, "-sS", "-d", payload, "-H", "authentication: "+cred(65534),
			"http://"+srv+"/api/doimport/sys/custom/curl_test:v1/")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"status": "PENDING"`) {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, _, body := shifterimgRequest(t, srv, "GET", "/api/lookup/sys/custom/curl_test%3Av1/", cred(4242), "")
			if code == 200 {
				json.Unmarshal(body, &rec)
				if cField(rec, "id") != id {
					t.Errorf("curl import: %s", body)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("curl import not READY: %d %s", code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The tag without a version is :latest, as Shifter's server makes it.
	if code, _, _ := shifterimgRequest(t, srv, "GET", "/api/lookup/sys/custom/load_test/", cred(4242), ""); code != 404 {
		t.Errorf("lookup of custom:load_test (load_test:latest): %d, want 404", code)
	}
}

// TestImportSSHTransfer imports into a system whose image directory is
// on another host (Shifter's remote platforms): the file is read on the
// gateway host with the requester's rights and published with scp and
// ssh as pulls are.
func TestImportSSHTransfer(t *testing.T) {
	f := newImportFixtures(t)
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "ssh"), []byte(fakeSSH), 0o755)
	os.WriteFile(filepath.Join(bin, "scp"), []byte(fakeSCP), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	t.Setenv("FAKE_SSH_LOG", filepath.Join(bin, "log"))
	c := testConfig(t)
	remote := filepath.Join(t.TempDir(), "remote images")
	os.MkdirAll(remote, 0o755)
	c.Systems["sys"] = &System{ImageDir: remote, Transfer: TransferSSH, Admins: []string{"admin"},
		SSH: &SSH{Host: "login1", User: "shifter"}}
	c.ImportUsers = &ImportUsers{All: true}
	tg := startGW(t, c, newFakePuller())
	for _, p := range []string{f.secret, f.good} {
		tg.doImport(alice, "remote:1", map[string]string{"filepath": p, "format": "squashfs"})
		tg.waitImport(alice, "remote:1")
	}
	if got, code := tg.lookupType(alice, "custom", "remote:1"); code != 200 || got.ID != f.goodID {
		t.Fatalf("lookup: %d %+v (want the readable file's image, not the root-only one's)", code, got)
	}
	sq, _ := imagestore.Paths(remote, f.goodID)
	want, _ := os.ReadFile(f.good)
	if got, err := os.ReadFile(sq); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("remote image differs from the user's file (%v)", err)
	}
	ents, _ := os.ReadDir(remote)
	if len(ents) != 3 {
		t.Errorf("remote image directory: %d entries, want the image, its chunk list and metadata", len(ents))
	}
	spool, err := os.ReadDir(filepath.Join(c.WorkDir, "spool", "sys"))
	if err != nil || len(spool) != 0 {
		t.Errorf("spool: %d files left, %v", len(spool), err)
	}
}
