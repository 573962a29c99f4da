package vector

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nexus-mem/nexus"
)

// Limits on options and vectors.
const (
	MaxDim      = 16384 // largest vector length
	MaxM        = 128   // largest Options.M
	MaxEf       = 1 << 16
	maxLevel    = 15 // top layer cap; with M >= 2 a higher one is never drawn in practice
	defaultM    = 24
	defaultEfC  = 100
	defaultEfS  = 192
	defaultSeed = 1
)

// Options tune the graph. Zero fields take the defaults of [DefaultOptions].
type Options struct {
	// M is the number of links a node gets on each layer it is inserted
	// into; a node holds up to 2*M links on layer 0 and M above. Larger M
	// gives higher recall on hard data at the cost of memory and build time.
	M int
	// EfConstruction is the size of the candidate list while inserting.
	// Larger values build a better graph, more slowly.
	EfConstruction int
	// EfSearch is the default size of the candidate list of Search: larger
	// is slower and finds more of the true nearest neighbours. Search uses
	// at least k.
	EfSearch int
	// Seed decides each key's top layer, which is a pure function of Seed
	// and the key.
	Seed int64
}

// DefaultOptions returns the options used for zero fields: M 24,
// EfConstruction 100, EfSearch 192, Seed 1. On 384-dimensional unit vectors
// in 1,000 clusters they measured recall@10 above 0.99 at 100,000 and at
// 1,000,000 vectors, with a median query of 0.5 to 1 ms (docs/VECTOR.md).
func DefaultOptions() Options {
	return Options{M: defaultM, EfConstruction: defaultEfC, EfSearch: defaultEfS, Seed: defaultSeed}
}

// withDefaults fills zero fields and checks the rest.
func (o Options) withDefaults() (Options, error) {
	d := DefaultOptions()
	if o.M == 0 {
		o.M = d.M
	}
	if o.EfConstruction == 0 {
		o.EfConstruction = d.EfConstruction
	}
	if o.EfSearch == 0 {
		o.EfSearch = d.EfSearch
	}
	if o.Seed == 0 {
		o.Seed = d.Seed
	}
	switch {
	case o.M < 2 || o.M > MaxM:
		return o, nexus.Errorf(nexus.EInvalid, "vector index: M is %d, want 2 to %d", o.M, MaxM)
	case o.EfConstruction < 1 || o.EfConstruction > MaxEf:
		return o, nexus.Errorf(nexus.EInvalid, "vector index: EfConstruction is %d, want 1 to %d", o.EfConstruction, MaxEf)
	case o.EfSearch < 1 || o.EfSearch > MaxEf:
		return o, nexus.Errorf(nexus.EInvalid, "vector index: EfSearch is %d, want 1 to %d", o.EfSearch, MaxEf)
	}
	return o, nil
}

// Result is one match of a search.
type Result struct {
	Key   uint32
	Score float32 // dot product with the query: the cosine for unit vectors
}

// Index is an HNSW graph of vectors under uint32 keys. All methods are safe
// for concurrent use.
type Index struct {
	dim   int
	qdim  int // bytes of a quantised vector, qStride(dim)
	opts  Options
	m0    int     // layer-0 link capacity, 2*M
	ml    float64 // level multiplier, 1/ln(M)
	shift uint    // log2 of nodes per chunk
	mask  uint32

	// writeMu is held shared by Add and exclusively by WriteTo, so that a
	// written index holds only whole insertions.
	writeMu sync.RWMutex

	// entryMu serialises the insertions that raise the top layer, for
	// their whole length; entry is read without it.
	entryMu sync.Mutex
	entry   atomic.Uint64 // 0 when empty, else entryBit | level<<32 | id

	growMu sync.Mutex
	chunks atomic.Pointer[[]*chunk]

	keyMu sync.Mutex
	ids   map[uint32]uint32 // key to internal id
	next  atomic.Uint32     // internal ids reserved; written with keyMu held

	count   atomic.Int64 // finished insertions
	scratch sync.Pool

	// floatScores makes insertions rank their candidates by float32
	// scores, as they did before (graph.go, insert): only so that
	// BenchmarkInsertScores can compare the two in one process.
	floatScores bool
}

const entryBit = 1 << 63

// noNode is an id no node has: reserve never hands out MaxUint32.
const noNode = math.MaxUint32

