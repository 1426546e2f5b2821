// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"os"
	"testing"
)

func validSpec(t *testing.T) *Spec {
	t.Helper()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &Spec{
		Image: f, UDIMount: "/var/udiMount", Argv: []string{"/bin/true"},
		Cred: Credential{UID: 1000, GID: 1000, User: "u", Home: "/home/u", Shell: "/bin/sh"},
	}
}

func TestSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Spec)
		want   error
	}{
		{"valid", func(*Spec) {}, nil},
		{"no-argv", func(s *Spec) { s.Argv = nil }, ErrSpec},
		{"relative-udi", func(s *Spec) { s.UDIMount = "udi" }, ErrSpec},
		{"root-udi", func(s *Spec) { s.UDIMount = "/" }, ErrSpec},
		{"unclean-udi", func(s *Spec) { s.UDIMount = "/a/../b" }, ErrSpec},
		{"no-image", func(s *Spec) { s.Image = nil }, ErrSpec},
		{"image-and-local", func(s *Spec) { s.LocalRoot = "/srv/root" }, ErrSpec},
		{"local-root-slash", func(s *Spec) { s.Image, s.LocalRoot = nil, "/" }, ErrSpec},
		{"bad-mode", func(s *Spec) { s.Mode = "nfs" }, ErrSpec},
		{"unpriv-hook", func(s *Spec) { s.Unprivileged, s.PreMountHook = true, "x" }, ErrSpec},
		{"etc-slash", func(s *Spec) { s.EtcFiles = map[string]string{"../shadow": "/etc/shadow"} }, ErrSpec},
		{"etc-passwd", func(s *Spec) { s.EtcFiles = map[string]string{"passwd": "/etc/passwd"} }, ErrSpec},
		{"user-colon", func(s *Spec) { s.Cred.User = "a:b" }, ErrSpec},
		{"gecos-newline", func(s *Spec) { s.Cred.Gecos = "a\nroot::0:0::/:/bin/sh" }, ErrSpec},
		{"group-comma", func(s *Spec) { s.Cred.GroupNames = map[uint32]string{5: "a,b"} }, ErrSpec},
		{"import-user-ok", func(s *Spec) { s.ImportUsers = []Account{{Name: "sshd", UID: 105, GID: 65534, Home: "/run/sshd"}} }, nil},
		{"import-user-empty", func(s *Spec) { s.ImportUsers = []Account{{UID: 105}} }, ErrSpec},
		{"import-user-newline", func(s *Spec) { s.ImportUsers = []Account{{Name: "d", Gecos: "x\nroot::0:0::/:/bin/sh"}} }, ErrSpec},
		{"import-group-comma", func(s *Spec) { s.ImportUsers = []Account{{Name: "d", GroupName: "a,b"}} }, ErrSpec},
		{"volume-etc", func(s *Spec) { s.Volumes = []Volume{{Source: "/a", Dest: "/etc"}} }, ErrBadVolume},
		{"volume-unclean", func(s *Spec) { s.Volumes = []Volume{{Source: "/a", Dest: "/x/../etc"}} }, ErrBadVolume},
		{"site-volume-var-ok", func(s *Spec) { s.Volumes = []Volume{{Source: "/a", Dest: "/var/x", Site: true}} }, nil},
		{"site-propagation", func(s *Spec) { s.Volumes = []Volume{{Source: "/a", Dest: "/x", Site: true, Propagation: "shared"}} }, ErrBadVolume},
		{"env-files", func(s *Spec) { s.EnvFiles, s.EnvAfter = []string{"/e", "rel"}, []EnvOp{{EnvSet, "A", "1"}} }, nil},
		{"env-file-empty", func(s *Spec) { s.EnvFiles = []string{""} }, ErrSpec},
		{"env-file-nul", func(s *Spec) { s.EnvFiles = []string{"/a\x00b"} }, ErrSpec},
		{"env-after-without-files", func(s *Spec) { s.EnvAfter = []EnvOp{{EnvSet, "A", "1"}} }, ErrSpec},
		{"pernodecache-ok", pnc(nil), nil},
		{"pernodecache-site-ok", pnc(func(s *Spec) { s.Volumes[0].Site = true }), nil},
		{"pernodecache-no-path", pnc(func(s *Spec) { s.PerNodeCache.Dir = "" }), ErrUnavailable},
		{"pernodecache-relative-path", pnc(func(s *Spec) { s.PerNodeCache.Dir = "cache" }), ErrSpec},
		{"pernodecache-unprivileged", pnc(func(s *Spec) { s.Unprivileged = true }), ErrUnavailable},
		{"pernodecache-at-limit", pnc(func(s *Spec) { s.PerNodeCache.SizeLimit = 10 << 30 }), nil},
		{"pernodecache-over-limit", pnc(func(s *Spec) { s.PerNodeCache.SizeLimit = 10<<30 - 1 }), ErrBadVolume},
		{"pernodecache-zero", pnc(func(s *Spec) { s.Volumes[0].PerNodeCache.Size = 0 }), ErrBadVolume},
		{"pernodecache-negative", pnc(func(s *Spec) { s.Volumes[0].PerNodeCache.Size = -1 }), ErrBadVolume},
		{"pernodecache-ext4-default-list", pnc(func(s *Spec) { s.Volumes[0].PerNodeCache.FsType = "ext4" }), ErrBadVolume},
		{"pernodecache-ext4-allowed", pnc(func(s *Spec) {
			s.Volumes[0].PerNodeCache.FsType, s.PerNodeCache.AllowedFsTypes = "ext4", []string{"xfs", "ext4"}
		}), nil},
		{"pernodecache-xfs-not-allowed", pnc(func(s *Spec) { s.PerNodeCache.AllowedFsTypes = []string{"ext4"} }), ErrBadVolume},
		{"pernodecache-btrfs", pnc(func(s *Spec) {
			s.Volumes[0].PerNodeCache.FsType, s.PerNodeCache.AllowedFsTypes = "btrfs", []string{"btrfs"}
		}), ErrBadVolume},
		{"pernodecache-method", pnc(func(s *Spec) { s.Volumes[0].PerNodeCache.Method = "nbd" }), ErrBadVolume},
		{"pernodecache-no-mkfs", pnc(func(s *Spec) { s.PerNodeCache.Mkfs = nil }), ErrUnavailable},
		{"pernodecache-etc", pnc(func(s *Spec) { s.Volumes[0].Dest = "/etc/x" }), ErrBadVolume},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec(t)
			tc.change(s)
			err := s.validate()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("validate() = %v, want %v", err, tc.want)
			}
		})
	}
}

