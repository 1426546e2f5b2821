// SPDX-License-Identifier: BSD-3-Clause

package squashreader

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// cache is a bounded LRU of immutable values with singleflight loading:
// concurrent gets of a missing key run load once and share its result.
// Errors are not cached.
type cache[K comparable, V any] struct {
	mu       sync.Mutex
	max      int64
	used     int64
	cost     func(V) int64
	lru      list.List // of *entry[K, V], front = most recent
	m        map[K]*list.Element
	inflight map[K]*flight[V]
	waits    atomic.Uint64 // gets that waited for another's load
}

type entry[K comparable, V any] struct {
	key K
	val V
}

type flight[V any] struct {
	done chan struct{}
	val  V
	err  error
}

func newCache[K comparable, V any](max int64, cost func(V) int64) *cache[K, V] {
	return &cache[K, V]{max: max, cost: cost, m: map[K]*list.Element{}, inflight: map[K]*flight[V]{}}
}

// peek reports whether key is cached or being loaded.
func (c *cache[K, V]) peek(key K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		return true
	}
	_, ok := c.inflight[key]
	return ok
}

func (c *cache[K, V]) get(key K, load func() (V, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.m[key]; ok {
		c.lru.MoveToFront(e)
		v := e.Value.(*entry[K, V]).val
		c.mu.Unlock()
		return v, nil
	}
	if f, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		c.waits.Add(1)
		<-f.done
		return f.val, f.err
	}
	f := &flight[V]{done: make(chan struct{})}
	c.inflight[key] = f
	c.mu.Unlock()

	func() {
		defer func() {
			if p := recover(); p != nil {
				f.err = formatErr(-1, "decoder panic: %v", p)
			}
		}()
		f.val, f.err = load()
	}()

	c.mu.Lock()
	delete(c.inflight, key)
	if f.err == nil && c.max > 0 {
		cost := c.cost(f.val)
		if cost <= c.max {
			c.m[key] = c.lru.PushFront(&entry[K, V]{key, f.val})
			c.used += cost
			for c.used > c.max {
				last := c.lru.Back()
				e := last.Value.(*entry[K, V])
				c.lru.Remove(last)
				delete(c.m, e.key)
				c.used -= c.cost(e.val)
			}
		}
	}
	c.mu.Unlock()
	close(f.done)
	return f.val, f.err
}
