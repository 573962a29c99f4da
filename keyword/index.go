package keyword

import (
	"math/bits"
	"slices"
	"strings"
	"sync"

	"github.com/nexus-mem/nexus"
)

// MaxKey is the largest document key. Keys are dense ordinals: the index
// keeps a few bytes per key up to the largest one added.
const MaxKey = 1<<28 - 1

// autoCompact is the number of tombstones from which a Delete that brings
// them to a quarter of the documents compacts the index.
const autoCompact = 1024

// Config chooses the analyzer of a new index. The zero value is the
// default.
type Config struct {
	// NoStem turns the English stemmer off (see [Analyzer]).
	NoStem bool
}

// Index is an in-memory BM25 inverted index of documents keyed by dense
// uint32 ordinals. It is safe for concurrent use.
type Index struct {
	an Analyzer

	mu     sync.RWMutex
	dict   map[string]uint32 // term → id
	lists  []postings        // id → postings
	lens   []uint32          // key → length in terms
	added  bitset            // keys in the postings, tombstoned or not
	dead   bitset            // tombstoned keys, still in the postings
	ndocs  int               // keys in added
	ndead  int               // keys in dead
	sumLen uint64            // total length of the added docs
}

// New returns an empty index.
func New(cfg Config) *Index {
	return &Index{an: Analyzer(cfg), dict: map[string]uint32{}}
}

// Analyzer returns the analyzer the index applies to documents and queries.
func (x *Index) Analyzer() Analyzer { return x.an }

// Add indexes text under key. Documents are immutable: adding a key that
// is present is a conflict. Adding a key that was deleted compacts the
// index first, which costs a pass over all postings.
func (x *Index) Add(key uint32, text string) error {
	if key > MaxKey {
		return nexus.Errorf(nexus.EInvalid, "key %d over the limit of %d", key, MaxKey)
	}
	terms, words := x.an.indexTerms(text)
	slices.Sort(terms)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.added.has(key) {
		if !x.dead.has(key) {
			return nexus.Errorf(nexus.EConflict, "key %d is already indexed", key)
		}
		x.compactLocked()
	}
	x.addLocked(key, terms, words)
	return nil
}

// addLocked indexes the sorted terms of a new key of length words.
func (x *Index) addLocked(key uint32, terms []string, words int) {
	if int(key) >= len(x.lens) {
		n := len(x.lens)
		x.lens = slices.Grow(x.lens, int(key)+1-n)[:key+1]
		clear(x.lens[n:])
	}
	x.lens[key] = uint32(words)
	x.added.set(key)
	x.ndocs++
	x.sumLen += uint64(words)
	for i := 0; i < len(terms); {
		j := i + 1
		for j < len(terms) && terms[j] == terms[i] {
			j++
		}
		id, ok := x.dict[terms[i]]
		if !ok {
			id = uint32(len(x.lists))
			x.dict[strings.Clone(terms[i])] = id
			x.lists = append(x.lists, postings{})
		}
		x.lists[id].add(key, uint32(j-i), x.lens)
		i = j
	}
}

// Delete tombstones key: it is no longer returned by Search, but still
// counts in the BM25 statistics until the index is compacted. It reports
// whether key was indexed and not yet deleted. When tombstones reach a
// quarter of the documents (and at least 1024), Delete compacts.
func (x *Index) Delete(key uint32) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.added.has(key) || x.dead.has(key) {
		return false
	}
	x.dead.set(key)
	x.ndead++
	if x.ndead >= autoCompact && x.ndead*4 >= x.ndocs {
		x.compactLocked()
	}
	return true
}

// Compact purges tombstoned documents from the postings and the
// statistics. It takes time proportional to the postings and blocks
// Search and Add meanwhile.
func (x *Index) Compact() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.compactLocked()
}

func (x *Index) compactLocked() {
	if x.ndead == 0 {
		return
	}
	lists := make([]postings, 0, len(x.lists))
	for t, id := range x.dict {
		p := x.lists[id]
		p.purge(x.dead.has, x.lens)
		if len(p.docs) == 0 {
			delete(x.dict, t)
			continue
		}
		x.dict[t] = uint32(len(lists))
		lists = append(lists, p)
	}
	x.lists = lists
	for w, m := range x.dead {
		for ; m != 0; m &= m - 1 {
			key := uint32(w*64 + bits.TrailingZeros64(m))
			x.sumLen -= uint64(x.lens[key])
			x.lens[key] = 0
			x.added.clear(key)
		}
	}
	x.ndocs -= x.ndead
	x.ndead = 0
	x.dead = nil
	for len(x.lens) > 0 && !x.added.has(uint32(len(x.lens)-1)) {
		x.lens = x.lens[:len(x.lens)-1]
	}
}

// Stats describes an index.
type Stats struct {
	Docs     int // live documents
	Deleted  int // tombstoned documents not yet compacted away
	Terms    int // distinct terms
	Postings int // (term, document) pairs, tombstoned ones included
	MaxKey   int // one more than the largest key in the postings
}

// Stats returns the current statistics.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s := Stats{Docs: x.ndocs - x.ndead, Deleted: x.ndead, Terms: len(x.dict), MaxKey: len(x.lens)}
	for i := range x.lists {
		s.Postings += len(x.lists[i].docs)
	}
	return s
}

// Has reports whether key is indexed and not deleted.
func (x *Index) Has(key uint32) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.added.has(key) && !x.dead.has(key)
}

// bitset is a set of keys.
type bitset []uint64

func (b bitset) has(k uint32) bool {
	w := int(k / 64)
	return w < len(b) && b[w]&(1<<(k%64)) != 0
}

func (b *bitset) set(k uint32) {
	w := int(k / 64)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	(*b)[w] |= 1 << (k % 64)
}

func (b bitset) clear(k uint32) {
	if w := int(k / 64); w < len(b) {
		b[w] &^= 1 << (k % 64)
	}
}