// pnc returns a change that adds a 10 GiB xfs perNodeCache volume at
// /scratch, with the site's settings, then applies more.
func pnc(more func(*Spec)) func(*Spec) {
	return func(s *Spec) {
		s.Volumes = []Volume{{Source: "/ignored", Dest: "/scratch",
			PerNodeCache: &PerNodeCache{Size: 10 << 30, BlockSize: 1 << 20, Method: "loop", FsType: "xfs"}}}
		s.PerNodeCache = PerNodeCacheConfig{Dir: "/var/cache/pnc", Mkfs: map[string]string{"xfs": "/sbin/mkfs.xfs", "ext4": "/sbin/mkfs.ext4"}}
		if more != nil {
			more(s)
		}
	}
}

func TestEtcFiles(t *testing.T) {
	c := Credential{UID: 1000, GID: 100, Groups: []uint32{100, 20, 5000}, User: "alice", Home: "/home/alice",
		Shell: "/bin/bash", Gecos: "Alice", GroupNames: map[uint32]string{100: "users", 20: "dialout"}}
	sshd := Account{Name: "sshd", UID: 105, GID: 65534, Home: "/run/sshd", Shell: "/usr/sbin/nologin", GroupName: "nogroup"}
	daemon := Account{Name: "daemon", UID: 1, GID: 1, Gecos: "daemon", Home: "/usr/sbin", Shell: "/usr/sbin/nologin", GroupName: "daemon"}
	for _, tc := range []struct {
		name        string
		imported    []Account
		passwd, grp string
	}{
		{"user only", nil,
			"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:100:Alice:/home/alice:/bin/bash\n",
			"root:x:0:\ndialout:x:20:alice\nusers:x:100:\ngroup5000:x:5000:alice\n"},
		{"imported", []Account{sshd, daemon},
			"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:100:Alice:/home/alice:/bin/bash\n" +
				"sshd:x:105:65534::/run/sshd:/usr/sbin/nologin\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
			"root:x:0:\ndialout:x:20:alice\nusers:x:100:\ngroup5000:x:5000:alice\nnogroup:x:65534:\ndaemon:x:1:\n"},
		{"duplicates of root, the user and each other are left out", []Account{
			{Name: "root", UID: 0, GID: 0}, {Name: "alice", UID: 1000, GID: 100}, {Name: "other", UID: 1000, GID: 7},
			{Name: "toor", UID: 0, GID: 0}, daemon, {Name: "daemon", UID: 2, GID: 2}, {Name: "dialer", UID: 300, GID: 20, GroupName: "dialout"},
		},
			"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:100:Alice:/home/alice:/bin/bash\n" +
				"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\ndialer:x:300:20::/:/bin/sh\n",
			"root:x:0:\ndialout:x:20:alice\nusers:x:100:\ngroup5000:x:5000:alice\ndaemon:x:1:\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(passwdFile(c, tc.imported)); got != tc.passwd {
				t.Errorf("passwdFile = %q, want %q", got, tc.passwd)
			}
			if got := string(groupFile(c, tc.imported)); got != tc.grp {
				t.Errorf("groupFile = %q, want %q", got, tc.grp)
			}
		})
	}
}

func TestKindRoundTrip(t *testing.T) {
	for name, sentinel := range errorKinds {
		err := &remoteError{kind: errorKinds[kindOf(sentinel)], msg: "x"}
		if !errors.Is(err, sentinel) {
			t.Errorf("kind %s: remote error does not wrap its sentinel", name)
		}
	}
}
