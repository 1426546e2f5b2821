// SPDX-License-Identifier: BSD-3-Clause

package launcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/mountns"
	"github.com/shifter-go/shifter/udiroot"
)

// publish puts an image with the given tags and ACLs into the store dir
// through imagestore.Publish, as the gateway does, and returns its id.
func publish(t testing.TB, dir, seed string, created time.Time, tags []string, uids, gids []uint32) string {
	t.Helper()
	sum := sha256.Sum256([]byte(seed))
	id := hex.EncodeToString(sum[:])
	f, err := imagestore.CreateTemp(dir)
	must(t, err)
	_, err = f.WriteString("not really a squashfs: " + seed)
	must(t, err)
	must(t, f.Close())
	m := &imagestore.Metadata{ID: id, Format: imagestore.FormatSquashfs, Tags: tags, UserACL: uids, GroupACL: gids,
		Created: created, Env: []string{"IMG=" + seed}, Entrypoint: []string{"/entry"}, WorkDir: "/w"}
	must(t, imagestore.Publish(dir, f.Name(), m))
	return id
}

func testResolver(t *testing.T, cfg *udiroot.Config, uid, gid uint32, groups []uint32, lookup Lookup) *imageResolver {
	t.Helper()
	return &imageResolver{cfg: cfg, cred: &mountns.Credential{UID: uid, GID: gid, Groups: groups}, mode: ModeUser, lookup: lookup, log: slog.New(slog.DiscardHandler)}
}

func TestResolveImage(t *testing.T) {
	store := t.TempDir()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	public := publish(t, store, "public", t0, []string{"ubuntu:22.04", "ubuntu:latest"}, nil, nil)
	userOnly := publish(t, store, "user", t0.Add(time.Hour), []string{"private:1"}, []uint32{1000}, nil)
	groupOnly := publish(t, store, "group", t0.Add(2*time.Hour), []string{"grp:1"}, nil, []uint32{4242})
	// A newer private image carrying the public tag: others must get the
	// older public one and never learn of this one.
	shadow := publish(t, store, "shadow", t0.Add(3*time.Hour), []string{"ubuntu:22.04"}, []uint32{2000}, nil)
	gwOnly := publish(t, store, "gateway", t0, nil, nil, nil)
	gwPrivate := publish(t, store, "gwprivate", t0, nil, []uint32{2000}, nil)

	cfg := udiroot.Default()
	cfg.ImagePath = store
	// An imported image: its custom tag is the gateway's alone; a docker
	// tag of the same spelling in the store must not answer for it.
	custom := publish(t, store, "custom", t0, []string{"mytool:1"}, nil, nil)
	lookup := func(_ context.Context, itype, tag string) (string, error) {
		if itype == "custom" {
			if tag == "mine:latest" {
				return custom, nil
			}
			return "", errors.New("gateway: not found")
		}
		switch tag {
		case "gw:latest", "gw":
			return gwOnly, nil
		case "gwp":
			return gwPrivate, nil
		}
		return "", errors.New("gateway: not found")
	}
	tests := []struct {
		name     string
		ref      string
		uid, gid uint32
		groups   []uint32
		lookup   Lookup
		wantID   string
		wantCode int
	}{
		{"id public", "id:" + public, 1000, 1000, nil, nil, public, 0},
		{"id user ACL allows", "id:" + userOnly, 1000, 1000, nil, nil, userOnly, 0},
		{"id user ACL denies", "id:" + userOnly, 1001, 1000, nil, nil, "", ExitNoPerm},
		{"id group ACL via supplementary group", "id:" + groupOnly, 1001, 100, []uint32{27, 4242}, nil, groupOnly, 0},
		{"id group ACL via primary group", "id:" + groupOnly, 1001, 4242, nil, nil, groupOnly, 0},
		{"id group ACL denies", "id:" + groupOnly, 1001, 100, []uint32{27}, nil, "", ExitNoPerm},
		{"id root always allowed", "id:" + userOnly, 0, 0, nil, nil, userOnly, 0},
		{"id unknown", "id:" + strings.Repeat("ab", 32), 1000, 1000, nil, nil, "", ExitUnknownImage},
		{"tag", "ubuntu:22.04", 1000, 1000, nil, nil, public, 0},
		{"tag normalized", "docker:docker.io/library/ubuntu", 1000, 1000, nil, nil, public, 0},
		{"tag newest allowed wins", "ubuntu:22.04", 2000, 2000, nil, nil, shadow, 0},
		{"tag private hidden", "private:1", 1001, 1001, nil, nil, "", ExitUnknownImage},
		{"tag private by group", "grp:1", 5, 5, []uint32{4242}, nil, groupOnly, 0},
		{"tag unknown no gateway", "nothere", 1000, 1000, nil, nil, "", ExitUnknownImage},
		{"tag through gateway", "gw", 1000, 1000, nil, lookup, gwOnly, 0},
		{"gateway answer still ACL checked", "gwp", 1000, 1000, nil, lookup, "", ExitUnknownImage},
		{"gateway answer allowed", "gwp", 2000, 2000, nil, lookup, gwPrivate, 0},
		{"gateway does not know", "nothere", 1000, 1000, nil, lookup, "", ExitUnknownImage},
		{"custom through gateway", "custom:mine", 1000, 1000, nil, lookup, custom, 0},
		{"custom not from the store's tags", "custom:mytool:1", 1000, 1000, nil, lookup, "", ExitUnknownImage},
		{"custom without gateway", "custom:mine", 1000, 1000, nil, nil, "", ExitUnknownImage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref, err := parseImageRef(tc.ref, "docker")
			must(t, err)
			r := testResolver(t, cfg, tc.uid, tc.gid, tc.groups, tc.lookup)
			img, err := r.resolve(context.Background(), ref)
			if tc.wantCode != 0 {
				if err == nil {
					img.File.Close()
					t.Fatalf("resolve(%s) = %s, want exit %d", tc.ref, img.ID, tc.wantCode)
				}
				if ExitCode(err) != tc.wantCode {
					t.Fatalf("resolve(%s) = %v (exit %d), want exit %d", tc.ref, err, ExitCode(err), tc.wantCode)
				}
				if tc.wantCode == ExitUnknownImage && strings.Contains(err.Error(), "denied") {
					t.Errorf("not-found error reveals an ACL: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve(%s): %v", tc.ref, err)
			}
			defer img.File.Close()
			if img.ID != tc.wantID || img.Meta.ID != tc.wantID {
				t.Errorf("resolve(%s) = %s, want %s", tc.ref, img.ID, tc.wantID)
			}
			sq, _ := imagestore.Paths(store, tc.wantID)
			want, _ := os.ReadFile(sq)
			got := make([]byte, len(want)+10)
			n, _ := img.File.ReadAt(got, 0)
			if string(got[:n]) != string(want) || img.Path != sq {
				t.Errorf("opened %s with %q, want %s with %q", img.Path, got[:n], sq, want)
			}
		})
	}
}

