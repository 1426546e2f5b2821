// SPDX-License-Identifier: BSD-3-Clause

package flatten

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

type tent struct {
	name string
	typ  byte
	body string
	link string
	pax  map[string]string
}

func mkTar(t testing.TB, ents ...tent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o644, PAXRecords: e.pax}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	return buf.Bytes()
}

func bytesLayer(b []byte) Layer {
	return LayerFunc(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// flattenBytes runs both passes over tar layers and returns the output.
func flattenBytes(t testing.TB, opts Options, layers ...[]byte) ([]byte, error) {
	var ls []Layer
	for _, b := range layers {
		ls = append(ls, bytesLayer(b))
	}
	tree, err := Index(context.Background(), ls, opts)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := tree.WriteTo(context.Background(), &out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// rawHeader returns a ustar header block with a raw size field.
func rawHeader(name, size string) []byte {
	b := make([]byte, 512)
	copy(b, name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], size)
	copy(b[136:], "00000000000\x00")
	b[156] = '0'
	copy(b[257:], "ustar\x0000")
	copy(b[148:], "        ")
	var sum int
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return append(b, make([]byte, 1024)...)
}

// bigPAXTar writes a PAX extended header of any size by hand (Go's
// writer refuses more than 1 MiB).
func bigPAXTar(recs map[string]string) []byte {
	var body string
	for k, v := range recs {
		rec := " " + k + "=" + v + "\n"
		n := len(rec)
		for len(fmt.Sprint(n+len(fmt.Sprint(n)))) != len(fmt.Sprint(n)) {
			n++
		}
		n += len(fmt.Sprint(n + len(fmt.Sprint(n))))
		body += fmt.Sprint(n) + rec
	}
	h := rawHeader("PaxHeaders/x", fmt.Sprintf("%011o\x00", len(body)))[:512]
	h[156] = 'x'
	copy(h[148:], "        ")
	var sum int
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	b := append([]byte{}, h...)
	b = append(b, body...)
	b = append(b, make([]byte, (512-len(body)%512)%512)...)
	return append(b, rawHeader("x", "00000000000\x00")...)
}

func TestLimits(t *testing.T) {
	many := make([]tent, 200)
	for i := range many {
		many[i] = tent{name: fmt.Sprintf("f%d", i)}
	}
	whiteouts := make([]tent, 200)
	for i := range whiteouts {
		whiteouts[i] = tent{name: fmt.Sprintf(".wh.f%d", i)}
	}
	bigPAX := map[string]string{"SCHILY.xattr.user.big": strings.Repeat("x", 2<<20)}
	cases := []struct {
		name    string
		opts    Options
		layers  [][]byte
		wantErr error
	}{
		{"too many entries", Options{MaxEntries: 100}, [][]byte{mkTar(t, many...)}, ErrTooLarge},
		{"too many entries counting whiteouts", Options{MaxEntries: 300}, [][]byte{mkTar(t, many...), mkTar(t, whiteouts...)}, ErrTooLarge},
		{"entries within the limit", Options{MaxEntries: 400}, [][]byte{mkTar(t, many...), mkTar(t, whiteouts...)}, nil},
		{"layer bytes over the limit", Options{MaxSize: 64 << 10}, [][]byte{mkTar(t, tent{name: "big", body: strings.Repeat("z", 100<<10)})}, ErrTooLarge},
		{"flattened size over the limit", Options{MaxSize: 100 << 10}, [][]byte{
			mkTar(t, tent{name: "a", body: strings.Repeat("z", 60<<10)}),
			mkTar(t, tent{name: "b", body: strings.Repeat("z", 60<<10)}),
		}, ErrTooLarge},
		{"header memory over the limit", Options{MaxHeaderBytes: 10 << 10}, [][]byte{mkTar(t, many...)}, ErrTooLarge},
		{"PAX header over 1 MiB", Options{}, [][]byte{bigPAXTar(bigPAX)}, ErrFormat},
		{"negative size", Options{}, [][]byte{rawHeader("neg", "-0000000001\x00")}, ErrFormat},
		{"overflowing size", Options{}, [][]byte{rawHeader("huge", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")}, ErrFormat},
		{"garbage", Options{}, [][]byte{bytes.Repeat([]byte("garbage!"), 200)}, ErrFormat},
		{"empty layer", Options{}, [][]byte{{}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := flattenBytes(t, tc.opts, tc.layers...)
			t.Logf("flatten: %v", err)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("flatten: %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("flatten error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// checkOutput reads a flattened tar and checks the invariants mksquashfs
// relies on: clean unique names, parents before children, hard links
// after their target, no device nodes.
func checkOutput(t testing.TB, out []byte) {
	tr := tar.NewReader(bytes.NewReader(out))
	seen := map[string]byte{"": tar.TypeDir}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("output is not a valid tar: %v", err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		for k := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, xattrPrefix); ok && overlayXattr(x) {
				t.Fatalf("%q carries xattr %q", name, x)
			}
		}
		comps, ok := splitName(name)
		if !ok || strings.Join(comps, "/") != name || name == "" {
			t.Fatalf("output name %q is not clean", h.Name)
		}
		if _, dup := seen[name]; dup {
			t.Fatalf("output name %q twice", name)
		}
		parent := ""
		if i := strings.LastIndex(name, "/"); i >= 0 {
			parent = name[:i]
		}
		if seen[parent] != tar.TypeDir {
			t.Fatalf("%q comes before its parent directory", name)
		}
		switch h.Typeflag {
		case tar.TypeChar, tar.TypeBlock:
			t.Fatalf("device node %q in output", name)
		case tar.TypeLink:
			if lt := seen[h.Linkname]; lt != tar.TypeReg && lt != tar.TypeSymlink && lt != tar.TypeFifo {
				t.Fatalf("hard link %q to %q, which is not an earlier file, symlink or fifo", name, h.Linkname)
			}
		case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeFifo:
		default:
			t.Fatalf("unexpected type %q for %q", h.Typeflag, name)
		}
		seen[name] = h.Typeflag
	}
}

func TestOutputOrder(t *testing.T) {
	out, err := flattenBytes(t, Options{},
		mkTar(t, tent{name: "z/file", body: "z"}, tent{name: "a", body: "a"}, tent{name: "dev/null", typ: tar.TypeChar}),
		mkTar(t, tent{name: "b/c/link", typ: tar.TypeLink, link: "z/file"}, tent{name: "./z/.wh.file"}, tent{name: "z/../../esc", body: "x"}),
		mkTar(t, tent{name: "y", typ: tar.TypeLink, link: "b/c/link"}, tent{name: "a", typ: tar.TypeDir}),
	)
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out)
	var names []string
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, fmt.Sprintf("%c %s %s", h.Typeflag, h.Name, h.Linkname))
	}
	want := "5 a/ |5 b/ |5 b/c/ |5 z/ |0 b/c/link |1 y b/c/link"
	if got := strings.Join(names, "|"); got != want {
		t.Errorf("output entries = %q, want %q", got, want)
	}
}

// TestHardLinkToSymlink is issue 17 item 7: a hard link to a symlink
// (or a fifo) was dropped; like link(2) it names the symlink itself, not
// what it points to. The output carries the symlink once, under its first
// name in output order, and hard links for the others.
func TestHardLinkToSymlink(t *testing.T) {
	out, err := flattenBytes(t, Options{},
		mkTar(t, tent{name: "t", body: "x"}, tent{name: "s", typ: tar.TypeSymlink, link: "t"},
			tent{name: "d", typ: tar.TypeSymlink, link: "dir"}, tent{name: "dir/", typ: tar.TypeDir},
			tent{name: "p", typ: tar.TypeFifo}),
		mkTar(t, tent{name: "b/h", typ: tar.TypeLink, link: "s"}, tent{name: "a", typ: tar.TypeLink, link: "./s"},
			tent{name: "q", typ: tar.TypeLink, link: "p"}, tent{name: "dl", typ: tar.TypeLink, link: "d"},
			tent{name: "dir/x", typ: tar.TypeLink, link: "dir"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out)
	var names []string
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, fmt.Sprintf("%c %s %s", h.Typeflag, h.Name, h.Linkname))
	}
	want := "2 a t|5 b/ |1 b/h a|2 d dir|5 dir/ |1 dl d|6 p |1 q p|1 s a|0 t "
	if got := strings.Join(names, "|"); got != want {
		t.Errorf("output entries = %q, want %q", got, want)
	}
}

// TestStripOverlayXattrs is issue 17 item 7: trusted.* and *.overlay.*
// xattrs from layers reached the squashfs, which the runtime mounts as an
// overlayfs lower layer (trusted.overlay.opaque would hide directories,
// redirects would point elsewhere).
func TestStripOverlayXattrs(t *testing.T) {
	bad := map[string]string{
		"SCHILY.xattr.trusted.overlay.opaque":   "y",
		"SCHILY.xattr.trusted.overlay.redirect": "/etc",
		"SCHILY.xattr.user.overlay.opaque":      "y",
		"SCHILY.xattr.user.overlay.metacopy":    "m",
		"SCHILY.xattr.trusted.other":            "x",
		"SCHILY.xattr.user.keep":                "v",
		"SCHILY.xattr.security.capability":      "\x01\x00\x00\x02",
		"SCHILY.xattr.user.overlayish":          "kept: not the overlay. prefix",
	}
	out, err := flattenBytes(t, Options{},
		mkTar(t, tent{name: "d/", typ: tar.TypeDir, pax: bad}, tent{name: "d/f", body: "x", pax: bad},
			tent{name: "s", typ: tar.TypeSymlink, link: "d", pax: bad}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"SCHILY.xattr.user.keep": "v", "SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
		"SCHILY.xattr.user.overlayish": "kept: not the overlay. prefix"}
	tr := tar.NewReader(bytes.NewReader(out))
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		got := map[string]string{}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				got[k] = v
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: xattrs %v, want %v", h.Name, got, want)
		}
	}
	if n != 3 {
		t.Errorf("output has %d entries, want 3", n)
	}
}

func FuzzFlatten(f *testing.F) {
	f.Add(mkTar(f, tent{name: "a", body: "x"}, tent{name: "b", typ: tar.TypeLink, link: "a"}))
	f.Add(mkTar(f, tent{name: "s", typ: tar.TypeSymlink, link: "/etc"}, tent{name: "h", typ: tar.TypeLink, link: "s"},
		tent{name: "p", typ: tar.TypeFifo}, tent{name: "a/q", typ: tar.TypeLink, link: "p"}, tent{name: ".wh.s"}))
	f.Add(mkTar(f, tent{name: "../x", body: "x"}, tent{name: "/etc/.wh..wh..opq"}, tent{name: "l", typ: tar.TypeLink, link: "/etc/shadow"}))
	f.Add(mkTar(f, tent{name: "d/", typ: tar.TypeDir}, tent{name: "d/.wh.base"}, tent{name: "s", typ: tar.TypeSymlink, link: "../../.."}, tent{name: "s/x", body: "y"}))
	f.Add(mkTar(f, tent{name: "dev/sda", typ: tar.TypeBlock}, tent{name: "x", pax: map[string]string{"SCHILY.xattr.user.a": "b"}}))
	f.Add(mkTar(f, tent{name: "o/", typ: tar.TypeDir, pax: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y",
		"SCHILY.xattr.user.overlay.redirect": "/etc", "SCHILY.xattr.trusted.x": "1"}}))
	f.Add([]byte{})
	base := mkTar(f, tent{name: "etc/", typ: tar.TypeDir}, tent{name: "etc/shadow", body: "s"}, tent{name: "base", body: "b"},
		tent{name: "lnk", typ: tar.TypeSymlink, link: "/etc"}, tent{name: "hl", typ: tar.TypeLink, link: "base"})
	f.Fuzz(func(t *testing.T, layer []byte) {
		out, err := flattenBytes(t, Options{MaxEntries: 10000, MaxSize: 16 << 20}, base, layer, layer)
		if err != nil {
			return
		}
		checkOutput(t, out)
	})
}
