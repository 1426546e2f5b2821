// SPDX-License-Identifier: BSD-3-Clause

package imagestore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxShifterMetaSize bounds a Shifter <id>.meta file; a larger one is
// refused unread. Shifter's gateway writes a few lines per image (its
// environment is the bulk).
const MaxShifterMetaSize = 1 << 20

// ShifterMetaPath returns the path of NERSC Shifter's metadata file of
// image id in dir.
func ShifterMetaPath(dir, id string) string {
	return filepath.Join(dir, id+".meta")
}

// LoadOrShifterMeta reads the metadata of image id in dir: its <id>.json,
// or when there is none NERSC Shifter's <id>.meta (ParseShifterMeta), so
// that an existing Shifter image directory runs as it is. It returns an
// error wrapping ErrNotFound when neither file exists.
func LoadOrShifterMeta(dir, id string) (*Metadata, error) {
	m, err := Load(dir, id)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return m, err
	}
	m, merr := LoadShifterMeta(dir, id)
	if errors.Is(merr, ErrNotFound) {
		return nil, err // name the missing <id>.json
	}
	return m, merr
}

// LoadShifterMeta reads and parses <id>.meta in dir (opened without
// following a symbolic link). The metadata carries no size or digest
// (Shifter's has none) and is dated by the file's modification time.
func LoadShifterMeta(dir, id string) (*Metadata, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("image id %q: %w", id, ErrInvalid)
	}
	p := ShifterMetaPath(dir, id)
	f, err := openNoFollow(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", p, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open image metadata: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file", p, ErrInvalid)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxShifterMetaSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	m, err := ParseShifterMeta(id, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	m.Created = st.ModTime().UTC()
	return m, nil
}