// TestResolveImageFileAttacks replaces a published squashfs with things
// that must not be opened.
func TestResolveImageFileAttacks(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, sq string)
		msg   string
	}{
		{"symlink to a host file", func(t *testing.T, sq string) {
			must(t, os.Remove(sq))
			must(t, os.Symlink("/etc/passwd", sq))
		}, "symbolic links"},
		{"directory", func(t *testing.T, sq string) {
			must(t, os.Remove(sq))
			must(t, os.Mkdir(sq, 0o755))
		}, "not a regular file"},
		{"truncated", func(t *testing.T, sq string) {
			must(t, os.Truncate(sq, 3))
		}, "the metadata says"},
		{"missing", func(t *testing.T, sq string) {
			must(t, os.Remove(sq))
		}, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := t.TempDir()
			id := publish(t, store, tc.name, time.Now(), []string{"x:1"}, nil, nil)
			sq, _ := imagestore.Paths(store, id)
			tc.setup(t, sq)
			cfg := udiroot.Default()
			cfg.ImagePath = store
			img, err := testResolver(t, cfg, 1000, 1000, nil, nil).resolve(context.Background(), ImageRef{Type: "id", Tag: id, Raw: id})
			if err == nil {
				img.File.Close()
				t.Fatal("resolve succeeded")
			}
			if ExitCode(err) != ExitUnknownImage || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("resolve = %v (exit %d), want exit %d containing %q", err, ExitCode(err), ExitUnknownImage, tc.msg)
			}
		})
	}
}

