// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func testID(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestNormalizeTag(t *testing.T) {
	cases := map[string]string{
		"ubuntu":                                "ubuntu:latest",
		"ubuntu:22.04":                          "ubuntu:22.04",
		"library/ubuntu":                        "ubuntu:latest",
		"docker.io/ubuntu":                      "ubuntu:latest",
		"docker.io/library/ubuntu:22.04":        "ubuntu:22.04",
		"index.docker.io/library/ubuntu:22.04":  "ubuntu:22.04",
		"registry-1.docker.io/nersc/app:1":      "nersc/app:1",
		"library/a/b":                           "library/a/b:latest",
		"localhost:5000/app":                    "localhost:5000/app:latest",
		"localhost:5000/app:v2":                 "localhost:5000/app:v2",
		"quay.io/org/app@sha256:" + testID("x"): "quay.io/org/app@sha256:" + testID("x"),
		"  ubuntu  ":                            "ubuntu:latest",
	}
	for in, want := range cases {
		if got := NormalizeTag(in); got != want {
			t.Errorf("NormalizeTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidateAndAllowed(t *testing.T) {
	id := testID("a")
	bad := []Metadata{
		{ID: "abc", Format: FormatSquashfs},
		{ID: strings.ToUpper(id), Format: FormatSquashfs},
		{ID: id, Format: "ext4"},
		{ID: id, Format: FormatSquashfs, SHA256: "xyz"},
		{ID: id, Format: FormatSquashfs, Size: -1},
		{ID: id, Format: FormatSquashfs, Env: []string{"NOEQUALS"}},
		{ID: id, Format: FormatSquashfs, Env: []string{"=v"}},
		{ID: id, Format: FormatSquashfs, Env: []string{"A=\x00"}},
	}
	for _, m := range bad {
		if err := m.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid", m, err)
		}
	}
	pub := Metadata{ID: id, Format: FormatSquashfs}
	priv := Metadata{ID: id, Format: FormatSquashfs, UserACL: []uint32{1001}, GroupACL: []uint32{5000}}
	cases := []struct {
		m    Metadata
		uid  uint32
		gids []uint32
		want bool
	}{
		{pub, 1234, nil, true},
		{priv, 1001, nil, true},
		{priv, 1002, []uint32{1002}, false},
		{priv, 1002, []uint32{1002, 5000}, true},
		{priv, 0, nil, true},
	}
	for _, c := range cases {
		if got := c.m.Allowed(c.uid, c.gids); got != c.want {
			t.Errorf("Allowed(%d, %v) on %v/%v = %v", c.uid, c.gids, c.m.UserACL, c.m.GroupACL, got)
		}
	}
}

func publish(t *testing.T, dir, id, content string, tags ...string) *Metadata {
	t.Helper()
	f, err := CreateTemp(dir)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(content)
	f.Close()
	m := &Metadata{ID: id, Tags: tags, Created: time.Now()}
	if err := Publish(dir, f.Name(), m); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.Name()); err == nil {
		t.Error("temporary file still there after Publish")
	}
	return m
}

