// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

// randomData is n pseudo-random bytes.
func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// checkChunks loads id's chunk list from dir and checks it against a
// chunk list recomputed from <id>.squashfs, and its mode.
func checkChunks(t *testing.T, dir, id string, chunkSize int64, mode os.FileMode) {
	t.Helper()
	cl, err := imagestore.LoadChunkList(dir, id)
	if err != nil {
		t.Errorf("chunk list of %s: %v", id[:12], err)
		return
	}
	sq, _ := imagestore.Paths(dir, id)
	want, err := imagestore.ComputeChunkListFile(sq, chunkSize)
	if err != nil {
		t.Fatal(err)
	}
	if cl.ChunkSize != chunkSize || cl.Digest() != want.Digest() {
		t.Errorf("chunk list of %s (chunk size %d, %d chunks) does not match its file (%d chunks)", id[:12], cl.ChunkSize, cl.Count(), want.Count())
	}
	if st, err := os.Stat(imagestore.ChunksPath(dir, id)); err != nil || st.Mode().Perm() != mode {
		t.Errorf("chunk list of %s: mode %v (%v), want %o", id[:12], st.Mode(), err, mode)
	}
}

func gone(t *testing.T, dir, id string) {
	t.Helper()
	for _, ext := range []string{".squashfs", ".json", ".chunks", ".trace"} {
		if _, err := os.Lstat(filepath.Join(dir, id+ext)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s%s still there (%v)", id[:12], ext, err)
		}
	}
}