// ParseShifterMeta parses the content of NERSC Shifter's <id>.meta, as
// its gateway writes it (converters.py writemeta) and its runtime reads
// it (ImageData.c), into Metadata for image id. The grammar is Shifter's
// config grammar with ':' as the delimiter: "KEY: value" lines, key and
// value trimmed, lines starting with '#' skipped, a value ending in '\'
// continued on the next line (joined with a space). Keys:
//
//	FORMAT    squashfs (required; Shifter's other formats are refused)
//	ENV       NAME=VALUE, one line per variable (repeatable)
//	ENTRY     the entrypoint, CMD the command: a Python list literal
//	          (['/bin/sh', '-c'], [u'a'], ["it's"]) or words split on
//	          white space
//	WORKDIR   the working directory
//	USERACL   comma-separated uids, GROUPACL gids (none: public)
//	USER      the importing user of an imported image (ignored: not the
//	          container's user)
//	VOLUME    ignored, as Shifter's runtime ignores it
//
// It is stricter than Shifter: an unknown key, a line without ':', a
// repeated single-valued key, a malformed list or id, a NUL byte,
// invalid UTF-8 and a file larger than MaxShifterMetaSize are errors
// wrapping ErrInvalid (Shifter warns about unknown keys, skips lines
// without ':' and lets the last repeat win).
func ParseShifterMeta(id string, b []byte) (*Metadata, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("image id %q: %w", id, ErrInvalid)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: Shifter .meta: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if len(b) > MaxShifterMetaSize {
		return nil, bad("larger than %d bytes", MaxShifterMetaSize)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, bad("NUL byte")
	}
	if !utf8.Valid(b) {
		return nil, bad("not UTF-8")
	}
	m := &Metadata{ID: id}
	seen := map[string]bool{}
	var key, value string
	continued := false
	lines := strings.Split(string(b), "\n")
	for n, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if !continued {
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, bad("line %d: no ':'", n+1)
			}
			key, value = strings.TrimSpace(k), strings.TrimSpace(v)
		} else {
			value += " " + strings.TrimSpace(line)
			value = strings.TrimSpace(value)
		}
		if strings.HasSuffix(value, `\`) {
			if n == len(lines)-1 {
				return nil, bad("continuation at the end of the file")
			}
			value = strings.TrimSpace(strings.TrimSuffix(value, `\`))
			continued = true
			continue
		}
		continued = false
		if err := m.assignShifterMeta(key, value, seen); err != nil {
			return nil, bad("line %d: %v", n+1, err)
		}
	}
	if !seen["FORMAT"] {
		return nil, bad("no FORMAT")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metadata) assignShifterMeta(key, value string, seen map[string]bool) error {
	switch key {
	case "ENV", "VOLUME":
	case "FORMAT", "ENTRY", "CMD", "WORKDIR", "USERACL", "GROUPACL", "USER":
		if seen[key] {
			return fmt.Errorf("%s given twice", key)
		}
	default:
		return fmt.Errorf("unknown key %q", key)
	}
	seen[key] = true
	var err error
	switch key {
	case "FORMAT":
		if value != FormatSquashfs {
			return fmt.Errorf("FORMAT %q: only %q images are supported", value, FormatSquashfs)
		}
		m.Format = value
	case "ENV":
		m.Env = append(m.Env, value)
	case "ENTRY":
		m.Entrypoint, err = parseShifterArgs(value)
	case "CMD":
		m.Cmd, err = parseShifterArgs(value)
	case "WORKDIR":
		m.WorkDir = value
	case "USERACL":
		m.UserACL, err = ParseIDList(value)
	case "GROUPACL":
		m.GroupACL, err = ParseIDList(value)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// MaxACLIDs bounds an ACL list (ParseIDList).
const MaxACLIDs = 1024

// ParseIDList parses Shifter's comma-separated numeric id lists (an
// ACL: .meta files, the API's allowed_uids and allowed_gids), at most
// MaxACLIDs ids.
func ParseIDList(s string) ([]uint32, error) {
	var out []uint32
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("id %q is not a number", f)
		}
		if len(out) == MaxACLIDs {
			return nil, fmt.Errorf("more than %d ids", MaxACLIDs)
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

// parseShifterArgs parses an ENTRY or CMD value: a Python list literal
// of strings when it starts with '[', else words split on white space.
func parseShifterArgs(s string) ([]string, error) {
	if !strings.HasPrefix(s, "[") {
		return strings.Fields(s), nil
	}
	p := &pyLit{s: s, i: 1}
	out := []string{}
	p.space()
	if p.eat(']') {
		return p.end(out)
	}
	for {
		p.space()
		str, err := p.str()
		if err != nil {
			return nil, err
		}
		out = append(out, str)
		p.space()
		if p.eat(']') {
			return p.end(out)
		}
		if !p.eat(',') {
			return nil, fmt.Errorf("list %q: want ',' or ']' at offset %d", s, p.i)
		}
	}
}

// pyLit scans a Python list literal.
type pyLit struct {
	s string
	i int
}

func (p *pyLit) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *pyLit) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *pyLit) end(out []string) ([]string, error) {
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("list %q: text after ']'", p.s)
	}
	return out, nil
}

// str scans one string literal: optional u prefix, single or double
// quotes, Python's escapes \\ \' \" \n \r \t \xHH \uHHHH \UHHHHHHHH.
func (p *pyLit) str() (string, error) {
	p.eat('u')
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", fmt.Errorf("list %q: want a quoted string at offset %d", p.s, p.i)
	}
	q := p.s[p.i]
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == q:
			return b.String(), nil
		case c != '\\':
			b.WriteByte(c)
			continue
		}
		if p.i >= len(p.s) {
			break
		}
		e := p.s[p.i]
		p.i++
		switch e {
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if p.i+n > len(p.s) {
				return "", fmt.Errorf("list %q: short \\%c escape", p.s, e)
			}
			v, err := strconv.ParseUint(p.s[p.i:p.i+n], 16, 32)
			if err != nil || v == 0 || v > utf8.MaxRune {
				return "", fmt.Errorf("list %q: bad \\%c escape", p.s, e)
			}
			p.i += n
			b.WriteRune(rune(v))
		default:
			return "", fmt.Errorf("list %q: unknown escape \\%c", p.s, e)
		}
	}
	return "", fmt.Errorf("list %q: unterminated string", p.s)
}