func TestPublishLoadRemove(t *testing.T) {
	dir := t.TempDir()
	id := testID("img")
	m := publish(t, dir, id, "squash-1", "ubuntu:22.04")
	sum := sha256.Sum256([]byte("squash-1"))
	if m.Size != 8 || m.SHA256 != hex.EncodeToString(sum[:]) || m.Format != FormatSquashfs {
		t.Errorf("published metadata: %+v", m)
	}
	got, err := Load(dir, id)
	if err != nil || got.SHA256 != m.SHA256 || !got.HasTag("ubuntu:22.04") || !got.HasTag("docker.io/library/ubuntu:22.04") {
		t.Fatalf("Load: %+v %v", got, err)
	}
	sq, mp := Paths(dir, id)
	for _, p := range []string{sq, mp} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v %v", p, st.Mode(), err)
		}
	}
	// Publishing the same id again keeps the squashfs (running jobs may
	// read it) and updates the metadata.
	m2 := publish(t, dir, id, "other bytes", "ubuntu:latest")
	if b, _ := os.ReadFile(sq); string(b) != "squash-1" || m2.SHA256 != m.SHA256 {
		t.Errorf("republish replaced the squashfs: %q", b)
	}
	if got, _ := Load(dir, id); !got.HasTag("ubuntu:latest") {
		t.Errorf("republish did not update the metadata: %v", got.Tags)
	}
	if f, err := FindTag(dir, "ubuntu:latest"); err != nil || f.ID != id {
		t.Errorf("FindTag: %v %v", f, err)
	}
	if _, err := FindTag(dir, "debian:12"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindTag of a missing tag: %v", err)
	}
	if err := Remove(dir, id); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load after Remove: %v", err)
	}
	if err := Remove(dir, id); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := Remove(dir, "../../etc/passwd"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Remove of a bad id: %v", err)
	}
	if _, err := Load(dir, "../x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Load of a bad id: %v", err)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	id, other := testID("a"), testID("b")
	_, mp := Paths(dir, id)
	cases := map[string]string{
		"id mismatch": `{"id":"` + other + `","format":"squashfs"}`,
		"not json":    `{"id":`,
		"too big":     `{"id":"` + id + `","format":"squashfs","cmd":["` + strings.Repeat("x", MaxMetadataSize) + `"]}`,
		"bad env":     `{"id":"` + id + `","format":"squashfs","env":["X"]}`,
	}
	for name, content := range cases {
		os.WriteFile(mp, []byte(content), 0o644)
		if _, err := Load(dir, id); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Load = %v, want ErrInvalid", name, err)
		}
	}
	// List skips bad files but reports them, and still lists good ones.
	publish(t, dir, other, "x", "good:1")
	os.WriteFile(filepath.Join(dir, "README.json"), []byte("{}"), 0o644)
	os.Symlink(mp, filepath.Join(dir, testID("link")+".json"))
	all, err := List(dir)
	if len(all) != 1 || all[0].ID != other || err == nil {
		t.Errorf("List: %d images, err %v", len(all), err)
	}
}

func TestCleanTemp(t *testing.T) {
	dir := t.TempDir()
	f, _ := CreateTemp(dir)
	f.Close()
	old := time.Now().Add(-time.Hour)
	os.Chtimes(f.Name(), old, old)
	g, _ := CreateTemp(dir)
	g.Close()
	id := testID("keep")
	publish(t, dir, id, "k")
	removed, err := CleanTemp(dir, time.Now().Add(-time.Minute))
	if err != nil || len(removed) != 1 || removed[0] != filepath.Base(f.Name()) {
		t.Errorf("CleanTemp: %v %v", removed, err)
	}
	if _, err := os.Stat(g.Name()); err != nil {
		t.Error("CleanTemp removed a fresh temporary file")
	}
	if _, err := Load(dir, id); err != nil {
		t.Errorf("CleanTemp touched a published image: %v", err)
	}
}

// TestConcurrentPublishAndRead: readers never see a metadata file
// without its complete squashfs.
func TestConcurrentPublishAndRead(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			all, _ := List(dir)
			for _, m := range all {
				sq, _ := Paths(dir, m.ID)
				st, err := os.Stat(sq)
				if err != nil || st.Size() != m.Size {
					select {
					case errs <- errors.New("metadata visible before its squashfs: " + m.ID):
					default:
					}
				}
			}
		}
	}()
	for i := range 50 {
		publish(t, dir, testID(string(rune('a'+i))), strings.Repeat("x", 1000*i))
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// TestFailedPublishLeavesNothing: when the metadata cannot be written,
// the squashfs just renamed into place is removed again (a 20 MB file
// without metadata is no image, and stayed until autoexpire).
func TestFailedPublishLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	id := testID("half")
	sq, mp := Paths(dir, id)
	// A directory where <id>.json goes: the metadata rename fails.
	if err := os.MkdirAll(filepath.Join(mp, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := CreateTemp(dir)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("squash")
	f.Close()
	if err := Publish(dir, f.Name(), &Metadata{ID: id, Tags: []string{}, Created: time.Now()}); err == nil {
		t.Fatal("Publish succeeded without its metadata")
	}
	if _, err := os.Lstat(sq); err == nil {
		t.Error("a failed Publish left the squashfs in place")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempPrefix) && strings.HasSuffix(e.Name(), ".json") {
			t.Errorf("temporary metadata left: %s", e.Name())
		}
	}
}
