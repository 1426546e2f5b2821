// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shifter-go/shifter/internal/sqtest"
	"github.com/shifter-go/shifter/internal/testutil"
	"golang.org/x/sys/unix"
)

// The feature trees are made once per test process.
var (
	treeMu   sync.Mutex
	treeDirs []string
	trees    = map[bool]*sqtest.Tree{}
)

// openLookup opens the image file img with opts (closed when the test
// ends) and looks up path in it.
func openLookup(t testing.TB, img string, opts *Options, path string) (*Reader, *Inode) {
	t.Helper()
	r, err := OpenFile(img, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	in, err := r.LookupPath(path)
	if err != nil {
		t.Fatal(err)
	}
	return r, in
}

// featureTree returns the full (small=false) or the small feature tree.
func featureTree(t *testing.T, small bool) *sqtest.Tree {
	t.Helper()
	treeMu.Lock()
	defer treeMu.Unlock()
	if tr := trees[small]; tr != nil {
		return tr
	}
	d, err := os.MkdirTemp("", "squashreader-tree-")
	if err != nil {
		t.Fatal(err)
	}
	treeDirs = append(treeDirs, d)
	tr := sqtest.MakeFeatureTree(t, d, sqtest.TreeOptions{Small: small})
	trees[small] = tr
	return tr
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range treeDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// walkInodes returns every inode of r by path ("squashfs-root" is the root,
// as unsquashfs names it), walking with the inode-level API.
func walkInodes(t testing.TB, r *Reader) map[string]*Inode {
	t.Helper()
	root, err := r.Root()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*Inode{"squashfs-root": root}
	var walk func(dir *Inode, p string, depth int)
	walk = func(dir *Inode, p string, depth int) {
		if depth > 100 {
			t.Fatalf("%s: too deep", p)
		}
		ents, err := r.ReadDir(dir, 0, 0)
		if err != nil {
			t.Fatalf("ReadDir(%s): %v", p, err)
		}
		for _, e := range ents {
			in, err := r.Inode(e.Ref)
			if err != nil {
				t.Fatalf("Inode(%s/%s): %v", p, e.Name, err)
			}
			if in.Type != e.Type || in.Ino != e.Ino {
				t.Errorf("%s/%s: entry type %s ino %d, inode type %s ino %d", p, e.Name, e.Type, e.Ino, in.Type, in.Ino)
			}
			cp := p + "/" + e.Name
			out[cp] = in
			if in.Type == TypeDir {
				walk(in, cp, depth+1)
			}
		}
	}
	walk(root, "squashfs-root", 0)
	return out
}

type lsEntry struct {
	mode, owner, size, mtime, target string
}

var lsLine = regexp.MustCompile(`^(\S{10}) (\d+/\d+) +(-?\d+|-?\d+, *-?\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) (.*)$`)

// unsquashfsList parses `unsquashfs -lln` of img.
func unsquashfsList(t testing.TB, img string) map[string]lsEntry {
	t.Helper()
	cmd := exec.Command(testutil.RequireTool(t, "unsquashfs"), "-lln", img)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v", err)
	}
	m := map[string]lsEntry{}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		g := lsLine.FindStringSubmatch(line)
		if g == nil {
			t.Fatalf("unsquashfs -lln: unparsed line %q", line)
		}
		e := lsEntry{mode: g[1], owner: g[2], size: g[3], mtime: g[4]}
		name := g[5]
		if e.mode[0] == 'l' {
			name, e.target, _ = strings.Cut(name, " -> ")
		}
		if e.mode[0] == 'b' || e.mode[0] == 'c' {
			e.size = "" // unsquashfs 4.5 misprints large device numbers; compared with -d
		}
		m[name] = e
	}
	return m
}

func lsMode(in *Inode) string {
	b := []byte("?rwxrwxrwx")
	b[0] = map[Type]byte{TypeDir: 'd', TypeFile: '-', TypeSymlink: 'l', TypeBlockDev: 'b', TypeCharDev: 'c', TypeFifo: 'p', TypeSocket: 's'}[in.Type]
	for i := 0; i < 9; i++ {
		if in.Perm&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(bit uint16, idx int, set, unset byte) {
		if in.Perm&bit != 0 {
			if b[idx] == '-' {
				b[idx] = unset
			} else {
				b[idx] = set
			}
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}

func readerList(ins map[string]*Inode) map[string]lsEntry {
	m := map[string]lsEntry{}
	for p, in := range ins {
		e := lsEntry{
			mode:   lsMode(in),
			owner:  fmt.Sprintf("%d/%d", in.UID, in.GID),
			size:   strconv.FormatUint(in.Size, 10),
			mtime:  time.Unix(in.Mtime, 0).UTC().Format("2006-01-02 15:04"),
			target: in.Target,
		}
		if in.Type == TypeBlockDev || in.Type == TypeCharDev {
			e.size = ""
		}
		m[p] = e
	}
	return m
}

// compareListing checks the reader's view of img against unsquashfs -lln.
func compareListing(t *testing.T, r *Reader, img string) map[string]*Inode {
	t.Helper()
	ins := walkInodes(t, r)
	got, want := readerList(ins), unsquashfsList(t, img)
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: in unsquashfs -lln, not in the reader", p)
			continue
		}
		if g != w {
			t.Errorf("%s: reader %+v, unsquashfs -lln %+v", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: in the reader, not in unsquashfs -lln", p)
		}
	}
	return ins
}

// unsquashfsExtract extracts img into a temporary directory.
func unsquashfsExtract(t *testing.T, img string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "x")
	out, err := exec.Command(testutil.RequireTool(t, "unsquashfs"), "-q", "-n", "-d", dir, img).CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if os.Geteuid() == 0 || !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("unsquashfs -d: %v\n%s", err, out)
		}
	}
	return dir
}

