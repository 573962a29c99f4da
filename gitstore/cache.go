package gitstore

import (
	"container/list"
	"hash/crc32"
	"sync"
	"sync/atomic"

	"github.com/nexus-mem/nexus"
)

// cache is the L1 cache: a least-recently-used map from context id to the
// context's encoded bytes, bounded in bytes. Every entry carries a CRC-32C
// of its bytes, checked on every hit; a damaged entry is dropped and
// counted, and the caller reloads from git.
type cache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	ll    *list.List
	items map[nexus.ID]*list.Element

	hits, misses, corrupt atomic.Int64
	cleared               atomic.Int64 // corrupt at the last recovery
}

type cacheItem struct {
	id  nexus.ID
	b   []byte
	crc uint32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// itemOverhead approximates the bookkeeping bytes of one entry.
const itemOverhead = 128

func newCache(maxBytes int64) *cache {
	return &cache{max: maxBytes, ll: list.New(), items: map[nexus.ID]*list.Element{}}
}

// get returns the cached bytes of id, or nil.
func (c *cache) get(id nexus.ID) []byte {
	c.mu.Lock()
	el, ok := c.items[id]
	if !ok {
		c.mu.Unlock()
		c.misses.Add(1)
		return nil
	}
	it := el.Value.(*cacheItem)
	if crc32.Checksum(it.b, castagnoli) != it.crc {
		c.removeLocked(el)
		c.mu.Unlock()
		c.corrupt.Add(1)
		c.misses.Add(1)
		return nil
	}
	c.ll.MoveToFront(el)
	c.mu.Unlock()
	c.hits.Add(1)
	return it.b
}

// put stores b (which must not be modified afterwards) for id.
func (c *cache) put(id nexus.ID, b []byte) {
	size := int64(len(b)) + itemOverhead
	it := &cacheItem{id: id, b: b, crc: crc32.Checksum(b, castagnoli)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if size > c.max/8 { // c.max moves with resize: read it under mu
		return // one entry may not flush a large part of the cache
	}
	if el, ok := c.items[id]; ok {
		c.removeLocked(el)
	}
	c.items[id] = c.ll.PushFront(it)
	c.used += size
	for c.used > c.max {
		c.removeLocked(c.ll.Back())
	}
}

func (c *cache) removeLocked(el *list.Element) {
	it := el.Value.(*cacheItem)
	c.ll.Remove(el)
	delete(c.items, it.id)
	c.used -= int64(len(it.b)) + itemOverhead
}

// CacheStats describes the L1 cache.
type CacheStats struct {
	Entries      int   `json:"entries"`
	Bytes        int64 `json:"bytes"`
	MaxBytes     int64 `json:"max_bytes"`
	Hits         int64 `json:"hits"`
	Misses       int64 `json:"misses"`
	CorruptDrops int64 `json:"corrupt_drops"`
	// ClearedDrops is CorruptDrops when the cache was last cleared by a
	// recovery: the drops since then are unexplained.
	ClearedDrops int64 `json:"cleared_drops"`
}

func (c *cache) stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{
		Entries: c.ll.Len(), Bytes: c.used, MaxBytes: c.max,
		Hits: c.hits.Load(), Misses: c.misses.Load(), CorruptDrops: c.corrupt.Load(), ClearedDrops: c.cleared.Load(),
	}
}

// verifyAll checks every entry against its checksum, drops the bad ones
// and returns how many it dropped.
func (c *cache) verifyAll() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for el := c.ll.Front(); el != nil; {
		next := el.Next()
		if it := el.Value.(*cacheItem); crc32.Checksum(it.b, castagnoli) != it.crc {
			c.removeLocked(el)
			c.corrupt.Add(1)
			n++
		}
		el = next
	}
	return n
}

// clear drops every entry.
func (c *cache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.ll.Len() > 0 {
		c.removeLocked(c.ll.Back())
	}
}

// resize sets the budget, evicting the least recently used entries that
// no longer fit.
func (c *cache) resize(maxBytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max = maxBytes
	for c.used > c.max && c.ll.Len() > 0 {
		c.removeLocked(c.ll.Back())
	}
}

// SetCacheBytes changes the L1 cache budget at run time; a smaller budget
// evicts at once. underPressure says the change answers memory pressure,
// which the memory_cache health then reports.
func (s *Store) SetCacheBytes(n int64, underPressure bool) {
	if n < 1<<20 {
		n = 1 << 20
	}
	s.cache.resize(n)
	s.memPressure.Store(underPressure)
}
