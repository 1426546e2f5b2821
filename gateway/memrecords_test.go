// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"
)

// memRecords is the in-memory records of tests: transactions run one at
// a time; an update's writes apply only when it succeeds. TTLs are
// ignored.
type memRecords struct {
	mu     sync.Mutex
	m      map[string][]byte
	closed bool
}

func newMemRecords() *memRecords { return &memRecords{m: map[string][]byte{}} }

var errMemClosed = errors.New("memory records closed")

func (s *memRecords) view(fn func(tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errMemClosed
	}
	return fn(tx{&memTxn{base: s.m}})
}

func (s *memRecords) update(fn func(tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errMemClosed
	}
	t := &memTxn{base: s.m, writes: map[string][]byte{}, writable: true}
	if err := fn(tx{t}); err != nil {
		return err
	}
	for k, v := range t.writes {
		if v == nil {
			delete(s.m, k)
		} else {
			s.m[k] = v
		}
	}
	return nil
}

func (s *memRecords) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// memTxn reads its own writes (nil: deleted) over the base.
type memTxn struct {
	base     map[string][]byte
	writes   map[string][]byte
	writable bool
}

var errReadOnly = errors.New("write in a read-only transaction")

func (t *memTxn) get(k []byte) ([]byte, error) {
	v, ok := t.writes[string(k)]
	if !ok {
		v, ok = t.base[string(k)]
	}
	if !ok || v == nil {
		return nil, errNoKey
	}
	return slices.Clone(v), nil
}

func (t *memTxn) set(k, v []byte, _ time.Duration) error {
	if !t.writable {
		return errReadOnly
	}
	t.writes[string(k)] = append([]byte{}, v...)
	return nil
}

func (t *memTxn) del(k []byte) error {
	if !t.writable {
		return errReadOnly
	}
	t.writes[string(k)] = nil
	return nil
}

func (t *memTxn) scan(pfx []byte, reverse bool, fn func(k, v []byte) (bool, error)) error {
	all := maps.Clone(t.base)
	for k, v := range t.writes {
		all[k] = v
	}
	var keys []string
	for k, v := range all {
		if v != nil && bytes.HasPrefix([]byte(k), pfx) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if reverse {
		slices.Reverse(keys)
	}
	for _, k := range keys {
		more, err := fn([]byte(k), all[k])
		if err != nil || !more {
			return err
		}
	}
	return nil
}
