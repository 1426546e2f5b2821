// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/shifter-go/shifter/gateway/api"
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

// visible reports whether a caller may see the image.
func (r *imageRecord) visible(id *Identity) bool {
	if r.Public {
		return true
	}
	if id == nil || !id.Authenticated {
		return false
	}
	if id.UID == 0 {
		return true
	}
	for _, u := range r.UserACL {
		if u == id.UID {
			return true
		}
	}
	for _, g := range r.GroupACL {
		for _, h := range id.Groups {
			if g == h {
				return true
			}
		}
	}
	return false
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
}

func (b *bindRecord) key() []byte { return key(pfxBind, b.System, b.Itype, b.Tag, b.Scope) }

func (b *bindRecord) private() bool { return b.Scope != "" }

// visible reports whether a caller may see the binding; img is the
// image it names. A binding of an image that is not READY, or that the
// caller may not use, is never visible.
func (b *bindRecord) visible(id *Identity, img *imageRecord) bool {
	if img == nil || img.ID != b.ID || img.Status != api.StateReady || !img.visible(id) {
		return false
	}
	return b.allows(id)
}

// allows reports whether the binding's own ACL admits a caller: always
// for a public binding; for a private one, root and those on its ACL.
func (b *bindRecord) allows(id *Identity) bool {
	if !b.private() {
		return true
	}
	if id == nil || !id.Authenticated {
		return false
	}
	if id.UID == 0 || slices.Contains(b.UserACL, id.UID) {
		return true
	}
	for _, g := range id.Groups {
		if slices.Contains(b.GroupACL, g) {
			return true
		}
	}
	return false
}

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

// Store is the gateway's badger database.
type Store struct {
	db *badger.DB
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Debugf(f string, a ...any)   {}

// OpenStore opens (creating) the database in dir. Writes are synchronous:
// a committed transaction survives kill -9.
func OpenStore(dir string, log *slog.Logger) (*Store, error) {
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(badgerLogger{log.With("component", "badger")}).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithValueLogFileSize(32 << 20).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithNumCompactors(2)
	// The directory lock can outlive a killed gateway for a moment: a
	// child it was starting holds a copy of the locked descriptor between
	// fork and exec. Wait for it a little before giving up.
	var db *badger.DB
	var err error
	for deadline := time.Now().Add(lockWait); ; {
		db, err = badger.Open(opts)
		if err == nil || !strings.Contains(err.Error(), "Cannot acquire directory lock") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// lockWait is how long OpenStore waits for the database's directory lock.
const lockWait = 3 * time.Second

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// tx wraps a badger transaction with JSON helpers.
type tx struct{ t *badger.Txn }

var errNoKey = errors.New("no such key")

func (t tx) get(k []byte, v any) error {
	it, err := t.t.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return errNoKey
	}
	if err != nil {
		return err
	}
	return it.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

func (t tx) put(k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.t.Set(k, b)
}

func (t tx) del(k []byte) error { return t.t.Delete(k) }

// scan calls fn for each key with the prefix.
func (t tx) scan(pfx []byte, fn func(k []byte, val func(v any) error) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = pfx
	it := t.t.NewIterator(opts)
	defer it.Close()
	for it.Seek(pfx); it.ValidForPrefix(pfx); it.Next() {
		item := it.Item()
		k := item.KeyCopy(nil)
		err := fn(k, func(v any) error { return item.Value(func(b []byte) error { return json.Unmarshal(b, v) }) })
		if err != nil {
			return err
		}
	}
	return nil
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

func (t tx) incr(name string, by uint64) error {
	k := key(pfxCount, name)
	var n uint64
	it, err := t.t.Get(k)
	if err == nil {
		err = it.Value(func(b []byte) error {
			if len(b) == 8 {
				n = binary.BigEndian.Uint64(b)
			}
			return nil
		})
	}
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n+by)
	return t.t.Set(k, b[:])
}

// update runs fn in a read-write transaction, retrying on conflicts.
func (s *Store) update(fn func(tx) error) error {
	for i := 0; ; i++ {
		err := s.db.Update(func(t *badger.Txn) error { return fn(tx{t}) })
		if errors.Is(err, badger.ErrConflict) && i < 20 {
			continue
		}
		return err
	}
}

// view runs fn in a read-only transaction.
func (s *Store) view(fn func(tx) error) error {
	return s.db.View(func(t *badger.Txn) error { return fn(tx{t}) })
}

// counter returns a persistent counter.
func (s *Store) counter(name string) (uint64, error) {
	var n uint64
	err := s.view(func(t tx) error {
		it, err := t.t.Get(key(pfxCount, name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(b []byte) error {
			if len(b) == 8 {
				n = binary.BigEndian.Uint64(b)
			}
			return nil
		})
	})
	return n, err
}

// addLookup logs a lookup; rows live for 30 days.
func (s *Store) addLookup(system string, row lookupRow) error {
	return s.update(func(t tx) error {
		var ts [8]byte
		binary.BigEndian.PutUint64(ts[:], uint64(time.Now().UnixNano()))
		b, err := json.Marshal(row)
		if err != nil {
			return err
		}
		e := badger.NewEntry(key(pfxLookup, system, string(ts[:])), b).WithTTL(30 * 24 * time.Hour)
		if err := t.t.SetEntry(e); err != nil {
			return err
		}
		return t.incr("lookups/"+system, 1)
	})
}

// lookups returns the last n lookup rows of a system that keep returns
// true for, newest first.
func (s *Store) lookups(system string, n int, keep func(*lookupRow) bool) ([]lookupRow, error) {
	out := []lookupRow{}
	err := s.view(func(t tx) error {
		pfx := key(pfxLookup, system, "")
		opts := badger.DefaultIteratorOptions
		opts.Reverse = true
		opts.Prefix = pfx
		it := t.t.NewIterator(opts)
		defer it.Close()
		seek := append(append([]byte{}, pfx...), 0xff)
		for it.Seek(seek); it.ValidForPrefix(pfx) && len(out) < n; it.Next() {
			var r lookupRow
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &r) }); err != nil {
				return err
			}
			if keep(&r) {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}
