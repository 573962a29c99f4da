package keyword

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/nexus-mem/nexus"
)

// Mode says how the terms of a query combine.
type Mode uint8

// Query modes.
const (
	Or  Mode = iota // any term matches; BM25 ranks by how many and how rare (the default)
	And             // every term must match
)

// String returns "or" or "and".
func (m Mode) String() string {
	switch m {
	case Or:
		return "or"
	case And:
		return "and"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Query limits.
const (
	MaxQueryBytes = 4096   // longest query, in bytes
	MaxQueryTerms = 64     // most distinct terms in a query
	MaxK          = 10_000 // most results of one search
)

// BM25 parameters, chosen on the tuning questions of the evaluation sets
// (`nexus bench quality --embedder hash --sweep`, docs/SEARCH.md): a k1
// well above the usual 1.2 lets a word a text repeats count for more
// before it saturates, and b = 0.4 normalises less by length.
const (
	K1 = 12.0
	B  = 0.4
)

// Result is one matching document.
type Result struct {
	Key   uint32
	Score float32
	// Matched lists the query words (lowercased, in query order) whose
	// terms the document contains.
	Matched []string
}

// queryTerm is one distinct term of a query and the first word it came from.
type queryTerm struct{ term, word string }

// Search returns the k best documents for query, best first, ties broken
// by the smaller key. Or ranks every document that has any term by BM25
// (k1 = [K1], b = [B]). And returns only documents with every term,
// ranked by the same score. Stop words ("the", "not", "with", ...) are
// terms like any other: their idf is low, so they weigh little, but "not"
// or "with" can be what tells two answers apart.
//
// allow, if not nil, is asked about a document only when it would enter
// the results; it must not call methods of the index. An empty query, one
// with no words, one over [MaxQueryBytes] or [MaxQueryTerms] distinct
// terms, or k outside 1..[MaxK] is an EInvalid error.
func (x *Index) Search(query string, k int, mode Mode, allow func(key uint32) bool) ([]Result, error) {
	if err := checkSearch(k, mode); err != nil {
		return nil, err
	}
	qs, err := x.an.parse(query, mode)
	if err != nil {
		return nil, err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	cs := x.cursorsLocked(qs, mode)
	if len(cs) == 0 {
		return []Result{}, nil
	}
	s := searcher{x: x, k: k, allow: allow, norm: x.normLocked()}
	if mode == And {
		s.and(cs)
	} else {
		s.or(cs)
	}
	return s.results(qs), nil
}

// SearchAmong is [Index.Search] over the given keys only, which must be
// ascending: the k best of them by the same scores, ties by the smaller
// key. Each key is looked up in the postings of every query term, so its
// cost is proportional to len(keys), not to how many documents have the
// terms: a filter that knows the few keys it keeps ranks just those.
func (x *Index) SearchAmong(query string, k int, mode Mode, keys []uint32) ([]Result, error) {
	if err := checkSearch(k, mode); err != nil {
		return nil, err
	}
	if !slices.IsSorted(keys) {
		return nil, nexus.Errorf(nexus.EInvalid, "keys are not ascending")
	}
	qs, err := x.an.parse(query, mode)
	if err != nil {
		return nil, err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	cs := x.cursorsLocked(qs, mode)
	if len(cs) == 0 {
		return []Result{}, nil
	}
	s := searcher{x: x, k: k, norm: x.normLocked()}
	s.among(cs, keys, mode == And)
	return s.results(qs), nil
}

// among offers each of keys (ascending) that has a term (every term, for
// And), looking it up in each term's postings.
func (s *searcher) among(cs []*cursor, keys []uint32, and bool) {
	for _, d := range keys {
		if s.x.dead.has(d) {
			continue
		}
		var mask uint64
		hits := 0
		for _, c := range cs {
			if c.seek(d); c.doc() == d {
				s.collect(c, &mask)
				hits++
			}
		}
		if hits > 0 && (!and || hits == len(cs)) {
			s.offer(d, mask)
		}
	}
}

// checkSearch checks the k and the mode of a search.
func checkSearch(k int, mode Mode) error {
	if k < 1 || k > MaxK {
		return nexus.Errorf(nexus.EInvalid, "k %d out of range 1-%d", k, MaxK)
	}
	if mode != Or && mode != And {
		return nexus.Errorf(nexus.EInvalid, "unknown search mode %d: want or (0) or and (1)", mode)
	}
	return nil
}

// parse analyzes a query into its distinct terms, in order.
func (a Analyzer) parse(query string, mode Mode) ([]queryTerm, error) {
	if len(query) > MaxQueryBytes {
		return nil, nexus.Errorf(nexus.EInvalid, "query is %d bytes, over the limit of %d", len(query), MaxQueryBytes)
	}
	if strings.TrimSpace(query) == "" {
		return nil, nexus.Errorf(nexus.EInvalid, "query is empty")
	}
	var qs []queryTerm
	seen := map[string]bool{}
	a.scan(query, func(term string, s, e int) {
		if !seen[term] {
			seen[term] = true
			qs = append(qs, queryTerm{term, strings.Map(lowerRune, query[s:e])})
		}
	})
	if len(qs) == 0 {
		return nil, nexus.Errorf(nexus.EInvalid, "query has no words: only punctuation, spaces or tokens over %d bytes", MaxTokenBytes)
	}
	if len(qs) > MaxQueryTerms {
		return nil, nexus.Errorf(nexus.EInvalid, "query has %d distinct terms, over the limit of %d", len(qs), MaxQueryTerms)
	}
	return qs, nil
}

// norm holds the length normalization of the current statistics:
// BM25 = idf·(k1+1)·tf / (tf + c0 + c1·len).
type norm struct{ c0, c1 float64 }

func (x *Index) normLocked() norm {
	avg := 1.0
	if x.ndocs > 0 && x.sumLen > 0 {
		avg = float64(x.sumLen) / float64(x.ndocs)
	}
	return norm{c0: K1 * (1 - B), c1: K1 * B / avg}
}

// slack inflates upper bounds so that float rounding never prunes a
// document that belongs in the results.
const slack = 1 + 1e-6

// cursor walks the postings of one query term.
type cursor struct {
	p     *postings
	pos   int
	w     float64 // idf·(k1+1)
	ub    float64 // bound of any contribution of the term
	q     int     // index of the term in the query
	blk   int     // block whose bound is cached in blkUB
	blkUB float64
}

const exhausted = math.MaxUint32 // past every key, since keys ≤ MaxKey

// cursorsLocked returns a cursor per query term that has postings; for
// And, none if a term has none.
func (x *Index) cursorsLocked(qs []queryTerm, mode Mode) []*cursor {
	nm := x.normLocked()
	n := float64(x.ndocs)
	var cs []*cursor
	for i, q := range qs {
		id, ok := x.dict[q.term]
		if !ok {
			if mode == And {
				return nil
			}
			continue
		}
		p := &x.lists[id]
		df := float64(len(p.docs))
		idf := math.Log(1 + (n-df+0.5)/(df+0.5))
		c := &cursor{p: p, w: idf * (K1 + 1), q: i, blk: -1}
		for _, b := range p.blocks {
			c.ub = max(c.ub, c.bound(b, nm))
		}
		if p.blocks == nil { // a short list: its exact maximum
			for j := range p.docs {
				c.ub = max(c.ub, c.bound(block{p.tf(j), x.lens[p.doc(j)]}, nm))
			}
		}
		cs = append(cs, c)
	}
	return cs
}

func (c *cursor) doc() uint32 {
	if c.pos < len(c.p.docs) {
		return c.p.doc(c.pos)
	}
	return exhausted
}

func (c *cursor) seek(d uint32) { c.pos = search(c.p.docs, c.pos, d) }

func (c *cursor) score(nm norm, lens []uint32) float64 {
	tf := float64(c.p.tf(c.pos))
	return c.w * tf / (tf + nm.c0 + nm.c1*float64(lens[c.p.doc(c.pos)]))
}

func (c *cursor) bound(b block, nm norm) float64 {
	tf := float64(b.maxTF)
	return slack * c.w * tf / (tf + nm.c0 + nm.c1*float64(b.minLen))
}

// blockBound returns the bound of the block under the cursor, which must
// not be exhausted, and the last doc of that block. A list without blocks
// is one block.
func (c *cursor) blockBound(nm norm) (float64, uint32) {
	if c.p.blocks == nil {
		return c.ub, c.p.doc(len(c.p.docs) - 1)
	}
	bi := c.pos / blockSize
	if bi != c.blk {
		c.blk, c.blkUB = bi, c.bound(c.p.blocks[bi], nm)
	}
	return c.blkUB, c.p.doc(min((bi+1)*blockSize, len(c.p.docs)) - 1)
}

// searcher holds the state of one search.
type searcher struct {
	x       *Index
	k       int
	allow   func(uint32) bool
	norm    norm
	heap    []entry
	contrib [MaxQueryTerms]float64 // by query term, valid where the mask says
}

type entry struct {
	score float64
	key   uint32
	mask  uint64 // query terms matched
}

// worse orders entries: lower score, then larger key.
func worse(a, b entry) bool { return a.score < b.score || a.score == b.score && a.key > b.key }

// threshold is the score to beat to enter the results.
func (s *searcher) threshold() float64 {
	if len(s.heap) < s.k {
		return -1
	}
	return s.heap[0].score
}

// collect adds the term contribution of cursor c at its doc.
func (s *searcher) collect(c *cursor, mask *uint64) float64 {
	v := c.score(s.norm, s.x.lens)
	s.contrib[c.q] = v
	*mask |= 1 << c.q
	return v
}

// offer scores doc d from the collected contributions, summed in query
// order so that a score does not depend on the path that found it, and
// keeps it if it is among the k best and allowed.
func (s *searcher) offer(d uint32, mask uint64) {
	score := 0.0
	for m := mask; m != 0; m &= m - 1 {
		score += s.contrib[bits.TrailingZeros64(m)]
	}
	e := entry{score, d, mask}
	if len(s.heap) == s.k && !worse(s.heap[0], e) {
		return
	}
	if s.allow != nil && !s.allow(d) {
		return
	}
	if len(s.heap) < s.k {
		s.heap = append(s.heap, e)
		s.up(len(s.heap) - 1)
		return
	}
	s.heap[0] = e
	s.down(0)
}

func (s *searcher) up(i int) {
	h := s.heap
	for i > 0 {
		p := (i - 1) / 2
		if !worse(h[i], h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (s *searcher) down(i int) {
	h := s.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && worse(h[r], h[l]) {
			m = r
		}
		if !worse(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// or runs MaxScore: terms sorted by their bound; the cheapest terms whose
// bounds add up to no more than the threshold are non-essential, so only
// documents of the essential terms are candidates, and the others are
// probed only while they can still lift a candidate over the threshold.
// Block bounds skip runs of candidates that cannot make it.
func (s *searcher) or(cs []*cursor) {
	slices.SortFunc(cs, func(a, b *cursor) int { return cmp.Compare(a.ub, b.ub) })
	n := len(cs)
	prefix := make([]float64, n) // prefix[i]: bound of cs[0..i] together
	sum := 0.0
	for i, c := range cs {
		sum += c.ub
		prefix[i] = sum * slack
	}
	p := 0 // cs[p:] are essential
	for {
		theta := s.threshold()
		for p < n && prefix[p] <= theta {
			p++
		}
		if p == n {
			return
		}
		d := uint32(exhausted)
		for _, c := range cs[p:] {
			d = min(d, c.doc())
		}
		if d == exhausted {
			return
		}
		nonEss := 0.0
		if p > 0 {
			nonEss = prefix[p-1]
		}
		if theta >= 0 && s.skipBlocks(cs[p:], nonEss, theta) {
			continue
		}
		if s.x.dead.has(d) {
			for _, c := range cs[p:] {
				if c.doc() == d {
					c.pos++
				}
			}
			continue
		}
		var mask uint64
		partial := 0.0
		for _, c := range cs[p:] {
			if c.doc() == d {
				partial += s.collect(c, &mask)
				c.pos++
			}
		}
		if s.probe(cs[:p], prefix, d, partial, theta, &mask) {
			s.offer(d, mask)
		}
	}
}

// probe adds the non-essential terms of d, the costliest first, while they
// can still lift d over theta. It reports whether d can make it.
func (s *searcher) probe(ne []*cursor, prefix []float64, d uint32, partial, theta float64, mask *uint64) bool {
	for i := len(ne) - 1; i >= 0; i-- {
		if partial+prefix[i] <= theta {
			return false
		}
		c := ne[i]
		c.seek(d)
		if c.doc() == d {
			partial += s.collect(c, mask)
		}
	}
	return true
}

// skipBlocks moves the essential cursors past the current blocks if no
// document in them can beat theta, and reports whether it did.
func (s *searcher) skipBlocks(ess []*cursor, nonEss, theta float64) bool {
	bound, last := nonEss, uint32(exhausted)
	for _, c := range ess {
		if c.doc() == exhausted {
			continue
		}
		ub, l := c.blockBound(s.norm)
		bound += ub
		last = min(last, l)
	}
	if bound > theta || last == exhausted {
		return false
	}
	for _, c := range ess {
		c.seek(last + 1)
	}
	return true
}

// and walks the rarest term and looks each of its documents up in the
// others, skipping blocks of the rarest term whose bound cannot beat the
// threshold.
func (s *searcher) and(cs []*cursor) {
	slices.SortFunc(cs, func(a, b *cursor) int { return cmp.Compare(len(a.p.docs), len(b.p.docs)) })
	lead, rest := cs[0], cs[1:]
	restUB := 0.0
	for _, c := range rest {
		restUB += c.ub
	}
	restUB *= slack
	total := (restUB + lead.ub) * slack
	d := lead.doc()
	for d != exhausted {
		if theta := s.threshold(); theta >= 0 {
			// Skip the rest of the lead's block if even its best
			// document could not beat the threshold.
			if ub, last := lead.blockBound(s.norm); ub+restUB <= theta {
				lead.seek(last + 1)
				d = lead.doc()
				continue
			}
		}
		if next, ok := align(rest, d); !ok {
			if next == exhausted {
				return
			}
			lead.seek(next)
			d = lead.doc()
			continue
		}
		if theta := s.threshold(); theta >= total {
			return
		}
		if !s.x.dead.has(d) {
			var mask uint64
			for _, c := range cs {
				s.collect(c, &mask)
			}
			s.offer(d, mask)
		}
		lead.pos++
		d = lead.doc()
	}
}

// align moves the cursors to d; if one lacks d it returns the doc it
// stopped at and false.
func align(cs []*cursor, d uint32) (uint32, bool) {
	for _, c := range cs {
		c.seek(d)
		if got := c.doc(); got != d {
			return got, false
		}
	}
	return d, true
}

// results returns the heap as results, best first.
func (s *searcher) results(qs []queryTerm) []Result {
	slices.SortFunc(s.heap, func(a, b entry) int {
		if worse(a, b) {
			return 1
		}
		if worse(b, a) {
			return -1
		}
		return 0
	})
	out := make([]Result, len(s.heap))
	for i, e := range s.heap {
		var words []string
		for m := e.mask; m != 0; m &= m - 1 {
			words = append(words, qs[bits.TrailingZeros64(m)].word)
		}
		out[i] = Result{Key: e.key, Score: float32(e.score), Matched: words}
	}
	return out
}

// Containing returns the keys of the live documents that have every term
// of text as the analyzer reads it (stop words included), ascending, and
// true; or nil and false when more than max documents have them. A text
// without terms, or with a term no document has, gives none. It is what
// a phrase or an excluded word of a query is checked against: the caller
// verifies a phrase's word order in the documents themselves.
func (x *Index) Containing(text string, max int) ([]uint32, bool) {
	var terms []string
	for _, t := range x.an.Analyze(text) {
		if !slices.Contains(terms, t) {
			terms = append(terms, t)
		}
	}
	if len(terms) == 0 {
		return nil, true
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	cs := make([]*cursor, 0, len(terms))
	for _, t := range terms {
		id, ok := x.dict[t]
		if !ok {
			return nil, true
		}
		cs = append(cs, &cursor{p: &x.lists[id]})
	}
	slices.SortFunc(cs, func(a, b *cursor) int { return cmp.Compare(len(a.p.docs), len(b.p.docs)) })
	var out []uint32
	lead := cs[0]
	for d := lead.doc(); d != exhausted; d = lead.doc() {
		if next, ok := align(cs[1:], d); !ok {
			if next == exhausted {
				break
			}
			lead.seek(next)
			continue
		}
		if !x.dead.has(d) {
			if len(out) == max {
				return nil, false
			}
			out = append(out, d)
		}
		lead.pos++
	}
	return out, true
}
