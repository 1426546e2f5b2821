// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseVolumes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []Volume
		bad  bool
	}{
		{"one", "/a:/b", []Volume{{Source: "/a", Dest: "/b"}}, false},
		{"ro", "/a:/b:ro", []Volume{{Source: "/a", Dest: "/b", ReadOnly: true}}, false},
		{"RO-case", "/a:/b:RO", []Volume{{Source: "/a", Dest: "/b", ReadOnly: true}}, false},
		{"rec", "/a:/b:rec:ro", []Volume{{Source: "/a", Dest: "/b", ReadOnly: true, Recursive: true}}, false},
		{"several", "/a:/b;/c:/d:ro", []Volume{{Source: "/a", Dest: "/b"}, {Source: "/c", Dest: "/d", ReadOnly: true}}, false},
		{"empty-entries", ";/a:/b;;", []Volume{{Source: "/a", Dest: "/b"}}, false},
		{"quoted", `"/a:/b:ro"`, []Volume{{Source: "/a", Dest: "/b", ReadOnly: true}}, false},
		{"cleaned", "/a//x/:/b/./c/", []Volume{{Source: "/a/x", Dest: "/b/c"}}, false},
		{"var-tmp", "/a:/var/tmp", []Volume{{Source: "/a", Dest: "/var/tmp"}}, false},
		{"under-var-tmp", "/a:/var/tmp/x", []Volume{{Source: "/a", Dest: "/var/tmp/x"}}, false},
		{"opt-sub", "/a:/opt/x", []Volume{{Source: "/a", Dest: "/opt/x"}}, false},
		{"etc-prefix-name", "/a:/etcetera", []Volume{{Source: "/a", Dest: "/etcetera"}}, false},
		{"nothing", "", nil, false},
		{"no-dest", "/a", nil, true},
		{"empty-dest", "/a:", nil, true},
		{"relative-src", "a:/b", nil, true},
		{"relative-dest", "/a:b", nil, true},
		{"dotdot-src", "/a/../etc:/b", nil, true},
		{"etc", "/a:/etc", nil, true},
		{"dot-etc", "/a:/./etc", nil, true},
		{"slash-slash-etc", "/a://etc", nil, true},
		{"var-dotdot-etc", "/a:/var/../etc", nil, true},
		{"etc-sub", "/a:/etc/x", nil, true},
		{"etc-trailing", "/a:/etc/", nil, true},
		{"var", "/a:/var", nil, true},
		{"var-lib", "/a:/var/lib", nil, true},
		{"var-tmp-dotdot", "/a:/var/tmp/../lib", nil, true},
		{"opt", "/a:/opt", nil, true},
		{"opt-udiImage", "/a:/opt/udiImage", nil, true},
		{"opt-udiImage-sub", "/a:/opt/udiImage/x", nil, true},
		{"proc", "/a:/proc", nil, true},
		{"sys", "/a:/sys/fs", nil, true},
		{"dev", "/a:/dev/shm", nil, true},
		{"root", "/a:/", nil, true},
		{"root-dot", "/a:/.", nil, true},
		{"unknown-flag", "/a:/b:rw", nil, true},
		{"slave-user", "/a:/b:slave", nil, true},
		{"dup-flag", "/a:/b:ro:ro", nil, true},
		{"perNodeCache", "/a:/b:perNodeCache=size=10G", []Volume{{Source: "/a", Dest: "/b", PerNodeCache: &PerNodeCache{Size: 10 << 30, BlockSize: 1 << 20, Method: "loop", FsType: "xfs"}}}, false},
		{"perNodeCache-all", "/x:/cache:PERNODECACHE=SIZE=1.5g,BS=4k,Method=LOOP,FS=XFS", []Volume{{Source: "/x", Dest: "/cache", PerNodeCache: &PerNodeCache{Size: 3 << 29, BlockSize: 4096, Method: "loop", FsType: "xfs"}}}, false},
		{"perNodeCache-ro", "/a:/b:ro:perNodeCache=size=1G", nil, true},
		{"perNodeCache-etc", "/a:/etc/x:perNodeCache=size=1G", nil, true},
		{"perNodeCache-bad", "/a:/b:perNodeCache=size=0", nil, true},
		{"newline", "/a\n:/b", nil, true},
		{"one-bad-of-two", "/a:/b;/c:/etc", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVolumes(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrBadVolume) {
					t.Fatalf("ParseVolumes(%q) = %v, %v, want ErrBadVolume", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseVolumes(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseVolumes(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestParseSiteVolumes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []Volume
		bad  bool
	}{
		{"same-path", "/global", []Volume{{Source: "/global", Dest: "/global", Site: true}}, false},
		{"slave", "/g:/g:slave", []Volume{{Source: "/g", Dest: "/g", Site: true, Propagation: "slave"}}, false},
		{"private-rec-ro", "/g:/h:private:rec:ro", []Volume{{Source: "/g", Dest: "/h", Site: true, Propagation: "private", Recursive: true, ReadOnly: true}}, false},
		{"var-lib-ok", "/x:/var/lib/x", []Volume{{Source: "/x", Dest: "/var/lib/x", Site: true}}, false},
		{"dev-ok", "/dev/infiniband:/dev/infiniband", []Volume{{Source: "/dev/infiniband", Dest: "/dev/infiniband", Site: true}}, false},
		{"slave-private", "/g:/g:slave:private", nil, true},
		{"etc", "/x:/etc", nil, true},
		{"passwd", "/x:/etc/passwd", nil, true},
		{"group", "/x:/etc/group", nil, true},
		{"nsswitch", "/x:/etc/nsswitch.conf", nil, true},
		{"opt", "/x:/opt", nil, true},
		{"var", "/x:/var", nil, true},
		{"root", "/", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSiteVolumes(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrBadVolume) {
					t.Fatalf("ParseSiteVolumes(%q) = %v, %v, want ErrBadVolume", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSiteVolumes(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseSiteVolumes(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestParsePerNodeCache(t *testing.T) {
	def := func(size int64) *PerNodeCache {
		return &PerNodeCache{Size: size, BlockSize: 1 << 20, Method: "loop", FsType: "xfs"}
	}
	for _, tc := range []struct {
		in   string
		want *PerNodeCache // nil: an error
	}{
		{"size=104857600", def(100 << 20)},
		{"size=10G", def(10 << 30)},
		{"size=10g", def(10 << 30)},
		{"SIZE=2t", def(2 << 40)},
		{"size=512", def(512)},
		{"size=512b", def(512)},
		{"size=1k", def(1024)},
		{"size=1.5m", def(3 << 19)},
		{"size=1G,", def(1 << 30)},
		{"size=1G,,method=loop", def(1 << 30)},
		{"size=1G,bs=4096,method=loop,fs=xfs", &PerNodeCache{Size: 1 << 30, BlockSize: 4096, Method: "loop", FsType: "xfs"}},
		{"fs=ext4,size=64M", &PerNodeCache{Size: 64 << 20, BlockSize: 1 << 20, Method: "loop", FsType: "ext4"}},
		{"size=64M,fstype=EXT4", &PerNodeCache{Size: 64 << 20, BlockSize: 1 << 20, Method: "loop", FsType: "ext4"}},
		{"size=1G,FsType=xfs", def(1 << 30)},
		{"", nil},
		{"bs=1M", nil},
		{"size", nil},
		{"size=", nil},
		{"size=0", nil},
		{"size=0G", nil},
		{"size=-1", nil},
		{"size=-1G", nil},
		{"size=ten", nil},
		{"size=10x", nil},
		{"size=10gb", nil},
		{"size=0x10", nil},
		{"size=NaN", nil},
		{"size=inf", nil},
		{"size=1e30e", nil},
		{"size=100000000000e", nil},
		{"size=1G,size=2G", nil},
		{"size=1G,bs=0", nil},
		{"size=1G,bs=-4k", nil},
		{"size=1G,method=nbd", nil},
		{"size=1G,fs=btrfs", nil},
		{"size=1G,fs=xfs,fstype=ext4", nil},
		{"size=1G,fs=", nil},
		{"size=1G,mode=0777", nil},
		{"size=1G,=x", nil},
	} {
		got, err := ParsePerNodeCache(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("ParsePerNodeCache(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePerNodeCache(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParsePerNodeCache(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

// TestCheckUserDestResolved: the rules applied to where a destination
// resolves, after symlinks, are the same as the lexical ones.
func TestCheckUserDest(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"/data", true}, {"/etcx", true}, {"/var/tmp", true}, {"/optx", true}, {"/opt/app", true},
		{"/etc", false}, {"/etc/passwd", false}, {"/var", false}, {"/var/spool", false},
		{"/opt", false}, {"/opt/udiImage", false}, {"/proc/1", false}, {"/sys", false},
		{"/dev", false}, {"/", false}, {"/a/../etc", false}, {"relative", false},
	} {
		if err := CheckUserDest(tc.p); (err == nil) != tc.ok {
			t.Errorf("CheckUserDest(%q) = %v, want ok %v", tc.p, err, tc.ok)
		}
	}
}