func TestResolveLocal(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	tests := []struct {
		name     string
		allow    bool
		path     string
		wantCode int
	}{
		{"not allowed", false, dir, ExitNoPerm},
		{"directory", true, dir, 0},
		{"file", true, file, ExitUnknownImage},
		{"missing", true, filepath.Join(dir, "missing"), ExitUnknownImage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := udiroot.Default()
			cfg.AllowLocalChroot = tc.allow
			img, err := testResolver(t, cfg, 1000, 1000, nil, nil).resolve(context.Background(), ImageRef{Type: "local", Tag: tc.path, Raw: "local:" + tc.path})
			if tc.wantCode != 0 {
				if ExitCode(err) != tc.wantCode {
					t.Fatalf("resolve = %v, want exit %d", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if img.LocalRoot != tc.path || img.File != nil || img.Meta != nil || img.ID != tc.path {
				t.Errorf("resolve = %+v", img)
			}
		})
	}
}

// TestGatewayLookup resolves a tag through the real gateway client,
// against an HTTP server on a unix socket that answers like the gateway.
func TestGatewayLookup(t *testing.T) {
	store := t.TempDir()
	id := publish(t, store, "gw", time.Now(), nil, nil, nil)
	sock := filepath.Join(t.TempDir(), "gw.sock")
	ln, err := net.Listen("unix", sock)
	must(t, err)
	var gotPath string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.Path
		if r.URL.Path != "/api/lookup/sys1/docker/repo/app:1.0/" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(api.Error{Status: 404, Error: "not found", Message: "Not Found: " + r.URL.Path})
			return
		}
		json.NewEncoder(w).Encode(api.Image{ID: id, System: "sys1", Itype: "docker", Tag: []string{"repo/app:1.0"}, Status: api.StateReady})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	cfg := udiroot.Default()
	cfg.ImagePath, cfg.System, cfg.ImageGateway, cfg.GatewayTimeout = store, "sys1", []string{"unix:" + sock}, 5
	lookup, err := gatewayLookup(cfg, ModeUser, slog.New(slog.DiscardHandler))
	must(t, err)
	r := testResolver(t, cfg, 1000, 1000, nil, lookup)
	img, err := r.resolve(context.Background(), ImageRef{Type: "docker", Tag: "repo/app:1.0", Raw: "repo/app:1.0"})
	if err != nil {
		t.Fatalf("resolve through gateway: %v (server saw %s)", err, gotPath)
	}
	img.File.Close()
	if img.ID != id {
		t.Errorf("resolved %s, want %s", img.ID, id)
	}
	_, err = r.resolve(context.Background(), ImageRef{Type: "docker", Tag: "other:1", Raw: "other:1"})
	if ExitCode(err) != ExitUnknownImage {
		t.Errorf("unknown tag through gateway: %v, want exit %d", err, ExitUnknownImage)
	}
}

// TestUntrustedImageFile: an image file an ordinary user could have
// written is flagged when it is opened (issue #17 item 13), and the mount
// mode then keeps it from the kernel's squashfs driver.
func TestUntrustedImageFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files other owners")
	}
	tests := []struct {
		name       string
		storeOwner int // the store directory's owner
		uid, gid   int
		mode       os.FileMode
		want       string // in Untrusted; "" = trusted
	}{
		{"root, 0644", 0, 0, 0, 0o644, ""},
		{"root, 0600", 0, 0, 0, 0o600, ""},
		{"store owner (the gateway's account)", 4000, 4000, 4000, 0o640, ""},
		{"root's file in a store of another owner", 4000, 0, 0, 0o644, ""},
		{"another user's file", 0, 1000, 1000, 0o644, "owned by uid 1000"},
		{"another user's read-only file", 4000, 1000, 0, 0o444, "owned by uid 1000"},
		{"world-writable", 0, 0, 0, 0o666, "writable by every user"},
		{"group-writable", 0, 0, 100, 0o664, "writable by group 100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := t.TempDir()
			must(t, os.Chown(store, tc.storeOwner, tc.storeOwner))
			id := publish(t, store, tc.name, time.Now(), []string{"x:1"}, nil, nil)
			sq, _ := imagestore.Paths(store, id)
			must(t, os.Chown(sq, tc.uid, tc.gid))
			must(t, os.Chmod(sq, tc.mode))
			cfg := udiroot.Default()
			cfg.ImagePath = store
			img, err := testResolver(t, cfg, 1000, 1000, nil, nil).resolve(context.Background(), ImageRef{Type: "id", Tag: id, Raw: id})
			if err != nil {
				t.Fatal(err)
			}
			defer img.File.Close()
			if tc.want == "" && img.Untrusted != "" || !strings.Contains(img.Untrusted, tc.want) {
				t.Fatalf("Untrusted = %q, want %q", img.Untrusted, tc.want)
			}
			for _, m := range []string{udiroot.ImageMountAuto, udiroot.ImageMountFUSE, udiroot.ImageMountLoop} {
				cfg.ImageMount = m
				var logs strings.Builder
				got, err := imageMountMode(cfg, img, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
				switch {
				case tc.want == "":
					if err != nil || string(got) != m || logs.Len() != 0 {
						t.Errorf("imageMount=%s: %q, %v, log %q; want %s, no log", m, got, err, logs.String(), m)
					}
				case m == udiroot.ImageMountLoop:
					if err == nil || ExitCode(err) != ExitNoPerm || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "never loop-mounted") {
						t.Errorf("imageMount=loop: %q, %v; want refusal (exit %d) naming %q", got, err, ExitNoPerm, tc.want)
					}
				default:
					if err != nil || got != mountns.MountFUSE || !strings.Contains(logs.String(), "served through FUSE") {
						t.Errorf("imageMount=%s: %q, %v, log %q; want fuse, said", m, got, err, logs.String())
					}
				}
			}
		})
	}
}

