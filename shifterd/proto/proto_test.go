// SPDX-License-Identifier: BSD-3-Clause

package proto

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		line, err string
	}{
		{`{"op":"mount","id":"` + id + `"}`, ""},
		{`{"op":"mount","id":"` + id + `","uid":1000,"gids":[1000,27],"pid":42}`, ""},
		{`{"op":"warm","id":"` + id + `","traceOnly":true}`, ""},
		{`{"op":"status"}`, ""},
		{``, "malformed"},
		{`{}`, "without op"},
		{`{"op":"umount","id":"` + id + `"}`, `unknown op "umount"`},
		{`{"op":"mount"}`, "not a lowercase hex sha256"},
		{`{"op":"mount","id":"` + strings.ToUpper(id) + `"}`, "not a lowercase hex sha256"},
		{`{"op":"mount","id":"../../etc"}`, "not a lowercase hex sha256"},
		{`{"op":"mount","id":"` + id + `","extra":1}`, "unknown field"},
		{`{"op":"mount","id":"` + id + `"} {"op":"status"}`, "data after"},
		{`{"op":"mount","id":"` + id + `"}x`, "data after"},
		{`{"op":"mount","id":"` + id + `","traceOnly":true}`, "traceOnly is for warm"},
		{`{"op":"warm","id":"` + id + `","pid":3}`, "pid is for mount"},
		{`{"op":"mount","id":"` + id + `","pid":-3}`, "negative"},
		{`{"op":"mount","id":"` + id + `","gids":[1]}`, "gids without uid"},
		{`{"op":"mount","id":"` + id + `","uid":-1}`, "malformed"},
		{`{"op":"mount","id":"` + id + `","uid":4294967296}`, "malformed"},
		{`{"op":"status","id":"` + id + `"}`, "status takes no arguments"},
		{`{"op":"status","uid":0}`, "status takes no arguments"},
		{`[]`, "malformed"},
		{`"mount"`, "malformed"},
	} {
		_, err := ParseRequest([]byte(tc.line))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.line, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.line, err, tc.err)
		}
	}
}

func TestTooManyGroups(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"op":"mount","id":"` + id + `","uid":1,"gids":[`)
	for i := range MaxGroups + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('1')
	}
	b.WriteString("]}")
	if _, err := ParseRequest([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "groups") {
		t.Fatalf("error %v, want too many groups", err)
	}
}

func TestReadLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
		err  error
	}{
		{"abc\nrest", 10, "abc", nil},
		{"\n", 10, "", nil},
		{"", 10, "", io.EOF},
		{"abc", 10, "", io.ErrUnexpectedEOF},
		{strings.Repeat("x", 9) + "\n", 10, strings.Repeat("x", 9), nil},
		{strings.Repeat("x", 10) + "\n", 10, "", ErrTooLong},
		{strings.Repeat("x", 100000) + "\n", 64 << 10, "", ErrTooLong},
	} {
		got, err := ReadLine(bufio.NewReaderSize(strings.NewReader(tc.in), 16), tc.max)
		if !errors.Is(err, tc.err) || (err == nil && string(got) != tc.want) {
			t.Errorf("ReadLine(%.20q, %d) = %q, %v; want %q, %v", tc.in, tc.max, got, err, tc.want, tc.err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	uid := uint32(1000)
	for _, q := range []*Request{
		{Op: OpMount, ID: id},
		{Op: OpMount, ID: id, UID: &uid, GIDs: []uint32{1000, 4}, PID: 7},
		{Op: OpWarm, ID: id, TraceOnly: true},
		{Op: OpStatus},
	} {
		b, err := Marshal(q, MaxRequest)
		if err != nil {
			t.Fatal(err)
		}
		line, err := ReadLine(bufio.NewReader(strings.NewReader(string(b))), MaxRequest)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseRequest(line)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		b2, _ := Marshal(got, MaxRequest)
		if string(b) != string(b2) {
			t.Errorf("round trip: %s became %s", b, b2)
		}
	}
	if _, err := Marshal(&Response{Error: strings.Repeat("x", MaxRequest)}, MaxRequest); !errors.Is(err, ErrTooLong) {
		t.Errorf("oversized message: %v", err)
	}
}

func TestParseResponse(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{`{"ok":true,"path":"/run/x","source":"shifterd:` + id + `"}`, true},
		{`{"ok":false,"code":"denied","error":"no"}`, true},
		{`{"ok":true,"progress":{"done":1,"total":2,"fromSource":1}}`, true},
		{`{"ok":false}`, false},
		{`{"ok":true,"what":1}`, false},
		{`{"ok":true}{}`, false},
	} {
		_, err := ParseResponse([]byte(tc.line))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.line, err)
		}
	}
}

// FuzzParseRequest: whatever a local user sends, parsing returns a valid
// request or an error, never panics, and a valid request survives a
// round trip unchanged.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"mount","id":"` + id + `"}`,
		`{"op":"mount","id":"` + id + `","uid":0,"gids":[0],"pid":1}`,
		`{"op":"warm","id":"` + id + `","traceOnly":true}`,
		`{"op":"status"}`,
		`{"op":"status","id":null}`,
		`{"op":"mount","id":"` + id + `","gids":null,"uid":null}`,
		`{"op":"\u006dount","id":"` + id + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseRequest(b)
		if err != nil {
			return
		}
		if err := q.Validate(); err != nil {
			t.Fatalf("parsed request fails validation: %v", err)
		}
		m, err := Marshal(q, MaxResponse)
		if err != nil {
			t.Fatal(err)
		}
		q2, err := ParseRequest(m[:len(m)-1])
		if err != nil {
			t.Fatalf("re-parse of %s: %v", m, err)
		}
		m2, _ := Marshal(q2, MaxResponse)
		if string(m) != string(m2) {
			t.Fatalf("round trip changed %s to %s", m, m2)
		}
	})
}