// New returns an empty index of vectors with dim components. Zero option
// fields take their defaults; other invalid values are an EInvalid error.
func New(dim int, opts Options) (*Index, error) {
	if dim < 1 || dim > MaxDim {
		return nil, nexus.Errorf(nexus.EInvalid, "vector index: dimension is %d, want 1 to %d", dim, MaxDim)
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ix := &Index{
		dim:   dim,
		qdim:  qStride(dim),
		opts:  opts,
		m0:    2 * opts.M,
		ml:    1 / math.Log(float64(opts.M)),
		shift: chunkShift(dim),
		ids:   make(map[uint32]uint32),
	}
	ix.mask = 1<<ix.shift - 1
	ix.chunks.Store(&[]*chunk{})
	return ix, nil
}

// Dim returns the number of components of every vector.
func (ix *Index) Dim() int { return ix.dim }

// Len returns the number of vectors whose Add has returned.
func (ix *Index) Len() int { return int(ix.count.Load()) }

// Options returns the options in force, defaults filled in.
func (ix *Index) Options() Options { return ix.opts }

// Add inserts v under key. The vector is copied. It returns an EInvalid
// error when v has the wrong length or a NaN or infinite component, and an
// EConflict error when key is already present. Add may be called from
// several goroutines at once, and concurrently with searches; build with as
// many goroutines as there are cores.
func (ix *Index) Add(key uint32, v []float32) error {
	if msg := ix.check(v); msg != "" {
		return nexus.Errorf(nexus.EInvalid, "vector of key %d: %s", key, msg)
	}
	ix.writeMu.RLock()
	defer ix.writeMu.RUnlock()
	id, err := ix.reserve(key)
	if err != nil {
		return err
	}
	c, i := ix.ensure(id)
	copy(c.vecs[i*ix.dim:(i+1)*ix.dim], v)
	ix.quantizeNode(c, i)
	c.keys[i] = key
	lvl := ix.levelOf(key)
	c.level[i] = uint8(lvl)
	if lvl > 0 {
		c.upper[i] = make([]uint32, lvl*(ix.opts.M+1))
	}
	s := ix.getScratch()
	ix.insert(s, id, lvl)
	ix.scratch.Put(s)
	c.done[i].Store(true)
	ix.count.Add(1)
	return nil
}

// check returns why v is not a valid vector for the index, or "".
func (ix *Index) check(v []float32) string {
	if err := nexus.CheckVector(v, ix.dim); err != nil {
		return nexus.ErrorMessage(err)
	}
	return ""
}

// reserve assigns the next internal id to key.
func (ix *Index) reserve(key uint32) (uint32, error) {
	ix.keyMu.Lock()
	defer ix.keyMu.Unlock()
	if _, ok := ix.ids[key]; ok {
		return 0, nexus.Errorf(nexus.EConflict, "key %d is already in the vector index", key)
	}
	id := ix.next.Load()
	if id == math.MaxUint32 {
		return 0, nexus.Errorf(nexus.ETooLarge, "vector index is full")
	}
	ix.ids[key] = id
	ix.next.Store(id + 1)
	return id, nil
}

// levelOf returns the top layer of key: floor(-ln(u) / ln(M)) for u uniform
// in (0, 1] drawn from a hash of the seed and the key.
func (ix *Index) levelOf(key uint32) int {
	h := splitmix64(uint64(ix.opts.Seed) ^ uint64(key)*0x9e3779b97f4a7c15)
	u := (float64(h>>11) + 1) / (1 << 53)
	return min(int(-math.Log(u)*ix.ml), maxLevel)
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Search returns up to k vectors most similar to q, best first, using
// Options.EfSearch; see [Index.SearchEf].
func (ix *Index) Search(q []float32, k int, allow func(key uint32) bool) ([]Result, error) {
	return ix.SearchEf(q, k, 0, allow)
}

// SearchEf returns up to k vectors most similar to q by dot product, best
// first, with a candidate list of ef (0: Options.EfSearch; at least k).
// When allow is not nil, only keys it accepts are returned; it is called
// from the calling goroutine, at most once per key visited by the walk (and
// once more per key if the search falls back to Exact).
//
// The result holds k vectors whenever the index holds k that allow
// accepts: the graph walk goes on past ef until it has found ef allowed
// vectors, and if the part of the graph it can reach holds fewer than k,
// SearchEf answers with [Index.Exact]. For very selective filters, Exact
// over the few allowed keys is cheaper than a walk.
func (ix *Index) SearchEf(q []float32, k, ef int, allow func(key uint32) bool) ([]Result, error) {
	if msg := ix.check(q); msg != "" {
		return nil, nexus.Errorf(nexus.EInvalid, "query vector: %s", msg)
	}
	if k < 0 || ef < 0 || ef > MaxEf {
		return nil, nexus.Errorf(nexus.EInvalid, "vector search: k is %d and ef %d, want k >= 0 and 0 <= ef <= %d", k, ef, MaxEf)
	}
	e := ix.entry.Load()
	if k == 0 || e == 0 {
		return nil, nil
	}
	if ef == 0 {
		ef = ix.opts.EfSearch
	}
	ef = max(ef, k)
	s := ix.getScratch()
	defer ix.scratch.Put(s)
	cur := cand{id: uint32(e), score: dot(q, ix.vec(uint32(e)))}
	for l := int(e >> 32 & 0xff); l > 0; l-- {
		cur = ix.greedy(s, q, cur, l, noNode)
	}
	s.entries = append(s.entries[:0], cur)
	ix.searchLayer(s, q, s.entries, ef, 0, allow)
	s.w = s.res.drainBest(s.w)
	if len(s.w) < k {
		return ix.Exact(q, k, allow)
	}
	out := make([]Result, k)
	for i, c := range s.w[:k] {
		ch, j := ix.chunkOf(c.id)
		out[i] = Result{Key: ch.keys[j], Score: c.score}
	}
	sortResults(out)
	return out, nil
}

// Exact returns the k vectors most similar to q by brute force over every
// vector whose Add has returned, best first (ties by lower key), limited to
// the keys allow accepts when allow is not nil. allow is called once per
// vector, before its score is computed, so a selective filter makes Exact
// cheap. Exact is the reference Search is measured against.
func (ix *Index) Exact(q []float32, k int, allow func(key uint32) bool) ([]Result, error) {
	if msg := ix.check(q); msg != "" {
		return nil, nexus.Errorf(nexus.EInvalid, "query vector: %s", msg)
	}
	if k < 0 {
		return nil, nexus.Errorf(nexus.EInvalid, "vector search: k is %d, want k >= 0", k)
	}
	if k == 0 {
		return nil, nil
	}
	var h minHeap
	n := ix.next.Load()
	for ci, c := range *ix.chunks.Load() {
		base := uint32(ci) << ix.shift
		for i := range c.keys {
			if base+uint32(i) >= n {
				break
			}
			if !c.done[i].Load() || (allow != nil && !allow(c.keys[i])) {
				continue
			}
			// Exact ranks by key, not internal id, on equal scores.
			h.keep(cand{score: dot(q, c.vecs[i*ix.dim:(i+1)*ix.dim]), id: c.keys[i]}, k)
		}
	}
	return h.results(), nil
}

// keep adds x to h if h holds fewer than k candidates or x is better than
// its worst.
func (h *minHeap) keep(x cand, k int) {
	if h.len() < k {
		h.push(x)
	} else if better(x, h.top()) {
		h.items[0] = x
		h.down()
	}
}

// results empties h into results, best first; ids are keys.
func (h *minHeap) results() []Result {
	best := h.drainBest(nil)
	out := make([]Result, len(best))
	for i, c := range best {
		out[i] = Result{Key: c.id, Score: c.score}
	}
	return out
}

// ExactAmong is [Index.Exact] over the given keys only: the k of them
// whose vectors are most similar to q, best first, ties by lower key;
// keys not in the index, or whose Add has not returned, are skipped. Its
// cost is proportional to len(keys), not to the index: a filter that
// knows the few keys it keeps scans just those.
func (ix *Index) ExactAmong(q []float32, k int, keys []uint32) ([]Result, error) {
	if msg := ix.check(q); msg != "" {
		return nil, nexus.Errorf(nexus.EInvalid, "query vector: %s", msg)
	}
	if k < 0 {
		return nil, nexus.Errorf(nexus.EInvalid, "vector search: k is %d, want k >= 0", k)
	}
	if k == 0 || len(keys) == 0 {
		return nil, nil
	}
	ids := make([]uint32, 0, len(keys))
	kept := make([]uint32, 0, len(keys))
	ix.keyMu.Lock()
	for _, key := range keys {
		if id, ok := ix.ids[key]; ok {
			ids, kept = append(ids, id), append(kept, key)
		}
	}
	ix.keyMu.Unlock()
	var h minHeap
	for i, id := range ids {
		c, j, ok := ix.finished(id)
		if !ok {
			continue
		}
		h.keep(cand{score: dot(q, c.vecs[j*ix.dim:(j+1)*ix.dim]), id: kept[i]}, k)
	}
	return h.results(), nil
}

// sortResults orders results best first, ties by lower key.
func sortResults(rs []Result) {
	slices.SortFunc(rs, func(a, b Result) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return int(int64(a.Key) - int64(b.Key))
	})
}
