// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
)

// Key spaces of the database. Components are separated by NUL, which no
// system name, type, tag or id may contain.
const (
	pfxJob    = "j\x00" // j system itype tag scope -> jobRecord
	pfxImage  = "i\x00" // i system id -> imageRecord
	pfxTag    = "t\x00" // legacy: t system itype tag -> id (migrated to pfxBind at start-up)
	pfxBind   = "b\x00" // b system itype tag scope -> bindRecord
	pfxLookup = "l\x00" // l system bigendian-nanos -> lookupRow
	pfxCount  = "c\x00" // c name -> uint64
)

func key(pfx string, parts ...string) []byte { return []byte(pfx + strings.Join(parts, "\x00")) }

// jobRecord is a pull request's durable state: the queue is the set of
// jobs in a non-terminal state. Registry credentials are never stored;
// HasCreds only says the requester gave some.
type jobRecord struct {
	System    string    `json:"system"`
	Itype     string    `json:"itype"`
	Tag       string    `json:"tag"`
	Scope     string    `json:"scope"` // "" shared public pull, "u<uid>" private to the requester
	UID       uint32    `json:"uid"`
	GID       uint32    `json:"gid"`
	User      string    `json:"user"`
	UserACL   []uint32  `json:"user_acl,omitempty"`
	GroupACL  []uint32  `json:"group_acl,omitempty"`
	HasCreds  bool      `json:"has_creds,omitempty"`
	Status    string    `json:"status"`
	Message   string    `json:"message"`
	Done      int64     `json:"done,omitempty"`
	Total     int64     `json:"total,omitempty"`
	ID        string    `json:"id,omitempty"`
	Attempts  int       `json:"attempts"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	Finished  time.Time `json:"finished"`
	Seq       uint64    `json:"seq"`
	Requested bool      `json:"requested_acl,omitempty"` // an ACL was asked for
	// Private is set when the job committed a private grant (an ACL was
	// asked for, or the registry needed the requester's credentials): its
	// tag binding is then the requester's own (bindScope).
	Private bool `json:"private,omitempty"`
	// Imports (Itype custom): the file to import, its format, and the
	// requester's groups (resolved when the import was requested), with
	// whose rights the file is read.
	FilePath string   `json:"filepath,omitempty"`
	Format   string   `json:"format,omitempty"`
	Groups   []uint32 `json:"groups,omitempty"`
}

// bindScope is the scope of the tag binding a READY job made.
func (j *jobRecord) bindScope() string {
	if j.Private {
		return scopeOf(j.UID)
	}
	return ""
}

func (j *jobRecord) key() []byte { return key(pfxJob, j.System, j.Itype, j.Tag, j.Scope) }

func terminal(state string) bool {
	switch state {
	case "READY", "FAILURE", "EXPIRED":
		return true
	}
	return false
}

// imageRecord is a published image of one system. Its tags are the
// bindings (bindRecord) that name its id.
type imageRecord struct {
	ID         string            `json:"id"`
	System     string            `json:"system"`
	Itype      string            `json:"itype"`
	Status     string            `json:"status"` // READY or EXPIRED
	Public     bool              `json:"public"`
	UserACL    []uint32          `json:"user_acl,omitempty"`
	GroupACL   []uint32          `json:"group_acl,omitempty"`
	Env        []string          `json:"env,omitempty"`
	Entry      []string          `json:"entry,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Workdir    string            `json:"workdir,omitempty"`
	User       string            `json:"user,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Size       int64             `json:"size"`
	SHA256     string            `json:"sha256,omitempty"`
	Created    time.Time         `json:"created"`
	LastPull   time.Time         `json:"last_pull"`
	LastLookup time.Time         `json:"last_lookup"`
	Expiration time.Time         `json:"expiration"`
}

// bindRecord binds a tag to an image, for one scope. Tags carry their
// own visibility:
//
//   - scope "" is the tag's public binding, made by public pulls (no ACL
//     asked for, manifest served anonymously). Whoever may use the image
//     may see it.
//   - scope "u<uid>" is a private binding, made by that user's private
//     pull (an ACL asked for, or the registry needed the user's
//     credentials). Only its own ACL (the puller always included) and
//     root may see it, whatever the image's ACL: the image may be public
//     through other tags.
//
// Several bindings of one tag may exist (the public one and private ones
// of different users, possibly naming different images); a caller's
// lookup takes the newest one they may see.
type bindRecord struct {
	System   string    `json:"system"`
	Itype    string    `json:"itype"`
	Tag      string    `json:"tag"`
	Scope    string    `json:"scope"`
	ID       string    `json:"id"`
	UserACL  []uint32  `json:"user_acl,omitempty"`
	GroupACL []uint32  `json:"group_acl,omitempty"`
	Pulled   time.Time `json:"pulled"`
	Looked   time.Time `json:"looked,omitzero"`
	// Importer is the scope ("u<uid>") of the user whose import made a
	// custom tag's binding: only they or an administrator may replace
	// its public binding (submitImport).
	Importer string `json:"importer,omitempty"`
}

func (b *bindRecord) key() []byte { return key(pfxBind, b.System, b.Itype, b.Tag, b.Scope) }

func (b *bindRecord) private() bool { return b.Scope != "" }

// lastUse is the binding's latest pull or lookup.
func (b *bindRecord) lastUse() time.Time {
	if b.Looked.After(b.Pulled) {
		return b.Looked
	}
	return b.Pulled
}

type lookupRow struct {
	Time float64 `json:"time"`
	User string  `json:"user,omitempty"`
	UID  uint32  `json:"uid"`
	Type string  `json:"type"`
	Tag  string  `json:"tag"`
	ID   string  `json:"id"`
	// The binding looked up, when private: the row is shown only to
	// administrators who may see that binding.
	Scope    string   `json:"scope,omitempty"`
	UserACL  []uint32 `json:"user_acl,omitempty"`
	GroupACL []uint32 `json:"group_acl,omitempty"`
}

// records is the gateway's durable state: jobs, image records, tag
// bindings, the lookup log and counters, all read and written in
// transactions of tx. The database (Store, badger) is the production
// implementation; tests also run the gateway on an in-memory one.
type records interface {
	// view runs fn in a read-only transaction.
	view(fn func(tx) error) error
	// update runs fn in a read-write transaction: all of its writes or
	// none (when fn fails), retried on conflicts.
	update(fn func(tx) error) error
	Close() error
}

// kvTxn is the key-value transaction under tx.
type kvTxn interface {
	// get returns the value of k, or errNoKey.
	get(k []byte) ([]byte, error)
	// set sets k; a positive ttl makes the entry expire.
	set(k, v []byte, ttl time.Duration) error
	del(k []byte) error
	// scan calls fn for each key with the prefix, in key order (reverse:
	// descending); v is valid during the call only. fn returns false to
	// stop.
	scan(pfx []byte, reverse bool, fn func(k, v []byte) (bool, error)) error
}

// tx is one transaction, with JSON helpers for the records.
type tx struct{ kv kvTxn }

var errNoKey = errors.New("no such key")

func (t tx) get(k []byte, v any) error {
	b, err := t.kv.get(k)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (t tx) put(k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.kv.set(k, b, 0)
}

func (t tx) del(k []byte) error { return t.kv.del(k) }

// scan calls fn for each key with the prefix.
func (t tx) scan(pfx []byte, fn func(k []byte, val func(v any) error) error) error {
	return t.kv.scan(pfx, false, func(k, b []byte) (bool, error) {
		err := fn(slices.Clone(k), func(v any) error { return json.Unmarshal(b, v) })
		return err == nil, err
	})
}

func (t tx) getJob(k []byte) (*jobRecord, error) {
	var j jobRecord
	if err := t.get(k, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

func (t tx) getImage(system, id string) (*imageRecord, error) {
	var r imageRecord
	if err := t.get(key(pfxImage, system, id), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (t tx) putImage(r *imageRecord) error { return t.put(key(pfxImage, r.System, r.ID), r) }

func (t tx) getBind(k []byte) (*bindRecord, error) {
	var b bindRecord
	if err := t.get(k, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// bindings returns the bindings under a key prefix.
func (t tx) bindings(pfx []byte) ([]*bindRecord, error) {
	var out []*bindRecord
	err := t.scan(pfx, func(_ []byte, val func(any) error) error {
		var b bindRecord
		if err := val(&b); err != nil {
			return err
		}
		out = append(out, &b)
		return nil
	})
	return out, err
}

// tagBindings returns every binding of one tag (all scopes).
func (t tx) tagBindings(system, itype, tag string) ([]*bindRecord, error) {
	return t.bindings(append(key(pfxBind, system, itype, tag), 0))
}

// systemBindings returns every binding of a system.
func (t tx) systemBindings(system string) ([]*bindRecord, error) {
	return t.bindings(key(pfxBind, system, ""))
}

// imageBindings returns the bindings naming image id.
func (t tx) imageBindings(system, id string) ([]*bindRecord, error) {
	all, err := t.systemBindings(system)
	return slices.DeleteFunc(all, func(b *bindRecord) bool { return b.ID != id }), err
}

// imageCache loads image records once per transaction.
type imageCache struct {
	t    tx
	sys  string
	recs map[string]*imageRecord
}

func (t tx) imageCache(sys string) *imageCache {
	return &imageCache{t: t, sys: sys, recs: map[string]*imageRecord{}}
}

// get returns image id, or nil if there is none.
func (c *imageCache) get(id string) (*imageRecord, error) {
	if r, ok := c.recs[id]; ok {
		return r, nil
	}
	r, err := c.t.getImage(c.sys, id)
	if errors.Is(err, errNoKey) {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	c.recs[id] = r
	return r, nil
}

// visible returns those of binds the caller may see.
func (c *imageCache) visible(binds []*bindRecord, id *Identity) ([]*bindRecord, error) {
	var out []*bindRecord
	for _, b := range binds {
		img, err := c.get(b.ID)
		if err != nil {
			return nil, err
		}
		if b.visible(id, img) {
			out = append(out, b)
		}
	}
	return out, nil
}

// resolveTag returns the binding of a tag that a caller's lookup takes,
// the newest one they may see, and its image; errNoKey if there is none
// (a tag whose bindings the caller may not see is missing to them).
func (t tx) resolveTag(sys, itype, tag string, id *Identity) (*bindRecord, *imageRecord, error) {
	binds, err := t.tagBindings(sys, itype, tag)
	if err != nil {
		return nil, nil, err
	}
	c := t.imageCache(sys)
	vis, err := c.visible(binds, id)
	if err != nil {
		return nil, nil, err
	}
	if len(vis) == 0 {
		return nil, nil, errNoKey
	}
	best := vis[0]
	for _, b := range vis[1:] {
		if b.Pulled.After(best.Pulled) {
			best = b
		}
	}
	img, err := c.get(best.ID)
	return best, img, err
}

// imageVisible returns the bindings of image img a caller may see.
func (t tx) imageVisible(img *imageRecord, id *Identity) ([]*bindRecord, error) {
	binds, err := t.imageBindings(img.System, img.ID)
	if err != nil {
		return nil, err
	}
	var out []*bindRecord
	for _, b := range binds {
		if b.visible(id, img) {
			out = append(out, b)
		}
	}
	return out, nil
}

func (t tx) jobs(pfx []byte) ([]*jobRecord, error) {
	var out []*jobRecord
	err := t.scan(pfx, func(_ []byte, val func(any) error) error {
		var j jobRecord
		if err := val(&j); err != nil {
			return err
		}
		out = append(out, &j)
		return nil
	})
	return out, err
}

func (t tx) images(system string) ([]*imageRecord, error) {
	var out []*imageRecord
	err := t.scan(key(pfxImage, system, ""), func(_ []byte, val func(any) error) error {
		var r imageRecord
		if err := val(&r); err != nil {
			return err
		}
		out = append(out, &r)
		return nil
	})
	return out, err
}

// uint64At reads a counter's value (0 when absent).
func (t tx) uint64At(k []byte) (uint64, error) {
	b, err := t.kv.get(k)
	if errors.Is(err, errNoKey) {
		return 0, nil
	}
	if err != nil || len(b) != 8 {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

func (t tx) setUint64(k []byte, n uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return t.kv.set(k, b[:], 0)
}

func (t tx) incr(name string, by uint64) error {
	k := key(pfxCount, name)
	n, err := t.uint64At(k)
	if err != nil {
		return err
	}
	return t.setUint64(k, n+by)
}

// nextSeq returns the next job sequence number. The counter keeps the
// layout of badger's Sequence, which earlier versions used: the next
// number unused, big-endian.
func (t tx) nextSeq() (uint64, error) {
	k := key(pfxCount, "seq")
	n, err := t.uint64At(k)
	if err != nil {
		return 0, err
	}
	return n, t.setUint64(k, n+1)
}

// counter returns a persistent counter.
func counter(s records, name string) (uint64, error) {
	var n uint64
	err := s.view(func(t tx) (err error) { n, err = t.uint64At(key(pfxCount, name)); return err })
	return n, err
}

// lookupTTL is how long the lookup log keeps a row.
const lookupTTL = 30 * 24 * time.Hour

// addLookup logs a lookup.
func addLookup(s records, system string, row lookupRow, now time.Time) error {
	return s.update(func(t tx) error {
		var ts [8]byte
		binary.BigEndian.PutUint64(ts[:], uint64(now.UnixNano()))
		b, err := json.Marshal(row)
		if err != nil {
			return err
		}
		if err := t.kv.set(key(pfxLookup, system, string(ts[:])), b, lookupTTL); err != nil {
			return err
		}
		return t.incr("lookups/"+system, 1)
	})
}

// lookups returns the last n lookup rows of a system that keep returns
// true for, newest first.
func lookups(s records, system string, n int, keep func(*lookupRow) bool) ([]lookupRow, error) {
	out := []lookupRow{}
	err := s.view(func(t tx) error {
		return t.kv.scan(key(pfxLookup, system, ""), true, func(_, b []byte) (bool, error) {
			var r lookupRow
			if err := json.Unmarshal(b, &r); err != nil {
				return false, err
			}
			if keep(&r) {
				out = append(out, r)
			}
			return len(out) < n, nil
		})
	})
	return out, err
}
