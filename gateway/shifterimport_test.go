// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/imagestore"
)

// shifterExport is Shifter's images collection as mongoexport writes it
// (relaxed extended JSON, one document per line), in the shape of
// imagemngr.py's records: a public and a private READY image, one whose
// squashfs is missing, a pull in progress, an EXPIRED one, another
// system's and a custom import.
func shifterExport(pub, priv, gone, other string) string {
	return strings.Join([]string{
		`{"_id":{"$oid":"5f1e9a7c2b3c4d5e6f708192"},"system":"sys","itype":"docker","pulltag":"ubuntu:16.04","tag":["ubuntu:16.04","ubuntu:xenial"],"status":"READY","status_message":"","last_pull":1600000000.25,"last_heartbeat":1600000000.25,"expiration":{"$date":"2030-01-02T03:04:05Z"},"id":"` + pub + `","ENV":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"ENTRY":null,"WORKDIR":null,"userACL":[],"groupACL":[],"private":false,"format":"squashfs","arch":"amd64","os":"linux","location":"","remotetype":"dockerv2","ostcount":"0","replication":"1"}`,
		`{"_id":{"$oid":"5f1e9a7c2b3c4d5e6f708193"},"system":"sys","itype":"docker","pulltag":"nersc/secret:1.0","tag":["nersc/secret:1.0"],"status":"READY","last_pull":{"$numberDouble":"1600000100.5"},"expiration":1900000000,"id":"` + priv + `","ENV":["A=from-mongo"],"ENTRY":["/bin/sh","-c"],"WORKDIR":"/mongo","userACL":[1001,{"$numberInt":"1000"}],"groupACL":[5000],"private":true,"format":"squashfs"}`,
		`{"_id":{"$oid":"5f1e9a7c2b3c4d5e6f708194"},"system":"sys","itype":"docker","pulltag":"gone:1","tag":"gone:1","status":"READY","last_pull":1600000000,"id":"` + gone + `","userACL":null,"groupACL":null,"private":null}`,
		`{"_id":{"$oid":"5f1e9a7c2b3c4d5e6f708195"},"system":"sys","itype":"docker","pulltag":"busy:1","tag":[],"status":"PULLING","status_message":"Extracting Layers","last_pull":null,"id":null}`,
		``,
		`{"_id":{"$oid":"5f1e9a7c2b3c4d5e6f708196"},"system":"sys","itype":"docker","pulltag":"old:1","tag":["old:1"],"status":"EXPIRED","last_pull":1500000000,"id":"` + other + `"}`,
		`{"_id":{"$oid":"5f1e9a7c2b3c4d5e6f708197"},"system":"othersystem","itype":"docker","pulltag":"ubuntu:16.04","tag":["ubuntu:16.04"],"status":"READY","last_pull":{"$date":{"$numberLong":"1600000000000"}},"id":"` + other + `"}`,
		`{"_id":{"$oid":"5f1e9a7c2b3c4d5e6f708198"},"system":"sys","itype":"custom","pulltag":"mine:1","tag":["mine:1"],"status":"READY","last_pull":1600000000,"id":"` + other + `","filepath":"/x.squashfs","meta":"/x.meta"}`,
	}, "\n") + "\n"
}

