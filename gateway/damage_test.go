// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

// damageDB damages the badger database of a stopped gateway: "manifest"
// truncates MANIFEST to half, "sst" every table to half, "flip" inverts
// 200 bytes inside every table, "empty-manifest" truncates MANIFEST to 0.
func damageDB(t *testing.T, dir, how string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	hit := 0
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		st, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case how == "manifest" && e.Name() == "MANIFEST":
			err = os.Truncate(p, st.Size()/2)
		case how == "empty-manifest" && e.Name() == "MANIFEST":
			err = os.Truncate(p, 0)
		case how == "sst" && strings.HasSuffix(e.Name(), ".sst"):
			err = os.Truncate(p, st.Size()/2)
		case how == "flip" && strings.HasSuffix(e.Name(), ".sst"):
			var b []byte
			if b, err = os.ReadFile(p); err == nil {
				for i := 100; i < 300 && i < len(b); i++ {
					b[i] ^= 0xff
				}
				err = os.WriteFile(p, b, 0o644)
			}
		default:
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		hit++
	}
	if hit == 0 {
		t.Fatalf("damage %s: no file to damage in %s", how, dir)
	}
}

// TestDamagedDatabaseRefusesExpiry reproduces #17 item 5: with badger's
// MANIFEST truncated the gateway started on an empty database without a
// word, and autoexpire then deleted every published image. Now the start
// says the database disagrees with the image store, expire and
// autoexpire are refused (nothing removed), and RebuildRecords restores
// the records from the <id>.json files, visibility included.
func TestDamagedDatabaseRefusesExpiry(t *testing.T) {
	p := newFakePuller()
	pubID := p.add("pub:1", fakeImage{})
	p.add("pub:2", fakeImage{})
	privID := p.add("priv:1", fakeImage{})
	c := testConfig(t)
	tg := startGW(t, c, p)
	dir := c.Systems["sys"].ImageDir
	tg.pullWait(bob, "pub:1", nil)
	tg.pullWait(bob, "pub:2", nil)
	if im := tg.pullWait(alice, "priv:1", &api.PullRequest{AllowedUIDs: "1004"}); im.Status != api.StateReady {
		t.Fatalf("private pull: %s %q", im.Status, im.StatusMessage)
	}
	files, err := imagestore.List(dir)
	if err != nil || len(files) != 3 {
		t.Fatalf("published: %d images, %v", len(files), err)
	}
	tg.close()
	damageDB(t, filepath.Join(c.DataDir, "db"), "manifest")

	tg.open()
	if !strings.Contains(tg.logs.String(), "DISAGREES WITH THE IMAGE STORE") {
		t.Errorf("start on a damaged database said nothing:\n%s", tg.logs.String())
	}
	tg.clock.add(2*c.Expiration.D() + 2*c.JobTimeout.D())
	for _, path := range []string{"/api/autoexpire/sys/", "/api/expire/sys/docker/pub:1/"} {
		code, e := tg.errorOf("POST", path, admin)
		if code != 503 || !strings.Contains(e.Message, "--rebuild-db") {
			t.Errorf("POST %s on a damaged database: %d %q, want 503 naming --rebuild-db", path, code, e.Message)
		}
	}
	if _, err := tg.g.Autoexpire(t.Context(), "sys"); err == nil || !strings.Contains(err.Error(), "disagrees") {
		t.Errorf("Autoexpire on a damaged database: %v, want a refusal", err)
	}
	if after, err := imagestore.List(dir); err != nil || len(after) != 3 {
		t.Fatalf("after expiry attempts on a damaged database: %d images left, %v", len(after), err)
	}

	tg.close()
	res, err := RebuildRecords(tg.opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Images != 3 || res.Tags != 3 {
		t.Errorf("rebuild: %+v, want 3 images and 3 tags", res)
	}
	tg.open()
	if im, code := tg.lookup(anon, "pub:1"); code != 200 || im.ID != pubID {
		t.Errorf("lookup of a public tag after rebuild: %d %s", code, im.ID)
	}
	if im, code := tg.lookup(alice, "priv:1"); code != 200 || im.ID != privID {
		t.Errorf("owner's lookup of a private image after rebuild: %d %s", code, im.ID)
	}
	if im, code := tg.lookup(dave, "priv:1"); code != 200 || im.ID != privID {
		t.Errorf("ACL member's lookup of a private image after rebuild: %d %s", code, im.ID)
	}
	if _, code := tg.lookup(bob, "priv:1"); code != 404 {
		t.Errorf("lookup of a private image by one not on its ACL after rebuild: %d", code)
	}
	var er api.ExpireResult
	if code := tg.do("POST", "/api/autoexpire/sys/", admin, nil, &er); code != 200 || len(er.Status)+len(er.Removed) != 0 {
		t.Errorf("autoexpire after rebuild: %d %+v (the rebuilt records start a new expiration)", code, er)
	}
	if after, err := imagestore.List(dir); err != nil || len(after) != 3 {
		t.Fatalf("after rebuild: %d images, %v", len(after), err)
	}
	// A second rebuild finds nothing to do.
	tg.close()
	if res, err := RebuildRecords(tg.opts); err != nil || res.Images != 0 {
		t.Errorf("second rebuild: %+v %v", res, err)
	}
}

// TestCrashBetweenPublishAndCommitIsNotDamage: an image published by a
// build whose job never committed (the gateway died) is not taken for a
// database that lost its record.
func TestCrashBetweenPublishAndCommitIsNotDamage(t *testing.T) {
	p := newFakePuller()
	p.add("a:1", fakeImage{})
	c := testConfig(t)
	tg := startGW(t, c, p)
	dir := c.Systems["sys"].ImageDir
	// What a build leaves before any commit: root-only metadata, no tags.
	f, err := imagestore.CreateTemp(dir)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("squashfs")
	f.Close()
	m := &imagestore.Metadata{ID: fakeID("orphan"), Format: imagestore.FormatSquashfs, Tags: []string{}, UserACL: []uint32{0}, GroupACL: []uint32{}, Created: time.Now()}
	if err := imagestore.Publish(dir, f.Name(), m); err != nil {
		t.Fatal(err)
	}
	tg.restart(p)
	if strings.Contains(tg.logs.String(), "DISAGREES") {
		t.Error("an uncommitted build was taken for a damaged database")
	}
	tg.pullWait(alice, "a:1", nil)
	var er api.ExpireResult
	if code := tg.do("POST", "/api/autoexpire/sys/", admin, nil, &er); code != 200 {
		t.Errorf("autoexpire: %d", code)
	}
}

// TestCorruptDatabaseIsAnError: damaged badger files make the start
// fail with a clear error; never a panic (a truncated table), never a
// silent loss of the records of a table whose checksums fail.
func TestCorruptDatabaseIsAnError(t *testing.T) {
	for _, how := range []string{"sst", "flip", "empty-manifest"} {
		t.Run(how, func(t *testing.T) {
			p := newFakePuller()
			p.add("a:1", fakeImage{})
			c := testConfig(t)
			tg := startGW(t, c, p)
			tg.pullWait(alice, "a:1", nil)
			tg.close()
			damageDB(t, filepath.Join(c.DataDir, "db"), how)
			g, err := New(tg.opts)
			if err == nil {
				g.Close()
				t.Fatal("started on a corrupt database")
			}
			if !strings.Contains(err.Error(), "open database") {
				t.Errorf("error does not say what failed: %v", err)
			}
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "--rebuild-db") {
				t.Errorf("error does not say the database is damaged and what to do: %v", err)
			}
		})
	}
}