// TestPublishChunkList: every published image has a chunk list that
// matches its file, with the image's mode (public 0644, private 0600,
// following visibility changes); a re-pull of an image published
// without one writes it; expire, autoexpire and a failed re-publish
// remove it with the image and the nodes' trace.
func TestPublishChunkList(t *testing.T) {
	p := newFakePuller()
	pubID := p.add("pub:1", fakeImage{data: randomData(5*4096+123, 1)})
	privID := p.add("priv:1", fakeImage{data: randomData(3*4096, 2)})
	p.add("pub-alias:1", fakeImage{id: privID, data: randomData(3*4096, 2)})
	c := testConfig(t)
	c.ChunkSize = 4096
	tg := startGW(t, c, p)
	dir := c.Systems["sys"].ImageDir

	if im := tg.pullWait(bob, "pub:1", nil); im.Status != api.StateReady {
		t.Fatalf("pull: %s %q", im.Status, im.StatusMessage)
	}
	if im := tg.pullWait(alice, "priv:1", &api.PullRequest{AllowedUIDs: "1004"}); im.Status != api.StateReady {
		t.Fatalf("private pull: %s %q", im.Status, im.StatusMessage)
	}
	checkChunks(t, dir, pubID, 4096, 0o644)
	checkChunks(t, dir, privID, 4096, 0o600)

	// A public pull of the private digest makes it public: the chunk
	// list's mode follows.
	if im := tg.pullWait(alice, "pub-alias:1", nil); im.Status != api.StateReady {
		t.Fatalf("public pull of the private digest: %s %q", im.Status, im.StatusMessage)
	}
	checkChunks(t, dir, privID, 4096, 0o644)

	// An image published before chunk lists (none beside it) gets one
	// when pulled again; the configured chunk size is used.
	os.Remove(imagestore.ChunksPath(dir, pubID))
	tg.g.cfg.ChunkSize = 8192
	tg.clock.add(10 * time.Minute) // past pull_update_timeout: the pull runs
	if im := tg.pullWait(bob, "pub:1", nil); im.Status != api.StateReady {
		t.Fatalf("re-pull: %s %q", im.Status, im.StatusMessage)
	}
	checkChunks(t, dir, pubID, 8192, 0o644)
	if !strings.Contains(tg.logs.String(), "chunk list written for an image published without one") {
		t.Error("the re-pull's chunk list is not logged")
	}

	// Expire removes the chunk list and a node's trace with the image.
	for _, id := range []string{pubID, privID} {
		if err := os.WriteFile(imagestore.TracePath(dir, id), []byte("shifter-trace 1\nchunk-size 4096\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code := tg.do("POST", "/api/expire/sys/docker/pub:1/", admin, nil, nil); code != 200 {
		t.Fatalf("expire: %d", code)
	}
	gone(t, dir, pubID)
	// Autoexpire too (the private digest, past its expiration).
	tg.clock.add(2 * time.Hour)
	var res api.ExpireResult
	if code := tg.do("POST", "/api/autoexpire/sys/", admin, nil, &res); code != 200 || len(res.Status) != 1 || res.Status[0] != privID {
		t.Fatalf("autoexpire: %d %+v", code, res)
	}
	gone(t, dir, privID)

	// An orphaned chunk list or trace (no READY image) older than
	// job_timeout is removed by autoexpire like other orphans.
	orphan := fakeID("orphan")
	for _, ext := range []string{".chunks", ".trace"} {
		p := filepath.Join(dir, orphan+ext)
		os.WriteFile(p, []byte("x"), 0o644)
		old := time.Now().Add(-3 * time.Hour)
		os.Chtimes(p, old, old)
	}
	if code := tg.do("POST", "/api/autoexpire/sys/", admin, nil, &res); code != 200 || len(res.Removed) != 1 || res.Removed[0] != orphan {
		t.Errorf("autoexpire of an orphaned chunk list: %d %+v", code, res)
	}
	gone(t, dir, orphan)
}

// TestSSHTransferChunkList: over ssh the chunk list is hashed on the
// gateway and copied between the squashfs and the metadata, with the
// image's mode; an image on the remote host without one gets one
// hashed there (GNU split and sha256sum) when pulled again.
func TestSSHTransferChunkList(t *testing.T) {
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "ssh"), []byte(fakeSSH), 0o755)
	os.WriteFile(filepath.Join(bin, "scp"), []byte(fakeSCP), 0o755)
	sshLog := filepath.Join(bin, "log")
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	t.Setenv("FAKE_SSH_LOG", sshLog)
	p := newFakePuller()
	id := p.add("ubuntu:22.04", fakeImage{data: randomData(9*4096+1, 3)})
	privID := p.add("corp/secret:1", fakeImage{creds: "alice:" + secret, data: randomData(4096, 4)})
	c := testConfig(t)
	c.ChunkSize = 4096
	remote := filepath.Join(t.TempDir(), "remote images")
	os.MkdirAll(remote, 0o755)
	c.Systems["sys"] = &System{ImageDir: remote, Transfer: TransferSSH, Admins: []string{"admin"}, SSH: &SSH{Host: "login1"}}
	tg := startGW(t, c, p)

	if im := tg.pullWait(alice, "ubuntu:22.04", nil); im.Status != api.StateReady {
		t.Fatalf("pull over ssh: %s %q", im.Status, im.StatusMessage)
	}
	if im := tg.pullWait(alice, "corp/secret:1", &api.PullRequest{AuthorizedLocations: map[string]string{"default": "alice:" + secret}}); im.Status != api.StateReady {
		t.Fatalf("private pull over ssh: %+v", im)
	}
	checkChunks(t, remote, id, 4096, 0o644)
	checkChunks(t, remote, privID, 4096, 0o600)
	// Order of the renames on the remote: squashfs, chunk list, metadata.
	logb, _ := os.ReadFile(sshLog)
	at := map[string]int{}
	for i, l := range strings.Split(string(logb), "\n") {
		for _, ext := range []string{".squashfs", ".chunks", ".json"} {
			if _, seen := at[ext]; !seen && strings.HasPrefix(l, "ssh ") && strings.Contains(l, "mv -f") && strings.Contains(l, id+ext) {
				at[ext] = i
			}
		}
	}
	if len(at) != 3 || at[".squashfs"] > at[".chunks"] || at[".chunks"] > at[".json"] {
		t.Errorf("remote publish order (log lines): %v", at)
	}
	// Re-pull of a remote image without a chunk list.
	os.Remove(imagestore.ChunksPath(remote, id))
	tg.clock.add(10 * time.Minute)
	if im := tg.pullWait(alice, "ubuntu:22.04", nil); im.Status != api.StateReady {
		t.Fatalf("re-pull over ssh: %s %q", im.Status, im.StatusMessage)
	}
	checkChunks(t, remote, id, 4096, 0o644)
	// Expire removes the remote chunk list and trace.
	os.WriteFile(imagestore.TracePath(remote, id), []byte("x"), 0o644)
	if code := tg.do("POST", "/api/expire/sys/docker/ubuntu:22.04/", admin, nil, nil); code != 200 {
		t.Fatalf("expire: %d", code)
	}
	gone(t, remote, id)
	if names := tempNames(t, remote); len(names) != 0 {
		t.Errorf("remote temporary files: %v", names)
	}
}

func TestParseRemoteSums(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name  string
		lines []string
		ok    bool
	}{
		{"two chunks", []string{"5000", h + "  -", h + "  -"}, true},
		{"empty file", []string{"0"}, true},
		{"missing chunk", []string{"5000", h + "  -"}, false},
		{"extra chunk", []string{"10", h + "  -", h + "  -"}, false},
		{"bad size", []string{"x", h + "  -"}, false},
		{"short hash", []string{"10", h[:62] + "  -"}, false},
		{"no dash", []string{"10", h}, false},
	} {
		cl, err := parseRemoteSums(tc.lines, 4096)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err == nil && cl.Validate() != nil {
			t.Errorf("%s: invalid list accepted", tc.name)
		}
	}
}
