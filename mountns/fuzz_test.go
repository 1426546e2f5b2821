// SPDX-License-Identifier: BSD-3-Clause

package mountns

import (
	"errors"
	"path"
	"strings"
	"testing"
)

// FuzzParseVolumes checks that any --volume string either parses into
// volumes that obey the user destination rules, or fails with ErrBadVolume.
func FuzzParseVolumes(f *testing.F) {
	for _, s := range []string{
		"/home/u/d:/d", "/a:/b:ro", "/a:/b:ro:rec", "/a:/etc", "/a:/./etc", "/a://etc",
		"/a:/var/../etc", "/a:/var/tmp/x", "/a:/opt/udiImage/x", "/a:/opt", "\"/a:/b\";/c:/d:RO",
		"/a:/b:perNodeCache=size=1G", "/x:/cache:perNodeCache=size=10G,bs=1M,method=loop,fs=xfs",
		"/x:/c:PERNODECACHE=Size=1.5g,FSTYPE=ext4", "/x:/c:perNodeCache=size=-1", "/x:/c:perNodeCache=size=1G,,",
		"/a:/b:slave", "a:/b", "/a:b", "/a:/b:ro:ro", ";;", "/a:/\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vols, err := ParseVolumes(s)
		if err != nil {
			if !errors.Is(err, ErrBadVolume) {
				t.Fatalf("ParseVolumes(%q) error %v does not wrap ErrBadVolume", s, err)
			}
			return
		}
		for _, v := range vols {
			for _, p := range []string{v.Source, v.Dest} {
				if !strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.ContainsAny(p, "\x00\n") {
					t.Fatalf("ParseVolumes(%q) gave unclean path %q", s, p)
				}
			}
			if err := CheckUserDest(v.Dest); err != nil {
				t.Fatalf("ParseVolumes(%q) accepted forbidden destination %q: %v", s, v.Dest, err)
			}
			if v.Site || v.Propagation != "" {
				t.Fatalf("ParseVolumes(%q) gave a site-only volume %+v", s, v)
			}
			if c := v.PerNodeCache; c != nil && (c.Size <= 0 || c.BlockSize <= 0 || c.Method != "loop" || (c.FsType != "xfs" && c.FsType != "ext4") || v.ReadOnly) {
				t.Fatalf("ParseVolumes(%q) gave a bad perNodeCache volume %+v %+v", s, v, *c)
			}
		}
	})
}
