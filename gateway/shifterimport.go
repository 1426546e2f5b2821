// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shifter-go/shifter/gateway/api"
	"github.com/shifter-go/shifter/imagestore"
)

// maxExportLine bounds one document of a mongoexport file.
const maxExportLine = 16 << 20

// ShifterImportResult counts what ImportShifter did.
type ShifterImportResult struct {
	Images   int // image records made
	Known    int // images the database already had (left as they are)
	Tags     int // tag bindings made
	Skipped  int // tags left to a binding the database already had for another image
	Ignored  int // export documents not imported (other system, not READY, not docker, no image file): see Notes
	Metadata int // <id>.json files written
	Notes    []string
}

// shifterRecord is what ImportShifter reads of one document of Shifter's
// images collection (imagemngr.py: new_pull_record and its updates).
type shifterRecord struct {
	line                      int
	System, Itype, Status, ID string
	Pulltag                   string
	Tags                      []string
	UserACL, GroupACL         []uint32
	Private                   *bool
	Env, Entry, Cmd           []string
	Workdir                   string
	Labels                    map[string]string
	LastPull, Expiration      time.Time
}

// ImportShifter imports the state of a NERSC Shifter gateway for
// system: its images collection as mongoexport writes it (one JSON
// document per line, Mongo extended JSON such as {"$oid": ...} and
// {"$date": ...} accepted where Shifter stores plain values) read from
// export, and the image directory of the system in o.Config, which holds
// Shifter's <id>.squashfs and <id>.meta. For every READY docker or
// custom (imported) image of the system whose squashfs is there it makes
// an image record and the public bindings of its tags through the
// gateway's records, then writes its <id>.json (leaving <id>.meta alone;
// custom tags are not written there, as for imports here). A custom tag
// carried over has no importer: only an administrator may replace it.
// The gateway must be stopped.
//
// It is idempotent: an image the database already has is left as it is
// (its <id>.json is written again from the records), and a tag bound to
// another image is left to it. Running it twice gives the same database
// and files.
//
// The image's environment, entrypoint, command, working directory and
// ACL come from <id>.meta when there is one (what Shifter's runtime
// enforced), else from the document; a document marked private whose
// .meta has no ACL (Shifter's DISABLE_ACL_METADATA) keeps the document's
// ACL.
func ImportShifter(o Options, system string, export io.Reader) (ShifterImportResult, error) {
	var res ShifterImportResult
	sys, ok := o.Config.Systems[system]
	if !ok {
		return res, fmt.Errorf("import shifter: no system %q in the configuration", system)
	}
	recs, err := parseMongoExport(export)
	if err != nil {
		return res, fmt.Errorf("import shifter: %w", err)
	}
	g, err := open(o)
	if err != nil {
		return res, err
	}
	defer g.cancel()
	if err := g.migrateTags(); err != nil {
		g.db.Close()
		return res, fmt.Errorf("import shifter: %w", err)
	}
	res, err = g.importShifter(system, sys, recs)
	return res, errors.Join(err, g.db.Close())
}

