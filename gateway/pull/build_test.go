// SPDX-License-Identifier: BSD-3-Clause

package pull

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/shifter-go/shifter/internal/testutil"
	"golang.org/x/sys/unix"
)

// buildImage resolves and builds ref with p into a temporary squashfs and
// returns its path and metadata.
func buildImage(t *testing.T, p *Puller, ref string) (string, *imagestore.Metadata, error) {
	t.Helper()
	testutil.RequireTool(t, "mksquashfs")
	r, err := p.Resolve(context.Background(), ref, nil)
	if err != nil {
		return "", nil, err
	}
	out, err := imagestore.CreateTemp(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	m, err := p.Build(context.Background(), r, out, nil)
	return out.Name(), m, err
}

func withMode(e ent, mode int64, uid, gid int) ent {
	e.mode, e.uid, e.gid = mode, uid, gid
	return e
}

func withXattr(e ent, k, v string) ent {
	e.xattrs = map[string]string{k: v}
	return e
}

// TestBuildLayers builds images from hand-made layers and compares the
// squashfs, extracted by the real unsquashfs, with the same layers applied
// one by one onto a directory by the reference applier.
func TestBuildLayers(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "unsquashfs")
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	longDir := strings.Repeat("d", 90) + "/" + strings.Repeat("e", 90) + "/" + strings.Repeat("f", 90)
	cases := []struct {
		name   string
		layers [][]ent
	}{
		{"basic attributes", [][]ent{{
			dir("etc"), withMode(dir("home"), 0o700, 1000, 1000),
			withMode(file("etc/passwd", "root:x:0:0\n"), 0o644, 0, 0),
			withMode(file("home/run.sh", "#!/bin/sh\n"), 0o4755, 1000, 100),
			withMode(file("sticky", ""), 0o1777, 0, 0),
			symlink("etc/abs", "/etc/passwd"), symlink("rel", "etc/passwd"), symlink("dangling", "nowhere/x"),
			withXattr(file("xattr", "x"), "user.test", "value"),
			file("big", big),
			{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
		}}},
		{"implicit parents", [][]ent{{file("a/b/c/d", "deep")}, {file("a/b/e", "e")}}},
		{"whiteout", [][]ent{
			{dir("a"), file("a/x", "x"), file("a/y", "y"), dir("a/sub"), file("a/sub/z", "z")},
			{whiteout("a", "x"), whiteout("a", "sub")},
		}},
		{"whiteout then recreate", [][]ent{
			{file("a", "old")}, {whiteout("", "a")}, {file("a", "new")},
		}},
		{"opaque dir", [][]ent{
			{dir("d"), file("d/a", "a"), dir("d/sub"), file("d/sub/c", "c"), file("keep", "k")},
			{dir("d"), opaque("d"), file("d/new", "n")},
		}},
		{"opaque marker after same-layer files", [][]ent{
			{dir("d"), file("d/a", "a"), file("d/b", "b")},
			{file("d/new", "n"), dir("d/newdir"), file("d/newdir/x", "x"), opaque("d")},
		}},
		{"opaque dir with re-declared lower subdir", [][]ent{
			{dir("d"), dir("d/sub"), file("d/sub/old", "o"), dir("d/sub/deeper"), file("d/sub/deeper/x", "x"), file("d/top", "t")},
			{dir("d/"), dir("d/sub"), file("d/sub/new", "n"), opaque("d")},
		}},
		{"whiteout inside opaque dir", [][]ent{
			{dir("d"), file("d/a", "a"), file("d/b", "b"), dir("e"), file("e/f", "f")},
			{opaque("d"), file("d/c", "c"), whiteout("d", "a"), whiteout("e", "f")},
		}},
		{"file replaces dir", [][]ent{
			{dir("p"), dir("p/q"), file("p/q/r", "r")},
			{file("p", "now a file")},
		}},
		{"dir replaces file", [][]ent{
			{file("z", "file"), symlink("s", "z")},
			{dir("z"), file("z/k", "k"), dir("s"), file("s/t", "t")},
		}},
		{"hard link same layer", [][]ent{
			{file("t", "target"), hardlink("l", "t"), hardlink("./l2", "./t")},
		}},
		{"hard link across layers", [][]ent{
			{dir("bin"), withMode(file("bin/busybox", "bb"), 0o755, 0, 0)},
			{hardlink("bin/sh", "bin/busybox"), hardlink("bin/ls", "/bin/busybox")},
		}},
		{"hard link target removed later", [][]ent{
			{file("t", "content"), file("other", "o")},
			{hardlink("l", "t")},
			{whiteout("", "t")},
		}},
		{"hard link target replaced later", [][]ent{
			{file("t", "old content")},
			{hardlink("l", "t")},
			{file("t", "new content")},
		}},
		{"hard link to a symlink", [][]ent{
			{file("t", "target"), symlink("s", "t"), hardlink("h", "s"), symlink("abs", "/t"), symlink("dir", "sub"), dir("sub")},
			{hardlink("h2", "abs"), hardlink("sub/h3", "s"), hardlink("h4", "dir")},
		}},
		{"hard link to a symlink that is removed later", [][]ent{
			{symlink("s", "nowhere"), hardlink("h", "s")}, {whiteout("", "s")},
		}},
		{"hard link to a fifo", [][]ent{
			{{name: "p", typ: tar.TypeFifo, mode: 0o600}, hardlink("q", "p")},
		}},
		{"hard link chain", [][]ent{
			{file("a", "x")}, {hardlink("b", "a")}, {hardlink("c", "b"), whiteout("", "a")},
		}},
		{"long pax names", [][]ent{
			{dir(longDir[:90]), file(longDir+"/file-with-a-long-name-"+strings.Repeat("n", 120), "long"),
				symlink("longlink", longDir+"/"+strings.Repeat("t", 150))},
		}},
		{"foo..bar is fine", [][]ent{{file("foo..bar", "ok"), dir("a..b"), file("a..b/..c", "ok")}}},
	}
	host := testRegistry(t, nil)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mt := types.DockerManifestSchema2
			if i%2 == 1 {
				mt = types.OCIManifestSchema1
			}
			ref := fmt.Sprintf("%s/layers/case%d:1", host, i)
			push(t, ref, image(t, mt, v1.Config{}, nil, tc.layers...))
			p := newPuller(t, nil, host)
			sq, _, err := buildImage(t, p, ref)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			want := t.TempDir()
			applyReference(t, want, tc.layers)
			got := describeTree(t, unsquash(t, sq))
			if testing.Verbose() {
				t.Logf("merged tree:\n%s", strings.Join(got, "\n"))
			}
			if diff := cmp.Diff(describeTree(t, want), got); diff != "" {
				t.Errorf("squashfs differs from the reference applier (-want +got):\n%s", diff)
			}
		})
	}
}

