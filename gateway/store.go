// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

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

// badgerTxn is a kvTxn over a badger transaction.
type badgerTxn struct{ t *badger.Txn }

func (b badgerTxn) get(k []byte) ([]byte, error) {
	it, err := b.t.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, errNoKey
	}
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}

func (b badgerTxn) set(k, v []byte, ttl time.Duration) error {
	e := badger.NewEntry(k, v)
	if ttl > 0 {
		e = e.WithTTL(ttl)
	}
	return b.t.SetEntry(e)
}

func (b badgerTxn) del(k []byte) error { return b.t.Delete(k) }

func (b badgerTxn) scan(pfx []byte, reverse bool, fn func(k, v []byte) (bool, error)) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = pfx
	opts.Reverse = reverse
	it := b.t.NewIterator(opts)
	defer it.Close()
	seek := pfx
	if reverse {
		seek = append(append([]byte{}, pfx...), 0xff)
	}
	for it.Seek(seek); it.ValidForPrefix(pfx); it.Next() {
		item := it.Item()
		more := true
		err := item.Value(func(v []byte) (err error) { more, err = fn(item.Key(), v); return err })
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// update runs fn in a read-write transaction, retrying on conflicts.
func (s *Store) update(fn func(tx) error) error {
	for i := 0; ; i++ {
		err := s.db.Update(func(t *badger.Txn) error { return fn(tx{badgerTxn{t}}) })
		if errors.Is(err, badger.ErrConflict) && i < 20 {
			continue
		}
		return err
	}
}

// view runs fn in a read-only transaction.
func (s *Store) view(fn func(tx) error) error {
	return s.db.View(func(t *badger.Txn) error { return fn(tx{badgerTxn{t}}) })
}