func (g *Gateway) importShifter(system string, sys *System, recs []*shifterRecord) (ShifterImportResult, error) {
	var res ShifterImportResult
	note := func(format string, a ...any) {
		res.Notes = append(res.Notes, fmt.Sprintf(format, a...))
	}
	// Newest first, so that a tag two documents claim goes to the newer.
	slices.SortStableFunc(recs, func(a, b *shifterRecord) int { return b.LastPull.Compare(a.LastPull) })
	byID := map[string]*shifterRecord{}
	var order []string
	for _, r := range recs {
		switch {
		case r.System != system:
			res.Ignored++
			continue
		case r.Status != api.StateReady:
			res.Ignored++
			note("line %d: %s %s is %s, not READY: not imported", r.line, r.Itype, r.Pulltag, r.Status)
			continue
		case r.Itype != itypeDocker && r.Itype != itypeCustom:
			res.Ignored++
			note("line %d: image %s is of type %q: only docker and custom images are imported", r.line, r.ID, r.Itype)
			continue
		case !imagestore.ValidID(r.ID):
			res.Ignored++
			note("line %d: id %q is not a sha256 hex digest: not imported", r.line, r.ID)
			continue
		}
		k := r.Itype + "\x00" + r.ID
		if prev, ok := byID[k]; ok { // Shifter merges these; be lenient
			prev.Tags = append(prev.Tags, r.Tags...)
			continue
		}
		byID[k] = r
		order = append(order, k)
	}
	for _, k := range order {
		r := byID[k]
		id := r.ID
		sq, _ := imagestore.Paths(sys.ImageDir, id)
		st, err := os.Lstat(sq)
		if err != nil || !st.Mode().IsRegular() {
			res.Ignored++
			note("image %s (%s): no regular file %s: not imported", id, strings.Join(r.Tags, ", "), sq)
			continue
		}
		rec, err := g.shifterImageRecord(system, sys, r, st.Size())
		if err != nil {
			return res, fmt.Errorf("import shifter: image %s: %w", id, err)
		}
		var tags []string
		parse := ParseTag
		if r.Itype == itypeCustom {
			parse = ParseCustomTag
		}
		for _, raw := range r.Tags {
			tag, err := parse(raw)
			if err != nil {
				note("image %s: tag %q: %v: not imported", id, raw, err)
				continue
			}
			if !slices.Contains(tags, tag) {
				tags = append(tags, tag)
			}
		}
		var known bool
		var made, skipped int
		var m *imagestore.Metadata
		err = g.db.update(func(t tx) error {
			known, made, skipped = false, 0, 0
			cur, err := t.getImage(system, id)
			switch {
			case err == nil:
				known, rec = true, cur
			case !errors.Is(err, errNoKey):
				return err
			default:
				if err := t.putImage(rec); err != nil {
					return err
				}
			}
			for _, tag := range tags {
				b := &bindRecord{System: system, Itype: r.Itype, Tag: tag, ID: id, Pulled: rec.LastPull}
				cur, err := t.getBind(b.key())
				if err == nil {
					if cur.ID != id {
						skipped++
					}
					continue
				} else if !errors.Is(err, errNoKey) {
					return err
				}
				if err := t.put(b.key(), b); err != nil {
					return err
				}
				made++
			}
			binds, err := t.imageBindings(system, id)
			if err != nil {
				return err
			}
			m = rec.metadata(binds)
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("import shifter: image %s: %w", id, err)
		}
		if known {
			res.Known++
		} else {
			res.Images++
		}
		res.Tags += made
		res.Skipped += skipped
		if skipped > 0 {
			note("image %s: %d tag(s) already name another image here: left to it", id, skipped)
		}
		if rec.Status != api.StateReady {
			note("image %s: its record here is %s: <id>.json not written", id, rec.Status)
			continue
		}
		if err := g.transfers[system].WriteMetadata(g.ctx, m); err != nil {
			return res, fmt.Errorf("import shifter: image %s: %w", id, err)
		}
		res.Metadata++
		g.log.Info("Shifter image imported", "system", system, "id", id, "tags", m.Tags, "public", m.Public(), "known", known)
	}
	return res, nil
}

// shifterImageRecord makes the image record of a Shifter image: its
// metadata from <id>.meta when there is one, else from the document.
func (g *Gateway) shifterImageRecord(system string, sys *System, r *shifterRecord, size int64) (*imageRecord, error) {
	rec := &imageRecord{ID: r.ID, System: system, Itype: r.Itype, Status: api.StateReady,
		Env: r.Env, Entry: r.Entry, Cmd: r.Cmd, Workdir: r.Workdir, Labels: r.Labels,
		Size: size, Created: r.LastPull, LastPull: r.LastPull, Expiration: r.Expiration}
	users, groups := r.UserACL, r.GroupACL
	private := r.Private != nil && *r.Private || r.Private == nil && len(users)+len(groups) > 0
	meta, err := imagestore.LoadShifterMeta(sys.ImageDir, r.ID)
	switch {
	case err == nil:
		rec.Env, rec.Entry, rec.Cmd, rec.Workdir = meta.Env, meta.Entrypoint, meta.Cmd, meta.WorkDir
		if !meta.Public() {
			users, groups, private = meta.UserACL, meta.GroupACL, true
		}
	case !errors.Is(err, imagestore.ErrNotFound):
		return nil, err
	}
	if !private {
		users, groups = nil, nil
	}
	rec.Public = !private
	rec.UserACL, rec.GroupACL = slices.Clone(users), slices.Clone(groups)
	if rec.Expiration.IsZero() {
		rec.Expiration = r.LastPull.Add(g.cfg.Expiration.D())
	}
	return rec, nil
}

// parseMongoExport reads a mongoexport of Shifter's images collection.
func parseMongoExport(rd io.Reader) ([]*shifterRecord, error) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), maxExportLine)
	var out []*shifterRecord
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		r, err := parseShifterRecord(line)
		if err != nil {
			return nil, fmt.Errorf("mongo export line %d: %w", n, err)
		}
		r.line = n
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mongo export line %d: %w", n+1, err)
	}
	return out, nil
}

