package search

import (
	"slices"

	"github.com/nexus-mem/nexus"
)

// postings lists, for each value an equality filter can ask for, the
// ordinals of the docs that have it, ascending: namespace, type and agent
// by interned string id; metadata by the hash of key=value, threads by
// their first doc and children by their parent, all three as keys. A
// selective filter then costs what it keeps, not a predicate call per doc.
//
// Docs are added in ordinal order, so every list is appended to in order.
// Keys are unbounded (one per doc for an id kept in metadata, or for the
// thread a doc starts), so they are not a map of slices: pairs (key,
// ordinal) sit in a sorted, sealed array, and the pairs of the docs added
// since it was sealed in a short tail scanned whole; the tail is merged in
// when it grows past metaTail. Keys of threads and parents are tagged in
// their top bits; one that equals a metadata hash only adds candidates,
// which the filter's predicate then drops. Memory: 4 bytes per doc for
// each of namespace, type and agent, 12 per key (one for the thread, one
// for the parent, one per scalar metadata pair).
type postings struct {
	ns, typ, agent [][]uint32 // by string id

	sealedKeys []uint64 // sorted by (key, ordinal)
	sealedOrds []uint32
	tailKeys   []uint64 // in ordinal order
	tailOrds   []uint32
}

// metaTail bounds the unsorted tail of metadata pairs.
var metaTail = 16384 // a variable for tests

// add records doc d at ordinal ord, which must be past every ordinal
// added before.
func (p *postings) add(ord uint32, d *doc) {
	p.ns = appendAt(p.ns, d.ns, ord)
	p.typ = appendAt(p.typ, d.typ, ord)
	p.agent = appendAt(p.agent, d.agent, ord)
	for _, h := range d.meta {
		p.tailKeys = append(p.tailKeys, h)
		p.tailOrds = append(p.tailOrds, ord)
	}
	p.tailKeys, p.tailOrds = append(p.tailKeys, threadKey(d.root)), append(p.tailOrds, ord)
	if d.parent >= 0 {
		p.tailKeys, p.tailOrds = append(p.tailKeys, parentKey(uint32(d.parent))), append(p.tailOrds, ord)
	}
	if len(p.tailKeys) >= metaTail {
		p.seal()
	}
}

// threadKey and parentKey are the keys of the docs of the thread that
// starts at ordinal root and of the children of ordinal parent.
func threadKey(root uint32) uint64   { return 1<<63 | uint64(root) }
func parentKey(parent uint32) uint64 { return 1<<62 | uint64(parent) }

func appendAt(lists [][]uint32, id, ord uint32) [][]uint32 {
	if int(id) >= len(lists) {
		lists = append(lists, make([][]uint32, int(id)+1-len(lists))...)
	}
	lists[id] = append(lists[id], ord)
	return lists
}

// seal merges the tail into the sorted array. The arrays are new, never
// written in place: a reader holding the old ones keeps a consistent
// snapshot.
func (p *postings) seal() {
	idx := make([]int, len(p.tailKeys))
	for i := range idx {
		idx[i] = i
	}
	// Stable by key keeps each key's ordinals ascending.
	slices.SortStableFunc(idx, func(a, b int) int {
		switch ka, kb := p.tailKeys[a], p.tailKeys[b]; {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return 0
	})
	n := len(p.sealedKeys) + len(idx)
	keys, ords := make([]uint64, 0, n), make([]uint32, 0, n)
	i, j := 0, 0
	for i < len(p.sealedKeys) || j < len(idx) {
		// Every sealed ordinal is below every tail ordinal: on equal
		// keys the sealed pair comes first.
		if j == len(idx) || i < len(p.sealedKeys) && p.sealedKeys[i] <= p.tailKeys[idx[j]] {
			keys, ords = append(keys, p.sealedKeys[i]), append(ords, p.sealedOrds[i])
			i++
			continue
		}
		keys, ords = append(keys, p.tailKeys[idx[j]]), append(ords, p.tailOrds[idx[j]])
		j++
	}
	p.sealedKeys, p.sealedOrds = keys, ords
	p.tailKeys, p.tailOrds = nil, nil
}

// keyRange returns the sealed range of key h and the number of docs
// with it.
func (p *postings) keyRange(h uint64) (lo, hi, n int) {
	lo, _ = slices.BinarySearch(p.sealedKeys, h)
	hi = lo
	for hi < len(p.sealedKeys) && p.sealedKeys[hi] == h {
		hi++
	}
	n = hi - lo
	for _, k := range p.tailKeys {
		if k == h {
			n++
		}
	}
	return lo, hi, n
}

// eachKey calls f on the ordinals of the docs with key h, ascending.
func (p *postings) eachKey(h uint64, f func(uint32)) {
	lo, hi, _ := p.keyRange(h)
	for _, o := range p.sealedOrds[lo:hi] {
		f(o)
	}
	for i, k := range p.tailKeys {
		if k == h {
			f(p.tailOrds[i])
		}
	}
}

// narrow returns the ordinals of v that pred keeps, ascending, when an
// equality filter of r (namespace, type, agent, thread, parent, a
// metadata pair) lists at most max docs: the shortest such list, each of
// its docs checked by pred, so the set is exact. known is false when no
// such list is that short; pred must be the predicate filter compiled for
// r and v.
func (t *table) narrow(v view, r *nexus.SearchRequest, pred func(uint32) bool, max int) (kept []uint32, known bool) {
	var best func(func(uint32))
	bestN := -1
	consider := func(n int, each func(func(uint32))) {
		if bestN < 0 || n < bestN {
			best, bestN = each, n
		}
	}
	str := func(s string, lists [][]uint32) {
		if id, ok := t.strID[s]; ok {
			l := list(lists, id)
			consider(len(l), func(f func(uint32)) {
				for _, o := range l {
					f(o)
				}
			})
		}
	}
	key := func(h uint64) {
		_, _, n := t.post.keyRange(h)
		consider(n, func(f func(uint32)) { t.post.eachKey(h, f) })
	}
	if r.Namespace != "" {
		str(r.Namespace, t.post.ns)
	}
	if r.Type != "" {
		str(string(r.Type), t.post.typ)
	}
	if r.AgentID != "" {
		str(r.AgentID, t.post.agent)
	}
	if o, ok := t.byID[r.ThreadID]; ok && !r.ThreadID.IsZero() && int(o) < len(v.docs) {
		key(threadKey(v.docs[o].root))
	}
	if o, ok := t.byID[r.ParentID]; ok && !r.ParentID.IsZero() {
		key(parentKey(o))
	}
	for k, val := range r.Metadata {
		if h, ok := pairHash(k, val); ok {
			key(h)
		}
	}
	if pred == nil || bestN < 0 || bestN > max {
		return nil, false
	}
	n := uint32(len(v.docs))
	kept = make([]uint32, 0, bestN)
	best(func(o uint32) {
		if o < n && pred(o) {
			kept = append(kept, o)
		}
	})
	return kept, true
}

// list returns lists[id], or nil.
func list(lists [][]uint32, id uint32) []uint32 {
	if int(id) < len(lists) {
		return lists[id]
	}
	return nil
}