// compareExtracted checks every inode against the tree unsquashfs -d
// extracted: type, permissions, owner (as root), mtime, nlink, size,
// device numbers, symlink target, contents and xattrs.
func compareExtracted(t *testing.T, r *Reader, ins map[string]*Inode, dir string) {
	t.Helper()
	root := os.Geteuid() == 0
	paths := make([]string, 0, len(ins))
	for p := range ins {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	byIno := map[uint32]InodeRef{}
	for _, p := range paths {
		in := ins[p]
		if ref, ok := byIno[in.Ino]; ok && ref != in.Ref {
			t.Errorf("%s: inode number %d shared by refs 0x%x and 0x%x", p, in.Ino, ref, in.Ref)
		}
		byIno[in.Ino] = in.Ref
		host := filepath.Join(dir, strings.TrimPrefix(p, "squashfs-root"))
		var st unix.Stat_t
		if err := unix.Lstat(host, &st); err != nil {
			if !root && (in.Type == TypeCharDev || in.Type == TypeBlockDev) {
				continue
			}
			t.Errorf("%s: lstat extracted: %v", p, err)
			continue
		}
		if st.Mode&unix.S_IFMT != in.UnixMode()&unix.S_IFMT {
			t.Errorf("%s: type 0%o, extracted 0%o", p, in.UnixMode()&unix.S_IFMT, st.Mode&unix.S_IFMT)
			continue
		}
		if in.Type != TypeSymlink && root && uint32(in.Perm) != st.Mode&0o7777 {
			t.Errorf("%s: perm 0%o, extracted 0%o", p, in.Perm, st.Mode&0o7777)
		}
		if root && (in.UID != st.Uid || in.GID != st.Gid) {
			t.Errorf("%s: owner %d/%d, extracted %d/%d", p, in.UID, in.GID, st.Uid, st.Gid)
		}
		if in.Mtime != st.Mtim.Sec {
			t.Errorf("%s: mtime %d, extracted %d", p, in.Mtime, st.Mtim.Sec)
		}
		if uint64(in.Nlink) != st.Nlink && in.Type != TypeDir {
			t.Errorf("%s: nlink %d, extracted %d", p, in.Nlink, st.Nlink)
		}
		switch in.Type {
		case TypeFile:
			if int64(in.Size) != st.Size {
				t.Errorf("%s: size %d, extracted %d", p, in.Size, st.Size)
				continue
			}
			compareContents(t, r, in, host, p)
		case TypeSymlink:
			target, err := os.Readlink(host)
			if err != nil || target != in.Target {
				t.Errorf("%s: target %q, extracted %q (%v)", p, in.Target, target, err)
			}
			if got, _ := r.Readlink(in); got != in.Target {
				t.Errorf("%s: Readlink %q, want %q", p, got, in.Target)
			}
		case TypeCharDev, TypeBlockDev:
			if in.Major() != unix.Major(st.Rdev) || in.Minor() != unix.Minor(st.Rdev) {
				t.Errorf("%s: device %d:%d, extracted %d:%d", p, in.Major(), in.Minor(), unix.Major(st.Rdev), unix.Minor(st.Rdev))
			}
		}
		compareXattrs(t, r, in, host, p, root)
	}
}

func compareContents(t *testing.T, r *Reader, in *Inode, host, p string) {
	t.Helper()
	f, err := os.Open(host)
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return
	}
	defer f.Close()
	// Read in odd-sized chunks, so reads straddle blocks and fragments; a
	// reader with DirectReads gets three blocks and a bit, so that most
	// reads hold whole blocks.
	chunk := int64(100003)
	if r.direct {
		chunk = 3*r.bs + 5003
	}
	want := make([]byte, chunk)
	got := make([]byte, chunk)
	for off := int64(0); ; off += chunk {
		wn, werr := io.ReadFull(f, want)
		gn, gerr := r.ReadAt(in, got, off)
		if gn != wn || !bytes.Equal(got[:gn], want[:wn]) {
			t.Errorf("%s: contents at %d differ (read %d, extracted %d; err %v)", p, off, gn, wn, gerr)
			return
		}
		if werr != nil {
			if gerr != io.EOF {
				t.Errorf("%s: ReadAt at end = %v, want io.EOF", p, gerr)
			}
			return
		}
		if gerr != nil && !(gerr == io.EOF && off+int64(gn) == int64(in.Size)) {
			t.Errorf("%s: ReadAt at %d: %v", p, off, gerr)
			return
		}
	}
}

