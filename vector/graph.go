package vector

import "slices"

// The graph follows Malkov and Yashunin, "Efficient and robust approximate
// nearest neighbor search using Hierarchical Navigable Small World graphs"
// (2018): greedy descent through the upper layers, a best-first search of
// width ef on the lower ones, and the neighbour-selection heuristic
// (their algorithm 4) both for a new node and for a neighbour whose list
// overflows. Every neighbour list is read and written under its node's
// mutex; vectors are written once, before the node is linked, and read
// without locks.

// scratch is the working memory of one search or insertion, reused through
// Index.scratch so that the hot path does not allocate.
type scratch struct {
	visited []uint16 // visited[id] == stamp: id was seen in this search
	stamp   uint16
	cand    maxHeap  // frontier
	res     minHeap  // best ef found so far
	nbuf    []uint32 // a copy of one neighbour list
	ids     []uint32 // the unvisited ones among them
	vecs    [][]float32
	scores  []float32
	entries []cand
	w       []cand
	sel     []cand
	pool    []cand // candidates when a neighbour list overflows
	fw      []cand // rescore's
	kept    []cand

	// The quantised query of an insertion (see quant.go).
	q8    []int8  // the node's own quantised vector
	qs    float32 // its scale
	qv    [][]int8
	qsc   []float32
	idots []int32

	// selectNeighbours: the quantised vectors of the kept candidates
	// (one of each set of copies), their scales and squared norms.
	kq  [][]int8
	ksc []float32
	kn  []int32
}

func (ix *Index) getScratch() *scratch {
	if s, ok := ix.scratch.Get().(*scratch); ok {
		return s
	}
	return &scratch{}
}

// begin starts a search over ids below n by moving to a fresh stamp; the
// visited slice is cleared only when the 16-bit stamp wraps.
func (s *scratch) begin(n int) {
	if len(s.visited) < n {
		s.visited = make([]uint16, n+n/4+1024)
		s.stamp = 0
	}
	s.stamp++
	if s.stamp == 0 {
		clear(s.visited)
		s.stamp = 1
	}
}

// visit marks id and reports whether it was unmarked. Ids of nodes added
// since begin grow the slice.
func (s *scratch) visit(id uint32) bool {
	if int(id) >= len(s.visited) {
		grown := make([]uint16, int(id)+int(id)/4+1024)
		copy(grown, s.visited)
		s.visited = grown
	}
	if s.visited[id] == s.stamp {
		return false
	}
	s.visited[id] = s.stamp
	return true
}

// entryLevel returns the top layer recorded in an entry word.
func entryLevel(e uint64) int { return int(e >> 32 & 0xff) }

// insert links node id, whose top layer is lvl, into the graph.
func (ix *Index) insert(s *scratch, id uint32, lvl int) {
	e := ix.entry.Load()
	if e == 0 || lvl > entryLevel(e) {
		// This node becomes the entry point: hold entryMu until it is
		// linked, so that no other node raises the top layer meanwhile.
		ix.entryMu.Lock()
		e = ix.entry.Load()
		if e != 0 && lvl <= entryLevel(e) {
			ix.entryMu.Unlock()
		} else {
			defer ix.entryMu.Unlock()
			defer ix.entry.Store(entryBit | uint64(lvl)<<32 | uint64(id))
			if e == 0 {
				return
			}
		}
	}
	s.q8, s.qs = ix.qvec(id)
	top := entryLevel(e)
	s.ids = append(s.ids[:0], uint32(e))
	cur := cand{id: uint32(e), score: ix.qscores(s, s.ids)[0]}
	for l := top; l > lvl; l-- {
		cur = ix.greedy(s, nil, cur, l, id)
	}
	s.entries = append(s.entries[:0], cur)
	for l := min(lvl, top); l >= 0; l-- {
		ix.searchLayer(s, nil, s.entries, ix.opts.EfConstruction, l, nil)
		s.w = s.res.drainBest(s.w)
		// A concurrent insertion may have linked id already, so that the
		// search found id itself.
		s.w = slices.DeleteFunc(s.w, func(c cand) bool { return c.id == id })
		// The candidates are ranked by their int8 scores, as the search
		// found them: scoring them again in float32 cost a tenth of an
		// insertion (reading each candidate's float32 vector, four times
		// the bytes) and changed recall@10 at 1M by less than the noise
		// of a build (docs/BENCHMARKS.md, "Insertions on int8 scores").
		// floatScores, for BenchmarkInsertScores only, does as before.
		ranked := s.w
		if ix.floatScores {
			ranked = ix.rescore(s, ix.vec(id), s.w)
		}
		s.sel = ix.selectNeighbours(s, s.sel[:0], ranked, ix.opts.M)
		ix.setLinks(s, id, l, s.sel)
		for _, nb := range s.sel {
			ix.connect(s, nb.id, cand{score: nb.score, id: id}, l)
		}
		if len(s.w) > 0 {
			s.entries, s.w = s.w, s.entries
		}
	}
}

