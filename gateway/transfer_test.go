// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

// Fake ssh and scp that act locally (as Shifter's own tests do): they
// log their argv and run the command or copy the file on this host.
const fakeSSH = `#!/bin/sh
echo "ssh $*" >> "$FAKE_SSH_LOG"
while [ $# -gt 0 ]; do
  case "$1" in
    -i|-o|-p|-F|-l) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
shift # host
exec sh -c "$*"
`

const fakeSCP = `#!/bin/sh
echo "scp $*" >> "$FAKE_SSH_LOG"
while [ $# -gt 0 ]; do
  case "$1" in
    -i|-o|-P|-F) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
exec cp "$1" "${2#*:}"
`

func TestSSHTransfer(t *testing.T) {
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "ssh"), []byte(fakeSSH), 0o755)
	os.WriteFile(filepath.Join(bin, "scp"), []byte(fakeSCP), 0o755)
	sshLog := filepath.Join(bin, "log")
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	t.Setenv("FAKE_SSH_LOG", sshLog)

	p := newFakePuller()
	id := p.add("ubuntu:22.04", fakeImage{env: []string{"A=1"}})
	privID := p.add("corp/secret:1", fakeImage{creds: "alice:" + secret})
	c := testConfig(t)
	remote := filepath.Join(t.TempDir(), "remote images")
	os.MkdirAll(remote, 0o755)
	c.Systems["sys"] = &System{ImageDir: remote, Transfer: TransferSSH, Admins: []string{"admin"},
		SSH: &SSH{Host: "login1", User: "shifter", Key: "/etc/shifter/id_ed25519",
			SSHOptions: []string{"-o", "BatchMode=yes"}, SCPOptions: []string{"-o", "BatchMode=yes"}}}
	// A stale temporary file on the remote host is cleaned at start-up.
	os.WriteFile(filepath.Join(remote, ".tmp-stale.squashfs"), []byte("x"), 0o644)
	tg := startGW(t, c, p)
	if _, err := os.Stat(filepath.Join(remote, ".tmp-stale.squashfs")); err == nil {
		t.Error("remote temporary file not cleaned at start-up")
	}

	if im := tg.pullWait(alice, "ubuntu:22.04", nil); im.Status != api.StateReady || im.ID != id {
		t.Fatalf("pull over ssh: %s %q", im.Status, im.StatusMessage)
	}
	m, err := imagestore.Load(remote, id)
	if err != nil || !m.HasTag("ubuntu:22.04") || !m.Public() || !slices.Equal(m.Env, []string{"A=1"}) {
		t.Fatalf("remote metadata: %+v %v", m, err)
	}
	sq, _ := imagestore.Paths(remote, id)
	if b, _ := os.ReadFile(sq); string(b) != "squashfs of "+id {
		t.Errorf("remote squashfs: %q", b)
	}
	if st, _ := os.Stat(sq); st.Size() != m.Size {
		t.Errorf("remote squashfs size %d, metadata %d", st.Size(), m.Size)
	}
	if im := tg.pullWait(alice, "corp/secret:1", &api.PullRequest{AuthorizedLocations: map[string]string{"default": "alice:" + secret}}); im.Status != api.StateReady {
		t.Fatalf("private pull over ssh: %+v", im)
	}
	if m, err := imagestore.Load(remote, privID); err != nil || m.Public() || !m.Allowed(1001, nil) {
		t.Errorf("private image metadata on the remote: %+v %v", m, err)
	}
	// A private image's remote files are the gateway's only; a public
	// image's readable by all (#17 item 4).
	for id, want := range map[string]os.FileMode{privID: 0o600, id: 0o644} {
		sq, mp := imagestore.Paths(remote, id)
		for _, p := range []string{sq, mp} {
			if st, err := os.Stat(p); err != nil || st.Mode().Perm() != want {
				t.Errorf("remote %s: mode %v (%v), want %o", filepath.Base(p), st.Mode(), err, want)
			}
		}
	}
	// The spool on the gateway is empty again; no temporary file remains
	// on the remote.
	spool, _ := os.ReadDir(filepath.Join(c.WorkDir, "spool", "sys"))
	if len(spool) != 0 {
		t.Errorf("spool not emptied: %v", spool)
	}
	if names := tempNames(t, remote); len(names) != 0 {
		t.Errorf("remote temporary files: %v", names)
	}
	// The ssh options and key were used; no credential ever appears in argv.
	logb, _ := os.ReadFile(sshLog)
	if !strings.Contains(string(logb), "scp -i /etc/shifter/id_ed25519 -o BatchMode=yes -- ") ||
		!strings.Contains(string(logb), "ssh -i /etc/shifter/id_ed25519 -o BatchMode=yes -- shifter@login1 ") {
		t.Errorf("ssh/scp argv:\n%s", logb)
	}
	if strings.Contains(string(logb), secret) {
		t.Error("registry password on an ssh/scp command line")
	}
	// The squashfs is renamed into place before the metadata is copied.
	lines := strings.Split(string(logb), "\n")
	sqAt, jsonAt := -1, -1
	for i, l := range lines {
		if strings.HasPrefix(l, "ssh ") && strings.Contains(l, id+".squashfs") && strings.Contains(l, "mv -f") && sqAt < 0 {
			sqAt = i
		}
		if strings.HasPrefix(l, "ssh ") && strings.Contains(l, id+".json") && strings.Contains(l, "mv -f") && jsonAt < 0 {
			jsonAt = i
		}
	}
	if sqAt < 0 || jsonAt < 0 || sqAt > jsonAt {
		t.Errorf("publish order: squashfs mv at %d, metadata mv at %d", sqAt, jsonAt)
	}

	// Expire removes the remote files.
	if code := tg.do("POST", "/api/expire/sys/docker/ubuntu:22.04/", admin, nil, nil); code != 200 {
		t.Fatalf("expire: %d", code)
	}
	if _, err := os.Stat(sq); err == nil {
		t.Error("expire left the remote squashfs")
	}
	// Autoexpire removes unreferenced remote files older than job_timeout.
	orphan := fakeID("orphan")
	for _, ext := range []string{".squashfs", ".json"} {
		p := filepath.Join(remote, orphan+ext)
		os.WriteFile(p, []byte("{}"), 0o644)
		old := time.Now().Add(-3 * time.Hour)
		os.Chtimes(p, old, old)
	}
	var res api.ExpireResult
	if code := tg.do("POST", "/api/autoexpire/sys/", admin, nil, &res); code != 200 || !slices.Equal(res.Removed, []string{orphan}) {
		t.Errorf("remote autoexpire: %d %+v", code, res)
	}
	if _, err := os.Stat(filepath.Join(remote, orphan+".json")); err == nil {
		t.Error("remote orphan not removed")
	}
	if _, err := imagestore.Load(remote, privID); err != nil {
		t.Errorf("remote autoexpire touched a READY image: %v", err)
	}
	// A remote image deleted behind the gateway's back is withdrawn at
	// start-up.
	os.Remove(filepath.Join(remote, privID+".squashfs"))
	tg.restart(p)
	if _, code := tg.lookup(alice, "corp/secret:1"); code != 404 {
		t.Errorf("lookup of a vanished remote image: %d", code)
	}
	// The remote host unreachable: the pull fails cleanly.
	os.WriteFile(filepath.Join(bin, "scp"), []byte("#!/bin/sh\necho 'ssh: connect to host login1 port 22: Connection refused' >&2\nexit 255\n"), 0o755)
	tg.clock.add(time.Hour)
	im := tg.pullWait(alice, "ubuntu:22.04", nil)
	if im.Status != api.StateFailure || !strings.Contains(im.StatusMessage, "Connection refused") {
		t.Errorf("pull with the remote down: %s %q", im.Status, im.StatusMessage)
	}
}