func parseShifterRecord(line []byte) (*shifterRecord, error) {
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not a JSON document: %w", err)
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value on the line")
	}
	r := &shifterRecord{}
	field := func(name string, dst func(json.RawMessage) error) error {
		v, ok := doc[name]
		if !ok || string(v) == "null" {
			return nil
		}
		if err := dst(v); err != nil {
			return fmt.Errorf("field %s: %w", name, err)
		}
		return nil
	}
	str := func(p *string) func(json.RawMessage) error {
		return func(v json.RawMessage) error { return json.Unmarshal(v, p) }
	}
	var entry, cmd json.RawMessage
	err := errors.Join(
		field("system", str(&r.System)),
		field("itype", str(&r.Itype)),
		field("status", str(&r.Status)),
		field("id", str(&r.ID)),
		field("pulltag", str(&r.Pulltag)),
		field("WORKDIR", str(&r.Workdir)),
		field("tag", func(v json.RawMessage) (err error) { r.Tags, err = stringOrList(v); return err }),
		field("ENV", func(v json.RawMessage) (err error) { r.Env, err = stringOrList(v); return err }),
		field("ENTRY", func(v json.RawMessage) error { entry = v; return nil }),
		field("CMD", func(v json.RawMessage) error { cmd = v; return nil }),
		field("userACL", func(v json.RawMessage) (err error) { r.UserACL, err = mongoIDs(v); return err }),
		field("groupACL", func(v json.RawMessage) (err error) { r.GroupACL, err = mongoIDs(v); return err }),
		field("private", func(v json.RawMessage) error { r.Private = new(bool); return json.Unmarshal(v, r.Private) }),
		field("LABELS", func(v json.RawMessage) error { return json.Unmarshal(v, &r.Labels) }),
		field("last_pull", func(v json.RawMessage) (err error) { r.LastPull, err = mongoTime(v); return err }),
		field("expiration", func(v json.RawMessage) (err error) { r.Expiration, err = mongoTime(v); return err }),
	)
	if err != nil {
		return nil, err
	}
	for _, a := range []struct {
		v   json.RawMessage
		dst *[]string
	}{{entry, &r.Entry}, {cmd, &r.Cmd}} {
		if a.v == nil {
			continue
		}
		l, err := stringOrList(a.v)
		if err != nil {
			return nil, fmt.Errorf("field ENTRY/CMD: %w", err)
		}
		if a.v[0] == '"' && len(l) == 1 { // a string: Shifter's repr or words
			if l, err = parseShifterArgList(l[0]); err != nil {
				return nil, fmt.Errorf("field ENTRY/CMD: %w", err)
			}
		}
		*a.dst = l
	}
	if r.Status == "" || r.System == "" {
		return nil, errors.New("no status or system: not a document of Shifter's images collection")
	}
	return r, nil
}

// parseShifterArgList parses an ENTRY or CMD string as Shifter's .meta
// holds it.
func parseShifterArgList(s string) ([]string, error) {
	m, err := imagestore.ParseShifterMeta(strings.Repeat("0", 64), []byte("FORMAT: squashfs\nCMD: "+strings.ReplaceAll(s, "\n", " ")+"\n"))
	if err != nil {
		return nil, err
	}
	return m.Cmd, nil
}

// stringOrList reads a string or a list of strings.
func stringOrList(v json.RawMessage) ([]string, error) {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return []string{s}, nil
	}
	var l []string
	if err := json.Unmarshal(v, &l); err != nil {
		return nil, errors.New("want a string or a list of strings")
	}
	return l, nil
}

// mongoNumber reads a number, plain or in extended JSON
// ({"$numberInt": "1"}, {"$numberLong": "1"}, {"$numberDouble": "1.5"}).
func mongoNumber(v json.RawMessage) (float64, error) {
	var n json.Number
	if err := json.Unmarshal(v, &n); err == nil {
		return n.Float64()
	}
	var ext map[string]string
	if err := json.Unmarshal(v, &ext); err == nil && len(ext) == 1 {
		for _, k := range []string{"$numberInt", "$numberLong", "$numberDouble"} {
			if s, ok := ext[k]; ok {
				return strconv.ParseFloat(s, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s is not a number", v)
}

// mongoIDs reads a list of uids or gids; Shifter stores numbers (strings
// of digits are accepted too).
func mongoIDs(v json.RawMessage) ([]uint32, error) {
	var l []json.RawMessage
	if err := json.Unmarshal(v, &l); err != nil {
		return nil, errors.New("want a list of ids")
	}
	var out []uint32
	for _, e := range l {
		var s string
		if json.Unmarshal(e, &s) == nil {
			e = json.RawMessage(s)
		}
		f, err := mongoNumber(e)
		if err != nil || f < 0 || f > math.MaxUint32 || f != math.Trunc(f) {
			return nil, fmt.Errorf("id %s out of range", e)
		}
		if !slices.Contains(out, uint32(f)) {
			out = append(out, uint32(f))
		}
	}
	return out, nil
}

// mongoTime reads a time: Shifter stores epoch seconds (time.time());
// extended JSON dates ({"$date": "2020-01-02T03:04:05Z"},
// {"$date": {"$numberLong": "<ms>"}}, {"$date": <ms>}) are accepted.
func mongoTime(v json.RawMessage) (time.Time, error) {
	if f, err := mongoNumber(v); err == nil {
		if f < 0 || f > 1e11 {
			return time.Time{}, fmt.Errorf("epoch seconds %v out of range", f)
		}
		return time.Unix(0, int64(f*1e9)).UTC(), nil
	}
	var d struct {
		Date json.RawMessage `json:"$date"`
	}
	if err := json.Unmarshal(v, &d); err != nil || d.Date == nil {
		return time.Time{}, fmt.Errorf("%s is not a time", v)
	}
	var s string
	if json.Unmarshal(d.Date, &s) == nil {
		t, err := time.Parse(time.RFC3339Nano, s)
		return t.UTC(), err
	}
	ms, err := mongoNumber(d.Date)
	if err != nil || ms < 0 || ms > 1e14 {
		return time.Time{}, fmt.Errorf("%s is not a time", v)
	}
	return time.UnixMilli(int64(ms)).UTC(), nil
}
