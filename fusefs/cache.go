// SPDX-License-Identifier: BSD-3-Clause

package fusefs

import "sync"

const cacheShards = 32

// inodeCache keeps decoded inodes (nodes) by node id so that GETATTR, READ and
// READDIR on a known node do not decode its inode again. It is bounded:
// a full shard drops an arbitrary entry for each new one.
type inodeCache struct {
	perShard int
	shards   [cacheShards]struct {
		mu sync.Mutex
		m  map[uint64]*node
	}
}

func newInodeCache(size int) *inodeCache {
	if size <= 0 {
		return nil
	}
	c := &inodeCache{perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*node)
	}
	return c
}

func (c *inodeCache) get(id uint64) *node {
	if c == nil {
		return nil
	}
	s := &c.shards[(id>>3)%cacheShards]
	s.mu.Lock()
	in := s.m[id]
	s.mu.Unlock()
	return in
}

func (c *inodeCache) put(id uint64, in *node) {
	if c == nil {
		return
	}
	s := &c.shards[(id>>3)%cacheShards]
	s.mu.Lock()
	if len(s.m) >= c.perShard {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[id] = in
	s.mu.Unlock()
}
