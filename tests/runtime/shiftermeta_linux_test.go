// SPDX-License-Identifier: BSD-3-Clause

package runtime_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/internal/testutil"
	"github.com/shifter-go/shifter/launcher"
)

// TestShifterImageDirectory: the setuid runtime runs images from an
// existing NERSC Shifter image directory, <id>.squashfs and Shifter's
// <id>.meta (no <id>.json), both written as Shifter's gateway writes them
// (mode 0600; the .meta in converters.py writemeta's format), with the
// .meta's environment, entrypoint, command, working directory and ACL.
func TestShifterImageDirectory(t *testing.T) {
	h := newHarness(t)
	in := install(t, h)
	in.store = filepath.Join(h.dir, "shifter-images")
	if err := os.MkdirAll(in.store, 0o755); err != nil {
		t.Fatal(err)
	}
	sq, err := os.ReadFile(h.img.squashfs)
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, meta string) string {
		sum := sha256.Sum256([]byte("shifter image " + name + h.dir))
		id := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(in.store, id+".squashfs"), sq, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(in.store, id+".meta"), []byte(meta), 0o600); err != nil {
			t.Fatal(err)
		}
		return id
	}
	mine := put("mine", `FORMAT: squashfs
ENTRY: ['/bin/sh', '-c']
CMD: ['echo from-cmd $META_VAR']
WORKDIR: /usr/share/doc
USERACL: 65534
GROUPACL: 5000
ENV: PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV: META_VAR=from-meta
`)
	public := put("public", "FORMAT: squashfs\nENV: PATH=/bin\n")
	other := put("other", "FORMAT: squashfs\nUSERACL: 1000\nENV: PATH=/bin\n")
	for _, mode := range []string{"loop", "fuse"} {
		t.Run(mode, func(t *testing.T) {
			requireMode(t, mode)
			in.t = t
			in.config(mode, "")
			r := in.run(in.shifter, nil, "--image=id:"+mine, "--workdir", "--", "sh", "-c", "pwd; echo $META_VAR; cat /etc/image-marker")
			if got := lines(r.stdout); r.code != 0 || !slices.Equal(got, []string{"/usr/share/doc", "from-meta", "from-the-image"}) {
				t.Errorf("run: exit %d %q\n%s", r.code, r.stdout, r.stderr)
			}
			if r := in.run(in.shifter, nil, "--image=id:"+mine, "--entrypoint"); r.code != 0 || r.stdout != "from-cmd from-meta\n" {
				t.Errorf("--entrypoint (ENTRY + CMD of the .meta): exit %d %q\n%s", r.code, r.stdout, r.stderr)
			}
			if r := in.run(in.shifter, nil, "--image=id:"+public, "cat", "/etc/image-marker"); r.code != 0 || r.stdout != "from-the-image\n" {
				t.Errorf("public .meta image: exit %d %q\n%s", r.code, r.stdout, r.stderr)
			}
			if r := in.run(in.shifter, nil, "--image=id:"+other, "true"); r.code != launcher.ExitNoPerm && r.code != launcher.ExitUnknownImage {
				t.Errorf(".meta ACL without the caller: exit %d\n%s", r.code, r.stderr)
			}
		})
	}

	// A .meta has no tags: after shifter-gateway import-shifter reads
	// Shifter's mongoexport, the images run by tag from the store, with
	// the .meta's ACL.
	in.t = t
	if r := in.run(in.shifter, nil, "--image=legacy/app:2.1", "true"); r.code != launcher.ExitUnknownImage {
		t.Errorf("tag before the import: exit %d\n%s", r.code, r.stderr)
	}
	export := filepath.Join(h.dir, "images.json")
	doc := func(oid, tag, id, acl string) string {
		return `{"_id":{"$oid":"` + oid + `"},"system":"default","itype":"docker","pulltag":"` + tag + `","tag":["` + tag + `"],` +
			`"status":"READY","last_pull":1600000000.5,"expiration":{"$date":"2035-01-01T00:00:00Z"},"id":"` + id + `",` +
			`"ENV":["PATH=/bin"],"ENTRY":null,"WORKDIR":null,"userACL":[` + acl + `],"groupACL":[],"private":` + map[bool]string{true: "true", false: "false"}[acl != ""] + `}`
	}
	lines := []string{doc("5f1e9a7c2b3c4d5e6f708191", "legacy/app:2.1", mine, "65534"), doc("5f1e9a7c2b3c4d5e6f708192", "legacy/public:1", public, ""),
		doc("5f1e9a7c2b3c4d5e6f708193", "legacy/other:1", other, "1000")}
	if err := os.WriteFile(export, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := testutil.Binary(t, "shifter-gateway")
	out, err := exec.Command(gw, "import-shifter", "--mongo-export", export, "--image-dir", in.store, "--system", "default",
		"--data-dir", filepath.Join(h.dir, "gwdata")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported 3 images") {
		t.Fatalf("import-shifter: %v\n%s", err, out)
	}
	in.config("auto", "")
	if r := in.run(in.shifter, nil, "--image=legacy/app:2.1", "--workdir", "--", "sh", "-c", "pwd; echo $META_VAR"); r.code != 0 || r.stdout != "/usr/share/doc\nfrom-meta\n" {
		t.Errorf("imported private image by tag: exit %d %q\n%s", r.code, r.stdout, r.stderr)
	}
	if r := in.run(in.shifter, nil, "--image=docker:legacy/public:1", "cat", "/etc/image-marker"); r.code != 0 || r.stdout != "from-the-image\n" {
		t.Errorf("imported public image by tag: exit %d %q\n%s", r.code, r.stdout, r.stderr)
	}
	if r := in.run(in.shifter, nil, "--image=legacy/other:1", "true"); r.code != launcher.ExitUnknownImage {
		t.Errorf("imported image whose ACL leaves the caller out, by tag: exit %d\n%s", r.code, r.stderr)
	}
}
