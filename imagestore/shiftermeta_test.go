// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// shifterMeta is a .meta as Shifter's gateway writes it (converters.py
// writemeta: FORMAT, ENTRY and CMD as Python list reprs, WORKDIR, the
// ACLs of a private image, one ENV line per variable).
const shifterMeta = `FORMAT: squashfs
ENTRY: ['/docker-entrypoint.sh', '--flag']
CMD: ['python3', '-c', "print('hi')"]
WORKDIR: /app
USERACL: 1000,1001
GROUPACL: 1002
ENV: PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV: LANG=C.UTF-8
ENV: EMPTY=
`

func TestParseShifterMeta(t *testing.T) {
	id := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		in      string
		want    *Metadata
		wantErr string
	}{
		{"gateway's format", shifterMeta, &Metadata{ID: id, Format: "squashfs",
			Entrypoint: []string{"/docker-entrypoint.sh", "--flag"}, Cmd: []string{"python3", "-c", "print('hi')"},
			WorkDir: "/app", UserACL: []uint32{1000, 1001}, GroupACL: []uint32{1002},
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "EMPTY="}}, ""},
		{"public, minimal", "FORMAT: squashfs\n", &Metadata{ID: id, Format: "squashfs"}, ""},
		{"python 2 unicode list, escapes", "FORMAT: squashfs\nENTRY: [u'/bin/sh', u'-c', 'a\\tb\\\\c\\'d\\x41\\u00e9']\n",
			&Metadata{ID: id, Format: "squashfs", Entrypoint: []string{"/bin/sh", "-c", "a\tb\\c'dAé"}}, ""},
		{"words, comments, CRLF, continuation", "# made by hand\r\nFORMAT: squashfs\r\nCMD: /bin/echo hello \\\n  world\r\n\nUSER: alice\nVOLUME: /data\n",
			&Metadata{ID: id, Format: "squashfs", Cmd: []string{"/bin/echo", "hello", "world"}}, ""},
		{"empty list and ACL", "FORMAT: squashfs\nENTRY: []\nUSERACL: \n", &Metadata{ID: id, Format: "squashfs", Entrypoint: []string{}}, ""},
		{"no format", "ENV: A=b\n", nil, "no FORMAT"},
		{"other format", "FORMAT: ext4\n", nil, "only \"squashfs\""},
		{"unknown key", "FORMAT: squashfs\nCOLOR: red\n", nil, "unknown key"},
		{"line without colon", "FORMAT: squashfs\nhello\n", nil, "no ':'"},
		{"repeated", "FORMAT: squashfs\nWORKDIR: /a\nWORKDIR: /b\n", nil, "twice"},
		{"bad uid", "FORMAT: squashfs\nUSERACL: 1000,root\n", nil, "not a number"},
		{"negative uid", "FORMAT: squashfs\nUSERACL: -1\n", nil, "not a number"},
		{"huge uid", "FORMAT: squashfs\nGROUPACL: 4294967296\n", nil, "not a number"},
		{"unterminated list", "FORMAT: squashfs\nENTRY: ['/bin/sh'\n", nil, "want ',' or ']'"},
		{"unterminated string", "FORMAT: squashfs\nENTRY: ['/bin/sh]\n", nil, "unterminated"},
		{"text after list", "FORMAT: squashfs\nENTRY: ['a'] x\n", nil, "after ']'"},
		{"bare word in list", "FORMAT: squashfs\nENTRY: [a]\n", nil, "quoted string"},
		{"NUL escape", "FORMAT: squashfs\nENTRY: ['a\\x00']\n", nil, "bad \\x"},
		{"NUL byte", "FORMAT: squashfs\nWORKDIR: /a\x00b\n", nil, "NUL"},
		{"not UTF-8", "FORMAT: squashfs\nWORKDIR: /\xff\n", nil, "UTF-8"},
		{"env without =", "FORMAT: squashfs\nENV: PATH\n", nil, "NAME=VALUE"},
		{"dangling continuation", "FORMAT: squashfs\nWORKDIR: /a\\", nil, "continuation"},
		{"too large", "FORMAT: squashfs\n" + strings.Repeat("ENV: A=b\n", MaxShifterMetaSize/9+1), nil, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseShifterMeta(id, []byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, tc.want) {
				t.Errorf("got %+v\nwant %+v", m, tc.want)
			}
		})
	}
	if _, err := ParseShifterMeta("../x", []byte("FORMAT: squashfs\n")); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad id: %v", err)
	}
}

func TestLoadOrShifterMeta(t *testing.T) {
	dir := t.TempDir()
	id, id2 := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	if err := os.WriteFile(ShifterMetaPath(dir, id), []byte(shifterMeta), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := LoadOrShifterMeta(dir, id)
	if err != nil || m.WorkDir != "/app" || m.Allowed(1002, nil) || !m.Allowed(1002, []uint32{1002}) || m.Created.IsZero() {
		t.Fatalf("from .meta: %+v, %v", m, err)
	}
	// <id>.json wins over <id>.meta.
	if err := WriteMetadata(dir, &Metadata{ID: id, WorkDir: "/json"}); err != nil {
		t.Fatal(err)
	}
	if m, err := LoadOrShifterMeta(dir, id); err != nil || m.WorkDir != "/json" {
		t.Fatalf("with <id>.json: %+v, %v", m, err)
	}
	// Neither: ErrNotFound naming <id>.json.
	if _, err := LoadOrShifterMeta(dir, id2); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), id2+".json") {
		t.Errorf("no metadata: %v", err)
	}
	// A symbolic link planted as <id>.meta is not followed.
	target := filepath.Join(t.TempDir(), "meta")
	os.WriteFile(target, []byte("FORMAT: squashfs\n"), 0o644)
	if err := os.Symlink(target, ShifterMetaPath(dir, id2)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrShifterMeta(dir, id2); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("symlinked .meta: %v, want an error", err)
	}
	// A bad .meta is an error wrapping ErrInvalid, not a missing image.
	id3 := strings.Repeat("ef", 32)
	os.WriteFile(ShifterMetaPath(dir, id3), []byte("FORMAT: cramfs\n"), 0o600)
	if _, err := LoadOrShifterMeta(dir, id3); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad .meta: %v", err)
	}
}

// FuzzParseShifterMeta feeds arbitrary bytes as a Shifter .meta (read by
// the setuid runtime): the parser returns metadata that validates, or an
// error wrapping ErrInvalid, and never panics.
func FuzzParseShifterMeta(f *testing.F) {
	id := strings.Repeat("ab", 32)
	for _, s := range []string{
		shifterMeta,
		"FORMAT: squashfs\n",
		"FORMAT: squashfs\nENTRY: [u'/bin/sh', u'-c']\nCMD: [\"it's\"]\n",
		"FORMAT: squashfs\nENTRY: ['\\x41\\u00e9\\U0001F600']\n",
		"FORMAT: squashfs\nCMD: a b \\\nc\n",
		"FORMAT: squashfs\nUSERACL: 1, 2,,3\nGROUPACL: 4\n",
		"FORMAT: squashfs\nENTRY: ['a\\",
		"FORMAT: squashfs\nENTRY: ['a', \n",
		"#\nFORMAT: xfs\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseShifterMeta(id, b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if m.ID != id || m.Format != FormatSquashfs {
			t.Fatalf("parsed %+v", m)
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("parsed metadata does not validate: %v", err)
		}
		for _, a := range append(append([]string{}, m.Entrypoint...), m.Cmd...) {
			if strings.ContainsRune(a, 0) {
				t.Fatalf("NUL in an argument: %q", a)
			}
		}
	})
}
