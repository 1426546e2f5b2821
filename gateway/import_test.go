// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/gateway/api"
)

func TestParseCustomTag(t *testing.T) {
	cases := []struct {
		raw, want string
		ok        bool
	}{
		{"load_test:v1", "load_test:v1", true},
		{"load_test", "load_test:latest", true},
		{"my.app+x@2:1.0-rc1", "my.app+x@2:1.0-rc1", true},
		{"_x", "_x:latest", true},
		{"a/b:1", "", false},   // no "/" in custom tags (Shifter's runtime filter)
		{"../x", "", false},    // nor dots first
		{"-x:1", "", false},    // nor an option-like start
		{".hidden", "", false}, // nor a hidden-file-like start
		{"x:", "", false},
		{"x y", "", false},
		{"x%2F", "", false},
		{"x\x00", "", false},
		{"", "", false},
		{strings.Repeat("a", 257), "", false},
		{strings.Repeat("a", 249) + ":1", strings.Repeat("a", 249) + ":1", true},
		{strings.Repeat("a", 249), strings.Repeat("a", 249) + ":latest", true},
		{strings.Repeat("a", 250), "", false}, // 257 with ":latest", which would not parse again
	}
	for _, c := range cases {
		got, err := ParseCustomTag(c.raw)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseCustomTag(%q) = %q, %v; want %q ok=%v", c.raw, got, err, c.want, c.ok)
		}
	}
}

func TestImportUsersJSON(t *testing.T) {
	cases := []struct {
		in   string
		want *ImportUsers
		out  string
	}{
		{`"all"`, &ImportUsers{All: true}, `"all"`},
		{`"All"`, &ImportUsers{All: true}, `"all"`},
		{`"none"`, &ImportUsers{}, `"none"`},
		{`"None"`, &ImportUsers{}, `"none"`},
		{`[]`, &ImportUsers{Users: []string{}}, `"none"`},
		{`["alice","1002"]`, &ImportUsers{Users: []string{"alice", "1002"}}, `["alice","1002"]`},
		{`"alice"`, nil, ""}, // Shifter matched a string as a substring: refused here
		{`["a b"]`, nil, ""},
		{`[""]`, nil, ""},
		{`[1]`, nil, ""},
		{`true`, nil, ""},
	}
	for _, c := range cases {
		var u ImportUsers
		err := json.Unmarshal([]byte(c.in), &u)
		if (err == nil) != (c.want != nil) {
			t.Errorf("%s: err %v, want ok=%v", c.in, err, c.want != nil)
			continue
		}
		if c.want == nil {
			continue
		}
		if u.All != c.want.All || strings.Join(u.Users, ",") != strings.Join(c.want.Users, ",") {
			t.Errorf("%s: got %+v, want %+v", c.in, u, *c.want)
		}
		if b, _ := json.Marshal(u); string(b) != c.out {
			t.Errorf("%s: marshals as %s, want %s", c.in, b, c.out)
		}
	}
	// In a config file: absent means disabled (nil).
	c, err := ParseConfig([]byte(`{"import_users": ["alice"]}`))
	if err != nil || c.ImportUsers == nil || c.ImportUsers.Users[0] != "alice" {
		t.Fatalf("config with import_users: %+v, %v", c, err)
	}
	if c, err := ParseConfig([]byte(`{}`)); err != nil || c.ImportUsers != nil {
		t.Fatalf("config without import_users: %+v, %v", c.ImportUsers, err)
	}
	if _, err := ParseConfig([]byte(`{"import_users": "bob"}`)); err == nil {
		t.Fatal(`import_users "bob" accepted`)
	}
}

func TestMayImport(t *testing.T) {
	aliceID := &Identity{Authenticated: true, User: "alice", UID: 1001}
	noName := &Identity{Authenticated: true, UID: 1002}
	root := &Identity{Authenticated: true, User: "root", UID: 0}
	anonID := &Identity{Source: "none"}
	list := &ImportUsers{Users: []string{"alice", "1002"}}
	cases := []struct {
		name  string
		users *ImportUsers
		id    *Identity
		ok    bool
		why   string
	}{
		{"absent: disabled", nil, aliceID, false, "not set"},
		{"none", &ImportUsers{}, aliceID, false, `"none"`},
		{"all", &ImportUsers{All: true}, aliceID, true, ""},
		{"all, anonymous", &ImportUsers{All: true}, anonID, false, "authenticated"},
		{"listed by name", list, aliceID, true, ""},
		{"listed by uid", list, noName, true, ""},
		{"root is not special", list, root, false, "root may not import"},
		{"unlisted", &ImportUsers{Users: []string{"bob"}}, aliceID, false, "alice may not import"},
		{"unlisted, no name", &ImportUsers{Users: []string{"bob"}}, noName, false, "uid 1002 may not import"},
	}
	for _, c := range cases {
		ok, why := mayImport(c.users, c.id)
		if ok != c.ok || !strings.Contains(why, c.why) {
			t.Errorf("%s: mayImport = %v, %q; want %v, containing %q", c.name, ok, why, c.ok, c.why)
		}
	}
}