// TestResolveShifterMeta: an image of an existing Shifter image directory
// (<id>.squashfs and Shifter's <id>.meta, no <id>.json) resolves by id
// and through the gateway's lookup of a tag (.meta carries no tags), with
// the .meta's ACL enforced.
func TestResolveShifterMeta(t *testing.T) {
	store := t.TempDir()
	sum := sha256.Sum256([]byte("shifter meta image"))
	id := hex.EncodeToString(sum[:])
	must(t, os.WriteFile(filepath.Join(store, id+".squashfs"), []byte("not really a squashfs"), 0o600))
	meta := "FORMAT: squashfs\nENTRY: ['/bin/sh', '-c']\nCMD: ['echo hi']\nWORKDIR: /app\nUSERACL: 1000\nGROUPACL: 4242\nENV: PATH=/bin\nENV: A=b\n"
	must(t, os.WriteFile(filepath.Join(store, id+".meta"), []byte(meta), 0o600))
	cfg := udiroot.Default()
	cfg.ImagePath = store
	lookup := func(_ context.Context, itype, tag string) (string, error) {
		if tag == "legacy:1" {
			return id, nil
		}
		return "", errors.New("gateway: not found")
	}
	for _, ref := range []ImageRef{{Type: "id", Tag: id, Raw: "id:" + id}, {Type: "docker", Tag: "legacy:1", Raw: "legacy:1"}} {
		for _, c := range []struct {
			uid, gid uint32
			groups   []uint32
			ok       bool
		}{{1000, 1000, nil, true}, {2000, 2000, []uint32{4242}, true}, {2000, 2000, nil, false}} {
			r := testResolver(t, cfg, c.uid, c.gid, c.groups, lookup)
			img, err := r.resolve(context.Background(), ref)
			if !c.ok {
				if err == nil {
					img.File.Close()
					t.Errorf("%s as %d: resolved, want refused", ref.Raw, c.uid)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s as %d: %v", ref.Raw, c.uid, err)
				continue
			}
			img.File.Close()
			m := img.Meta
			if img.ID != id || m.WorkDir != "/app" || strings.Join(m.Entrypoint, " ") != "/bin/sh -c" ||
				strings.Join(m.Cmd, " ") != "echo hi" || strings.Join(m.Env, " ") != "PATH=/bin A=b" {
				t.Errorf("%s: %+v", ref.Raw, m)
			}
		}
	}
	// A .meta the parser refuses is no image.
	must(t, os.WriteFile(filepath.Join(store, id+".meta"), []byte("FORMAT: ext4\n"), 0o600))
	if _, err := testResolver(t, cfg, 1000, 1000, nil, nil).resolve(context.Background(), ImageRef{Type: "id", Tag: id, Raw: "id:" + id}); err == nil {
		t.Errorf("ext4 .meta: resolved")
	}
}
