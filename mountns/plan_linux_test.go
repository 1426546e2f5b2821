// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"slices"
	"strings"
	"testing"
)

// TestPlanRoot asserts, without privileges, what is mounted where, with
// which flags and in which order for the kinds of container the init
// builds.
func TestPlanRoot(t *testing.T) {
	allHost := func(string) bool { return true }
	noVarTmp := func(p string) bool { return p != "/var/tmp" }
	vols := []Volume{
		{Source: "/site/scratch", Dest: "/scratch", Site: true, Propagation: "slave"},
		{Source: "/dev/infiniband", Dest: "/dev/infiniband", Site: true},
		{Source: "/home/u/data", Dest: "/data", ReadOnly: true},
	}
	head := []string{
		"tmpfs on /udi MS_NOSUID|MS_NODEV mode=0755, mkdir lower upper work",
		"image loop /store/x.squashfs on /udi/lower ro,nosuid,nodev",
		"/etc files in /udi/upper",
		"overlay on /udi MS_NOSUID|MS_NODEV lowerdir=lower,upperdir=upper,workdir=work",
		"mount proc proc on /proc MS_NOSUID|MS_NODEV|MS_NOEXEC",
		"bind /sys on /sys rec nosuid,nodev,noexec private",
		"bind /dev on /dev rec nosuid private",
		"bind /tmp on /tmp nosuid,nodev private optional rec-in-userns",
	}
	tail := "remount / MS_RDONLY|MS_NOSUID|MS_NODEV|MS_REMOUNT|MS_BIND"
	for _, tc := range []struct {
		name    string
		cfg     initConfig
		hostHas func(string) bool
		want    []string
	}{
		{
			name:    "privileged loop",
			cfg:     initConfig{UDIMount: "/udi", Mode: MountLoop, ImagePath: "/store/x.squashfs", HasImage: true},
			hostHas: allHost,
			want:    append(slices.Clone(head), "bind /var/tmp on /var/tmp nosuid,nodev private optional rec-in-userns", tail),
		},
		{
			name: "privileged, volumes and hooks, no /var/tmp on the host",
			cfg: initConfig{UDIMount: "/udi", Mode: MountLoop, ImagePath: "/store/x.squashfs", HasImage: true,
				Volumes: vols, PreMountHook: "/etc/pre.sh", PostMountHook: "echo post"},
			hostHas: noVarTmp,
			want: append(slices.Clone(head),
				"hook sitePreMountHook",
				"bind volume 0 on /scratch rec nosuid,nodev slave",
				"bind volume 1 on /dev/infiniband rec nosuid private",
				"bind volume 2 on /data rec ro,nosuid,nodev private user",
				"hook sitePostMountHook",
				tail),
		},
		{
			name: "perNodeCache volumes, site and user",
			cfg: initConfig{UDIMount: "/udi", Mode: MountLoop, ImagePath: "/store/x.squashfs", HasImage: true,
				Volumes: []Volume{
					{Source: "/tmp", Dest: "/site-cache", Site: true, PerNodeCache: &PerNodeCache{Size: 1 << 30, FsType: "xfs"}},
					vols[2],
					{Source: "/ignored", Dest: "/scratch", PerNodeCache: &PerNodeCache{Size: 64 << 20, FsType: "ext4"}},
				}},
			hostHas: noVarTmp,
			want: append(slices.Clone(head),
				"perNodeCache volume 0: xfs of 1073741824 bytes on /site-cache MS_NOSUID|MS_NODEV site",
				"bind volume 1 on /data rec ro,nosuid,nodev private user",
				"perNodeCache volume 2: ext4 of 67108864 bytes on /scratch MS_NOSUID|MS_NODEV user",
				tail),
		},
		{
			name:    "unprivileged fuse",
			cfg:     initConfig{UDIMount: "/udi", Mode: MountFUSE, ImagePath: "/store/x.squashfs", HasImage: true, Unprivileged: true, Volumes: vols[2:]},
			hostHas: allHost,
			want: []string{
				"tmpfs on /udi MS_NOSUID|MS_NODEV mode=0755, mkdir lower upper work",
				"image fuse /store/x.squashfs on /udi/lower ro,nosuid,nodev",
				"mount points and /etc files in /udi/upper",
				"overlay on /udi MS_NOSUID|MS_NODEV lowerdir=lower,upperdir=upper,workdir=work",
				"bind /proc on /proc rec nosuid,nodev,noexec private",
				"bind /sys on /sys rec nosuid,nodev,noexec private",
				"bind /dev on /dev rec nosuid private",
				"bind /tmp on /tmp nosuid,nodev private optional rec-in-userns",
				"bind /var/tmp on /var/tmp nosuid,nodev private optional rec-in-userns",
				"bind volume 0 on /data rec ro,nosuid,nodev private user",
				tail,
			},
		},
		{
			name:    "local root",
			cfg:     initConfig{UDIMount: "/udi", LocalRoot: "/srv/root"},
			hostHas: noVarTmp,
			want: append([]string{
				"tmpfs on /udi MS_NOSUID|MS_NODEV mode=0755, mkdir lower upper work",
				"image local /srv/root on /udi/lower ro,nosuid,nodev rec",
			}, append(slices.Clone(head[2:]), tail)...),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, o := range planRoot(&tc.cfg, tc.hostHas) {
				got = append(got, o.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