func TestParseImportRequest(t *testing.T) {
	cases := []struct {
		body string
		err  string // "" ok
	}{
		{`{"filepath":"/tmp/img.squashfs","format":"squashfs"}`, ""},
		{`{"filepath":"/tmp/img.squashfs","format":"squashfs","allowed_uids":"1,2","allowed_gids":"3"}`, ""},
		{`{"filepath":"/tmp/img.squashfs","format":"ext4"}`, `format "ext4": only "squashfs"`},
		{`{"filepath":"/tmp/img.squashfs","format":"cramfs"}`, `format "cramfs"`},
		{`{"filepath":"/tmp/img.squashfs"}`, "format: required"},
		{`{"format":"squashfs"}`, "filepath: required"},
		{`{"filepath":"img.squashfs","format":"squashfs"}`, "absolute"},
		{`{"filepath":"/tmp/a\u0000b","format":"squashfs"}`, "NUL"},
		{`{"filepath":"/tmp/x","format":"squashfs","extra":1}`, "unknown field"},
		{`{"filepath":"/tmp/x","format":"squashfs"} {}`, "trailing data"},
		{`{"filepath":`, "request body"},
		{``, "request body"},
	}
	for _, c := range cases {
		_, err := parseImportRequest([]byte(c.body))
		if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: err %v, want %q", c.body, err, c.err)
		}
	}
}

// FuzzImportRequest feeds untrusted doimport bodies and custom tags to
// their parsers: what they accept keeps the invariants the rest relies
// on (an absolute path without NUL, format squashfs; a tag without "/"
// or NUL, with a version, normalized once and for all).
func FuzzImportRequest(f *testing.F) {
	f.Add([]byte(`{"filepath":"/tmp/img.squashfs","format":"squashfs"}`), "load_test:v1")
	f.Add([]byte(`{"filepath":"/a/../b","format":"squashfs","allowed_uids":"1,2","allowed_gids":"3"}`), "x")
	f.Add([]byte(`{"filepath":"rel","format":"ext4"}`), "a/b:1")
	f.Add([]byte(`{"filepath":"/x\u0000","format":"squashfs"}`), "-x")
	f.Add([]byte(`{}`), strings.Repeat("a", 250))
	f.Fuzz(func(t *testing.T, body []byte, tag string) {
		if req, err := parseImportRequest(body); err == nil {
			if !strings.HasPrefix(req.FilePath, "/") || strings.ContainsRune(req.FilePath, 0) || req.Format != "squashfs" {
				t.Fatalf("accepted %+v", req)
			}
		}
		norm, err := ParseCustomTag(tag)
		if err != nil {
			return
		}
		if strings.ContainsAny(norm, "/\x00%") || !strings.Contains(norm, ":") || len(norm) > api.MaxCustomTagLen {
			t.Fatalf("ParseCustomTag(%q) = %q", tag, norm)
		}
		if again, err := ParseCustomTag(norm); err != nil || again != norm {
			t.Fatalf("ParseCustomTag(%q) = %q, then %q, %v", tag, norm, again, err)
		}
	})
}

// lookupType looks up a tag of a type.
func (tg *testGW) lookupType(user, itype, tag string) (api.Image, int) {
	tg.t.Helper()
	var im api.Image
	code := tg.do("GET", "/api/lookup/sys/"+itype+"/"+tag+"/", user, nil, &im)
	return im, code
}

func TestQuickSquashfsCheck(t *testing.T) {
	sb := func(magic uint32, major, minor uint16, used uint64) []byte {
		b := make([]byte, 4096)
		binary.LittleEndian.PutUint32(b[0:], magic)
		binary.LittleEndian.PutUint16(b[28:], major)
		binary.LittleEndian.PutUint16(b[30:], minor)
		binary.LittleEndian.PutUint64(b[40:], used)
		return b
	}
	cases := []struct {
		name string
		b    []byte
		err  string
	}{
		{"superblock", sb(0x73717368, 4, 0, 4000), ""},
		{"exactly used", sb(0x73717368, 4, 0, 4096), ""},
		{"short", []byte("hsqs"), "smaller than a squashfs superblock"},
		{"magic", sb(0x73717369, 4, 0, 100), "no squashfs superblock"},
		{"big endian squashfs 3", sb(0x68737173, 3, 1, 100), "no squashfs superblock"},
		{"version", sb(0x73717368, 3, 0, 100), "version 3.0"},
		{"truncated", sb(0x73717368, 4, 0, 4097), "truncated"},
	}
	for _, c := range cases {
		err := quickSquashfsCheck(bytes.NewReader(c.b), int64(len(c.b)))
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
	}
}
