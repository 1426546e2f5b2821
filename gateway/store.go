// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
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
	// Badger opens its tables in goroutines that panic on a damaged
	// one (a truncated .sst), and skips a table whose checksums fail,
	// losing its records without an error: check every table first.
	if err := checkTables(dir); err != nil {
		return nil, fmt.Errorf("open database %s: %w", dir, err)
	}
	// The directory lock can outlive a killed gateway for a moment: a
	// child it was starting holds a copy of the locked descriptor between
	// fork and exec. Wait for it a little before giving up.
	var db *badger.DB
	var err error
	for deadline := time.Now().Add(lockWait); ; {
		db, err = openBadger(opts)
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

// ErrDamaged marks a database that cannot be read as it was written.
var ErrDamaged = errors.New("the database is damaged: move it aside and rebuild the records from the image stores (shifter-gateway --rebuild-db, docs/gateway.md)")

// openBadger is badger.Open with its panics (on damaged files it reads
// in the calling goroutine) turned into errors.
func openBadger(opts badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: badger: %v", ErrDamaged, r)
			slog.Debug("badger panic", "stack", string(debug.Stack()))
		}
	}()
	return badger.Open(opts)
}

// checkTables opens and checksums every table file of the database in
// dir that its MANIFEST lists, recovering from badger's panics on
// damaged ones. Tables the MANIFEST does not list (a flush cut short by
// a crash leaves an empty one) are badger's to delete.
func checkTables(dir string) error {
	fp, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a new database
	}
	if err != nil {
		return err
	}
	d := badger.DefaultOptions(dir)
	m, _, err := badger.ReplayManifestFile(fp, d.ExternalMagicVersion, d)
	fp.Close()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrDamaged, badger.ManifestFilename, err)
	}
	for id, tm := range m.Tables {
		name := table.NewFilename(id, dir)
		if err := checkTable(name, table.Options{ReadOnly: true, ChkMode: options.OnTableRead, BlockSize: d.BlockSize,
			BloomFalsePositive: d.BloomFalsePositive, Compression: tm.Compression, ZSTDCompressionLevel: d.ZSTDCompressionLevel}); err != nil {
			return fmt.Errorf("%w: table %s: %w", ErrDamaged, filepath.Base(name), err)
		}
	}
	return nil
}

func checkTable(name string, topt table.Options) (err error) {
	mf, err := z.OpenMmapFile(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			mf.Close(-1)
			msg := strings.Join(strings.Fields(fmt.Sprint(r)), " ")
			err = fmt.Errorf("unreadable: %.300s", msg)
		}
	}()
	// OpenTable closes the file on most of its errors (a second close
	// could unmap another mapping: a file left open on the others is
	// the lesser harm, before the gateway stops). Never DecrRef the
	// table: its last reference deletes the file.
	if _, err := table.OpenTable(mf, topt); err != nil {
		return err
	}
	return mf.Close(-1)
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