func hostXattrs(host string) (map[string]string, error) {
	sz, err := unix.Llistxattr(host, nil)
	if err != nil || sz == 0 {
		return map[string]string{}, err
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(host, buf)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		v := make([]byte, 1<<16)
		n, err := unix.Lgetxattr(host, name, v)
		if err != nil {
			return nil, err
		}
		m[name] = string(v[:n])
	}
	return m, nil
}

func compareXattrs(t *testing.T, r *Reader, in *Inode, host, p string, root bool) {
	t.Helper()
	xs, err := r.Xattrs(in)
	if err != nil {
		t.Errorf("%s: Xattrs: %v", p, err)
		return
	}
	got := map[string]string{}
	for _, x := range xs {
		if !root && !strings.HasPrefix(x.Name, "user.") {
			continue
		}
		got[x.Name] = string(x.Value)
		v, err := r.Xattr(in, x.Name)
		if err != nil || !bytes.Equal(v, x.Value) {
			t.Errorf("%s: Xattr(%s) = %q, %v; Xattrs has %q", p, x.Name, v, err, x.Value)
		}
	}
	if _, err := r.Xattr(in, "user.does-not-exist"); !errors.Is(err, ErrNoXattr) {
		t.Errorf("%s: Xattr(absent) error %v, want ErrNoXattr", p, err)
	}
	if in.HasXattrs() != (len(xs) > 0) {
		t.Errorf("%s: HasXattrs %v with %d xattrs", p, in.HasXattrs(), len(xs))
	}
	want, err := hostXattrs(host)
	if err != nil {
		t.Errorf("%s: host xattrs: %v", p, err)
		return
	}
	for k := range want {
		if strings.HasPrefix(k, "system.") || (!root && !strings.HasPrefix(k, "user.")) {
			delete(want, k)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: xattrs %q, extracted %q", p, got, want)
	}
}

// checkImage runs every comparison on one image.
func checkImage(t *testing.T, img string) {
	t.Helper()
	r, err := OpenFile(img, nil)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	defer r.Close()
	ins := compareListing(t, r, img)
	dir := unsquashfsExtract(t, img)
	compareExtracted(t, r, ins, dir)
	// Again with blocks decompressed straight into the reads' buffers.
	rd, err := OpenFile(img, &Options{DirectReads: 1})
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	defer rd.Close()
	compareExtracted(t, rd, walkInodes(t, rd), dir)
}

// heavy option sets are slow to build: they run on the small tree.
var heavy = map[string][]string{
	"gzip-opts":  nil,
	"xz-bcj-x86": nil,
	// -b 4K puts each BCJ test file in blocks of its own, so mksquashfs
	// picks every filter for some block.
	"xz-bcj-all": {"-b", "4K"},
	"lzo-opts":   nil,
	"lz4-hc":     nil,
	"zstd-19":    nil,
}

func TestAgainstUnsquashfs(t *testing.T) {
	type tcase struct {
		name  string
		args  []string
		small bool
	}
	var cases []tcase
	for _, c := range sqtest.Compressors {
		extra, small := heavy[c.Name]
		cases = append(cases, tcase{c.Name, append(c.Args, extra...), small})
	}
	for _, o := range sqtest.Options {
		cases = append(cases, tcase{"gzip-" + o.Name, o.Args, testing.Short()})
	}
	for _, bs := range sqtest.BlockSizes {
		cases = append(cases, tcase{"gzip-b" + bs, []string{"-b", bs}, testing.Short()})
	}
	cases = append(cases,
		tcase{"xz-b4K", []string{"-comp", "xz", "-b", "4K", "-Xbcj", "x86"}, true},
		tcase{"zstd-b1M-noF", []string{"-comp", "zstd", "-b", "1M", "-noF"}, false},
		tcase{"lz4-b8K-always-frag", []string{"-comp", "lz4", "-b", "8K", "-always-use-fragments"}, true},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tree := featureTree(t, tc.small)
			img := sqtest.Build(t, tree.Dir, tc.args...)
			checkImage(t, img)
		})
	}
}