// scoreIDs returns in s.scores the similarity of q to each of ids: dot
// products of the float32 vectors, or, when q is nil, the approximate ones
// of the insertion's quantised query (s.q8) with the quantised vectors.
func (ix *Index) scoreIDs(s *scratch, q []float32, ids []uint32) []float32 {
	if q == nil {
		return ix.qscores(s, ids)
	}
	s.vecs = s.vecs[:0]
	for _, nb := range ids {
		s.vecs = append(s.vecs, ix.vec(nb))
	}
	s.scores = dotBatchInto(s.scores, q, s.vecs)
	return s.scores
}

// rescore returns in s.fw the candidates w scored against v in float32,
// best first.
func (ix *Index) rescore(s *scratch, v []float32, w []cand) []cand {
	s.ids = s.ids[:0]
	for _, c := range w {
		s.ids = append(s.ids, c.id)
	}
	scores := ix.scoreIDs(s, v, s.ids)
	s.fw = s.fw[:0]
	for j, id := range s.ids {
		s.fw = append(s.fw, cand{score: scores[j], id: id})
	}
	slices.SortFunc(s.fw, compareCand)
	return s.fw
}

// greedy walks layer l from cur to a node none of whose neighbours is more
// similar to q, never stepping onto node skip: an inserted node must not
// start its own search from itself. A nil q is the insertion's quantised
// query (see scoreIDs).
func (ix *Index) greedy(s *scratch, q []float32, cur cand, l int, skip uint32) cand {
	for {
		moved := false
		s.nbuf = ix.neighbours(s.nbuf, cur.id, l)
		s.scores = ix.scoreIDs(s, q, s.nbuf)
		for j, nb := range s.nbuf {
			if sc := s.scores[j]; sc > cur.score && nb != skip {
				cur, moved = cand{score: sc, id: nb}, true
			}
		}
		if !moved {
			return cur
		}
	}
}

// searchLayer leaves in s.res the ef nodes most similar to q that it finds
// on layer l, starting from entries, among those allow accepts (all when
// allow is nil). Rejected nodes are still walked through, and the walk stops
// only once s.res holds ef nodes, so a filter widens the search rather than
// emptying it. A nil q is the insertion's quantised query (see scoreIDs).
func (ix *Index) searchLayer(s *scratch, q []float32, entries []cand, ef, l int, allow func(uint32) bool) {
	s.begin(int(ix.next.Load()))
	s.cand.reset()
	s.res.reset()
	for _, e := range entries {
		if s.visit(e.id) {
			s.cand.push(e)
			ix.offer(s, e, ef, allow)
		}
	}
	for s.cand.len() > 0 {
		c := s.cand.pop()
		if s.res.len() >= ef && c.score < s.res.top().score {
			break
		}
		if l == 0 && s.cand.len() > 0 {
			// The next node expanded is most often the best one left:
			// its list comes from memory while c's neighbours are scored.
			ix.prefetchNeighbours(s.cand.top().id)
		}
		s.nbuf = ix.neighbours(s.nbuf, c.id, l)
		s.ids = s.ids[:0]
		for _, nb := range s.nbuf {
			if s.visit(nb) {
				s.ids = append(s.ids, nb)
			}
		}
		s.scores = ix.scoreIDs(s, q, s.ids)
		for j, nb := range s.ids {
			x := cand{score: s.scores[j], id: nb}
			if s.res.len() < ef || x.score > s.res.top().score {
				s.cand.push(x)
				ix.offer(s, x, ef, allow)
			}
		}
	}
}

// offer adds x to the result set if allow accepts its key, keeping the best ef.
func (ix *Index) offer(s *scratch, x cand, ef int, allow func(uint32) bool) {
	if allow != nil {
		c, i := ix.chunkOf(x.id)
		if !allow(c.keys[i]) {
			return
		}
	}
	if s.res.len() < ef {
		s.res.push(x)
	} else if better(x, s.res.top()) {
		s.res.items[0] = x // the worst makes way: a push and a pop in one
		s.res.down()
	}
}