func TestImportShifter(t *testing.T) {
	c := testConfig(t)
	dir := c.Systems["sys"].ImageDir
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Validate())
	must(os.MkdirAll(dir, 0o755))
	pub, priv, gone, other := fakeID("pub"), fakeID("priv"), fakeID("gone"), fakeID("other")
	for _, id := range []string{pub, priv, other} {
		must(os.WriteFile(filepath.Join(dir, id+".squashfs"), []byte("squashfs of "+id), 0o600))
	}
	// Shifter's .meta of the private image (writemeta's format): it
	// governs the metadata and the ACL.
	must(os.WriteFile(filepath.Join(dir, priv+".meta"), []byte("FORMAT: squashfs\nENTRY: ['/entry.sh']\nCMD: ['run']\nWORKDIR: /app\nUSERACL: 1001\nGROUPACL: 5000\nENV: PATH=/bin\nENV: B=from-meta\n"), 0o600))
	must(os.WriteFile(filepath.Join(dir, pub+".meta"), []byte("FORMAT: squashfs\nENV: PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"), 0o600))
	export := shifterExport(pub, priv, gone, other)

	res, err := ImportShifter(Options{Config: c, Puller: newFakePuller()}, "sys", strings.NewReader(export))
	must(err)
	if res.Images != 3 || res.Known != 0 || res.Tags != 4 || res.Metadata != 3 || res.Ignored != 4 {
		t.Fatalf("first import: %+v", res)
	}
	files := map[string][]byte{}
	for _, id := range []string{pub, priv} {
		m, err := imagestore.Load(dir, id)
		must(err)
		b, _ := os.ReadFile(filepath.Join(dir, id+".json"))
		files[id] = b
		switch id {
		case pub:
			if !m.Public() || !slices.Equal(m.Tags, []string{"ubuntu:16.04", "ubuntu:xenial"}) || m.Size != int64(len("squashfs of "+id)) {
				t.Errorf("public image: %+v", m)
			}
		case priv:
			if m.Public() || !slices.Equal(m.UserACL, []uint32{1001}) || !slices.Equal(m.GroupACL, []uint32{5000}) ||
				m.WorkDir != "/app" || !slices.Equal(m.Env, []string{"PATH=/bin", "B=from-meta"}) ||
				!slices.Equal(m.Entrypoint, []string{"/entry.sh"}) || !slices.Equal(m.Tags, []string{"nersc/secret:1.0"}) {
				t.Errorf("private image: %+v", m)
			}
			if st, _ := os.Stat(filepath.Join(dir, id+".squashfs")); st.Mode().Perm() != 0o600 {
				t.Errorf("private squashfs mode %v", st.Mode())
			}
		}
	}
	// The custom import (Shifter's doimport) is carried over, its tag
	// the gateway's only (not in <id>.json); the EXPIRED and the other
	// system's documents of the same id add nothing.
	if m, err := imagestore.Load(dir, other); err != nil || !m.Public() || len(m.Tags) != 0 {
		t.Errorf("custom image: %+v, %v", m, err)
	}
	files[other], _ = os.ReadFile(filepath.Join(dir, other+".json"))

	// Idempotent: the second run changes nothing.
	res2, err := ImportShifter(Options{Config: c, Puller: newFakePuller()}, "sys", strings.NewReader(export))
	must(err)
	if res2.Images != 0 || res2.Known != 3 || res2.Tags != 0 || res2.Skipped != 0 || res2.Metadata != 3 {
		t.Errorf("second import: %+v", res2)
	}
	for id, b := range files {
		if b2, _ := os.ReadFile(filepath.Join(dir, id+".json")); !bytes.Equal(b, b2) {
			t.Errorf("%s.json changed by the second import:\n%s\n%s", id, b, b2)
		}
	}

	// The gateway serves the imported images as Shifter's did.
	tg := startGW(t, c, newFakePuller())
	if im, code := tg.lookup(anon, "ubuntu:xenial"); code != 200 || im.ID != pub || math.Abs(im.LastPull-1600000000.25) > 1e-3 {
		t.Errorf("anonymous lookup of the public image: %d %+v", code, im)
	}
	if im, code := tg.lookup(alice, "nersc/secret:1.0"); code != 200 || im.ID != priv {
		t.Errorf("lookup of the private image by a uid on its ACL: %d %+v", code, im)
	}
	if _, code := tg.lookup(carol, "nersc/secret:1.0"); code != 200 {
		t.Errorf("lookup of the private image by a group on its ACL: %d", code)
	}
	if _, code := tg.lookup(bob, "nersc/secret:1.0"); code != 404 {
		t.Errorf("lookup of the private image by a user not on its ACL: %d", code)
	}
	if im, code := tg.lookupType(bob, "custom", "mine:1"); code != 200 || im.ID != other || im.Itype != "custom" {
		t.Errorf("lookup of the custom image: %d %+v", code, im)
	}
	if _, code := tg.lookup(bob, "mine:1"); code != 404 {
		t.Errorf("the custom tag is found as a docker tag: %d", code)
	}
	if l := tg.list(bob); len(l) != 2 {
		t.Errorf("list as bob: %+v", l)
	}
	if l := tg.list(alice); len(l) != 3 {
		t.Errorf("list as alice: %+v", l)
	}
	tg.close()

	// After the switch a tag moved to another image: a re-import leaves it.
	res3, err := ImportShifter(Options{Config: c, Puller: newFakePuller()}, "sys",
		strings.NewReader(strings.Replace(export, `"tag":["nersc/secret:1.0"]`, `"tag":["nersc/secret:1.0","ubuntu:16.04"]`, 1)))
	must(err)
	if res3.Skipped != 1 || res3.Tags != 0 {
		t.Errorf("import with a tag bound elsewhere: %+v", res3)
	}
}

func TestParseMongoExport(t *testing.T) {
	bad := []struct{ name, line string }{
		{"not JSON", `{"system":`},
		{"two values", `{"system":"s","status":"READY"} {}`},
		{"not a Shifter record", `{"name":"x"}`},
		{"bad ACL", `{"system":"s","status":"READY","userACL":[-1]}`},
		{"fractional ACL", `{"system":"s","status":"READY","userACL":[1.5]}`},
		{"bad tag", `{"system":"s","status":"READY","tag":[1]}`},
		{"bad time", `{"system":"s","status":"READY","last_pull":"yesterday"}`},
		{"bad date", `{"system":"s","status":"READY","last_pull":{"$date":"yesterday"}}`},
		{"bad ENTRY", `{"system":"s","status":"READY","ENTRY":"['unterminated"}`},
	}
	for _, b := range bad {
		if _, err := parseMongoExport(strings.NewReader(b.line + "\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%s: err %v, want an error naming line 1", b.name, err)
		}
	}
	recs, err := parseMongoExport(strings.NewReader(`{"system":"s","status":"READY","ENTRY":"['/bin/sh', '-c']","CMD":"echo hi","last_pull":{"$date":"2020-09-13T12:26:40Z"}}` + "\n"))
	if err != nil || len(recs) != 1 || !slices.Equal(recs[0].Entry, []string{"/bin/sh", "-c"}) || !slices.Equal(recs[0].Cmd, []string{"echo", "hi"}) ||
		recs[0].LastPull.Unix() != 1600000000 {
		t.Errorf("string ENTRY/CMD and $date: %+v %v", recs, err)
	}
}
