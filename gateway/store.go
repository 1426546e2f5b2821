// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Key spaces of the database. Components are separated by NUL, which no
// system name, type, tag or id may contain.
const (
	pfxJob    = "j\x00" // j system itype tag scope -> jobRecord
	pfxImage  = "i\x00" // i system id -> imageRecord
	pfxTag    = "t\x00" // t system itype tag -> id
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
}

func (j *jobRecord) key() []byte { return key(pfxJob, j.System, j.Itype, j.Tag, j.Scope) }

func terminal(state string) bool {
	switch state {
	case "READY", "FAILURE", "EXPIRED":
		return true
	}
	return false
}

// imageRecord is a published image of one system.
type imageRecord struct {
	ID         string            `json:"id"`
	System     string            `json:"system"`
	Itype      string            `json:"itype"`
	Tags       []string          `json:"tags"`
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

type lookupRow struct {
	Time float64 `json:"time"`
	User string  `json:"user,omitempty"`
	UID  uint32  `json:"uid"`
	Type string  `json:"type"`
	Tag  string  `json:"tag"`
	ID   string  `json:"id"`
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
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

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

func (t tx) getTag(system, itype, tag string) (string, error) {
	var id string
	err := t.get(key(pfxTag, system, itype, tag), &id)
	return id, err
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

// lookups returns the last n lookup rows of a system, newest first.
func (s *Store) lookups(system string, n int) ([]lookupRow, error) {
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
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