// selectNeighbours appends to dst up to m of the candidates w (best first)
// by the HNSW heuristic: a candidate is kept only if it is more similar to
// the base than to every candidate kept before it. This keeps links that
// point in different directions, which is what lets a search leave one
// cluster for another. The candidates' scores (to the base) are float32;
// their similarity to the ones kept is taken from the quantised vectors,
// a candidate against all the kept ones in one batch.
//
// Copies (nodes whose quantised vectors and scales are equal) score alike
// against every candidate, so a candidate is compared with one kept node
// of each set of copies only: that decides exactly what comparing it with
// all of them decides. A kept candidate is a copy of a kept node u when
// their dot product equals both their squared norms (|c − u|² = 0, exact
// in integers) and their scales are equal. Without this, a list of copies
// (a memory holding one text many times) rejects nothing, and every
// pruning of a full list compared all its pairs.
func (ix *Index) selectNeighbours(s *scratch, dst, w []cand, m int) []cand {
	s.kq, s.ksc, s.kn = s.kq[:0], s.ksc[:0], s.kn[:0]
	for _, c := range w {
		if len(dst) >= m {
			break
		}
		cv, cs, cn := ix.qvecNorm(c.id)
		// The kept ones nearest the base come first and reject most
		// candidates, so they are compared a few at a time.
		good, copied := true, false
		for j := 0; good && j < len(s.kq); j += 4 {
			k := s.kq[j:min(j+4, len(s.kq))]
			s.idots = grow(s.idots, len(k))
			dotBatchInt8(cv, k, s.idots)
			for i, d := range s.idots {
				if float32(d)*cs*s.ksc[j+i] > c.score {
					good = false
					break
				}
				if d == cn && s.kn[j+i] == cn && s.ksc[j+i] == cs {
					copied = true
				}
			}
		}
		if good {
			if !copied {
				s.kq, s.ksc, s.kn = append(s.kq, cv), append(s.ksc, cs), append(s.kn, cn)
			}
			dst = append(dst, c)
		}
	}
	return dst
}

// setLinks gives id the neighbours sel on layer l. Insertions running
// concurrently may already have linked id there (they can reach it through
// a layer above before id is linked on this one); their links are kept.
func (ix *Index) setLinks(s *scratch, id uint32, l int, sel []cand) {
	c, i := ix.chunkOf(id)
	c.mu[i].Lock()
	defer c.mu[i].Unlock()
	list := ix.listLocked(c, i, l)
	s.pool = append(s.pool[:0], sel...)
	if n := list[0]; n > 0 {
		s.vecs = s.vecs[:0]
		s.ids = s.ids[:0]
		for _, o := range list[1 : 1+n] {
			if !slices.ContainsFunc(sel, func(x cand) bool { return x.id == o }) {
				s.ids = append(s.ids, o)
				s.vecs = append(s.vecs, ix.vec(o))
			}
		}
		s.scores = dotBatchInto(s.scores, ix.vec(id), s.vecs)
		for j, o := range s.ids {
			s.pool = append(s.pool, cand{score: s.scores[j], id: o})
		}
	}
	ix.writeLocked(s, list, s.pool)
}

// connect adds x to the neighbours of nb on layer l; x.score is their
// similarity.
func (ix *Index) connect(s *scratch, nb uint32, x cand, l int) {
	c, i := ix.chunkOf(nb)
	c.mu[i].Lock()
	defer c.mu[i].Unlock()
	list := ix.listLocked(c, i, l)
	n := int(list[0])
	if n < len(list)-1 {
		list[1+n] = x.id
		list[0]++
		return
	}
	// The full list is pruned by the heuristic on approximate scores from
	// the quantised vectors.
	s.qv, s.qsc = s.qv[:0], s.qsc[:0]
	for _, o := range list[1 : 1+n] {
		v, sc := ix.qvec(o)
		s.qv, s.qsc = append(s.qv, v), append(s.qsc, sc)
	}
	nq, ns := ix.qvec(nb)
	s.idots = grow(s.idots, n)
	dotBatchInt8(nq, s.qv, s.idots)
	s.pool = append(s.pool[:0], x)
	for j, o := range list[1 : 1+n] {
		s.pool = append(s.pool, cand{score: float32(s.idots[j]) * ns * s.qsc[j], id: o})
	}
	ix.writeLocked(s, list, s.pool)
}

// writeLocked stores the candidates in a neighbour list (count first),
// pruned with the heuristic when there are more than it holds, and zeroes
// the unused slots. The caller holds the list's mutex.
func (ix *Index) writeLocked(s *scratch, list []uint32, pool []cand) {
	capacity := len(list) - 1
	if len(pool) > capacity {
		slices.SortFunc(pool, compareCand)
		s.kept = ix.selectNeighbours(s, s.kept[:0], pool, capacity)
		pool = s.kept
	}
	list[0] = uint32(len(pool))
	for j := range capacity {
		if j < len(pool) {
			list[1+j] = pool[j].id
		} else {
			list[1+j] = 0
		}
	}
}