// listing returns `unsquashfs -lln` of sq as "mode uid/gid path" lines
// (without sizes and dates), the root excluded.
func listing(t *testing.T, sq string) []string {
	t.Helper()
	b, err := exec.Command("unsquashfs", "-lln", sq).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v\n%s", err, b)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		i := strings.Index(line, "squashfs-root/")
		if i < 0 {
			continue
		}
		out = append(out, f[0][:1]+" "+line[i+len("squashfs-root/"):])
	}
	return out
}

// TestBuildUnsafeLayers feeds attacks to the flattener and checks the
// squashfs listing against hand-written expectations: unsafe names and
// device nodes dropped, links resolved inside the image.
func TestBuildUnsafeLayers(t *testing.T) {
	testutil.RequireTool(t, "unsquashfs")
	cases := []struct {
		name   string
		layers [][]ent
		want   []string // "type path" as unsquashfs -lln prints them
	}{
		{"path traversal", [][]ent{{
			file("../x", "x"), file("/abs", "a"), file("a/../../y", "y"), file("./ok", "ok"),
			file("foo..bar", "fine"), file("..hidden", "fine"), file(".../z", "z"),
		}}, []string{"- ..hidden", "d ...", "- .../z", "- foo..bar", "- ok", "- abs"}},
		{"hard link escapes", [][]ent{
			{dir("etc"), file("etc/shadow", "image's own")},
			{hardlink("in-root", "/etc/shadow"), hardlink("up", "../../etc/shadow"), hardlink("missing", "/etc/passwd"),
				hardlink("todir", "etc"), hardlink("dotdot", "a/../../x")},
		}, []string{"d etc", "- etc/shadow", "- in-root"}},
		{"device nodes dropped", [][]ent{{
			dir("dev"), {name: "dev/null", typ: tar.TypeChar, mode: 0o666}, {name: "dev/sda", typ: tar.TypeBlock, mode: 0o660},
			file("dev/keep", "k"),
		}}, []string{"d dev", "- dev/keep"}},
		{"whiteouts of dot names", [][]ent{
			{dir("a"), file("a/x", "x"), file("b", "b")},
			{file("a/.wh..", ""), file("a/.wh.", ""), file("a/.wh...", ""), file(".wh..", ""), file("a/.wh..wh.plnk", "")},
		}, []string{"d a", "- a/x", "- b"}},
		{"whiteout with dotdot dir part", [][]ent{
			{dir("a"), file("a/x", "x"), file("secret", "s")},
			{file("a/../.wh.secret", ""), file("a/../../.wh.secret", "")},
		}, []string{"d a", "- a/x", "- secret"}},
		{"symlink parents stay in the image", [][]ent{
			{symlink("escape", "../../../../tmp"), symlink("root", "/"), dir("usr"), dir("usr/lib"), symlink("lib", "usr/lib")},
			{file("escape/pwned", "p"), file("root/etc/x", "x"), file("lib/libc.so", "c")},
		}, []string{"d escape", "- escape/pwned", "d etc", "- etc/x", "l lib -> usr/lib", "l root -> /", "d usr", "d usr/lib", "- usr/lib/libc.so"}},
	}
	host := testRegistry(t, nil)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := fmt.Sprintf("%s/unsafe/case%d:1", host, i)
			push(t, ref, image(t, types.OCIManifestSchema1, v1.Config{}, nil, tc.layers...))
			p := newPuller(t, nil, host)
			sq, _, err := buildImage(t, p, ref)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			got := listing(t, sq)
			want := append([]string(nil), tc.want...)
			sortStrings(want)
			sortStrings(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("unsquashfs -lln (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBuildStripsOverlayXattrs is issue 17 item 7: trusted.* and
// *.overlay.* xattrs of layer entries reached the squashfs, which the
// runtime mounts as an overlayfs lower layer. The image extracted by the
// real unsquashfs (as root, so trusted.* would be restored) has only the
// harmless ones.
func TestBuildStripsOverlayXattrs(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "unsquashfs")
	bad := map[string]string{
		"trusted.overlay.opaque": "y", "trusted.overlay.redirect": "/etc", "user.overlay.opaque": "y",
		"user.overlay.origin": "o", "trusted.other": "x", "user.keep": "v",
	}
	host := testRegistry(t, nil)
	ref := host + "/xattrs:1"
	push(t, ref, image(t, types.OCIManifestSchema1, v1.Config{}, nil,
		[]ent{{name: "d", typ: tar.TypeDir, mode: 0o755, xattrs: bad}, {name: "d/f", typ: tar.TypeReg, body: "f", mode: 0o644, xattrs: bad}},
		[]ent{{name: "e", typ: tar.TypeDir, mode: 0o755, xattrs: bad}, opaque("e"), {name: "e/g", typ: tar.TypeReg, body: "g", mode: 0o644, xattrs: bad}}))
	p := newPuller(t, nil, host)
	sq, _, err := buildImage(t, p, ref)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	root := unsquash(t, sq)
	var got []string
	for _, rel := range []string{"d", "d/f", "e", "e/g"} {
		path := filepath.Join(root, rel)
		sz, err := unix.Llistxattr(path, nil)
		if err != nil {
			t.Fatalf("listxattr %s: %v", rel, err)
		}
		buf := make([]byte, sz)
		n, _ := unix.Llistxattr(path, buf)
		for _, k := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
			if k != "" {
				got = append(got, rel+" "+k)
			}
		}
	}
	slices.Sort(got)
	want := []string{"d user.keep", "d/f user.keep", "e user.keep", "e/g user.keep"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("xattrs in the extracted image (-want +got):\n%s", diff)
	}
}

func sortStrings(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if bytes.Compare([]byte(s[j][2:]), []byte(s[i][2:])) < 0 {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

func TestBuildProgressAndMetadata(t *testing.T) {
	host := testRegistry(t, nil)
	cfg := v1.Config{Env: []string{"A=1", "=bad", "PATH=/bin"}, Entrypoint: []string{"/init"}, Cmd: []string{"sh"},
		WorkingDir: "/w", User: "nobody", Labels: map[string]string{"k": "v"}}
	img := image(t, types.DockerManifestSchema2, cfg, nil,
		[]ent{dir("w"), file("w/data", strings.Repeat("d", 300<<10))}, []ent{file("x", "x")})
	push(t, host+"/progress:1", img)
	p := newPuller(t, nil, host)
	r, err := p.Resolve(context.Background(), host+"/progress:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := imagestore.CreateTemp(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	type call struct {
		state       string
		done, total int64
	}
	var calls []call
	m, err := p.Build(context.Background(), r, out, func(state, msg string, done, total int64) {
		calls = append(calls, call{state, done, total})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &imagestore.Metadata{ID: r.ID, Format: "squashfs", Env: []string{"A=1", "PATH=/bin"}, Entrypoint: cfg.Entrypoint,
		Cmd: cfg.Cmd, WorkDir: "/w", User: "nobody", Labels: cfg.Labels, Created: m.Created}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("Build metadata (-want +got):\n%s", diff)
	}
	var sawPull, sawConv bool
	for _, c := range calls {
		switch c.state {
		case StatePulling:
			sawPull = true
			if sawConv {
				t.Errorf("PULLING after CONVERSION: %v", calls)
			}
			if c.done > c.total || c.total != r.Size {
				t.Errorf("PULLING progress %d/%d, total want %d", c.done, c.total, r.Size)
			}
		case StateConversion:
			sawConv = true
		default:
			t.Errorf("unexpected state %q", c.state)
		}
	}
	last := calls[len(calls)-1]
	if !sawPull || !sawConv || last.state != StateConversion || last.done == 0 || last.done > last.total {
		t.Errorf("progress calls = %v", calls)
	}
	// The file is a squashfs the real tool reads.
	if got := listing(t, out.Name()); !cmp.Equal(got, []string{"d w", "- w/data", "- x"}) {
		t.Errorf("unsquashfs -lln = %v", got)
	}
}
