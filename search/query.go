package search

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/keyword"
	"github.com/nexus-mem/nexus/vector"
)

var _ nexus.Searcher = (*Engine)(nil)

// snippetRunes is the length of a hit's snippet.
const snippetRunes = 240

// candidate is one context found by at least one signal.
type candidate struct {
	ord   uint32
	fused float64
	sim   *float64
	bm25  *float64
	terms []string
}

// signals are the ranges of the scores of a search's candidates, for
// normalising them before they are fused.
type signals struct {
	semantic, keyword  bool    // the signal ran and found something
	simTop, simTenth   float64 // best and 10th best similarity of the semantic candidates
	bm25Top, bm25Tenth float64 // best and 10th best BM25 score of the keyword candidates
	semanticWeight     float64 // the semantic signal's share of the fused score
}

// Search runs a query. See [nexus.SearchRequest] for its fields.
func (e *Engine) Search(ctx context.Context, req nexus.SearchRequest) (*nexus.SearchResult, error) {
	if s, note := e.serving(); s != e {
		return withNote(s.Search(ctx, req))(note)
	}
	start := time.Now()
	if err := req.Validate(true); err != nil {
		return nil, err
	}
	pq, err := parseQuery(&req)
	if err != nil {
		return nil, err
	}
	req.Query = pq.text
	if err := req.Validate(true); err != nil { // field terms set filters
		return nil, err
	}
	if req.Consistent {
		if err := e.waitIndexed(ctx, e.src.Len()); err != nil {
			return nil, err
		}
	}
	res := &nexus.SearchResult{Mode: req.Mode, Hits: []nexus.SearchHit{}}
	allow, v, ok := e.compile(&req)
	if !ok {
		return e.finish(res, start), nil
	}
	if allow, err = e.constrain(ctx, pq, allow, &v); err != nil {
		return nil, err
	}
	depth := max(4*req.Limit, 50)
	byOrd := map[uint32]*candidate{}
	var sig signals
	if req.Mode != nexus.Keyword {
		hits, err := e.semantic(ctx, req.Query, depth, allow, v, req.Exact)
		switch {
		case err != nil && req.Mode == nexus.Semantic:
			return nil, err
		case err != nil:
			res.Degraded = "semantic signal left out: " + nexus.ErrorMessage(err)
		case len(hits) > 0:
			sig.semantic, sig.simTop, sig.simTenth = true, float64(hits[0].Score), float64(hits[min(10, len(hits))-1].Score)
			for _, h := range hits {
				s := float64(h.Score)
				cand(byOrd, h.Key).sim = &s
			}
		}
	}
	if req.Mode != nexus.Semantic {
		var hits []keyword.Result
		var err error
		if v.narrowed {
			hits, err = v.kw.SearchAmong(req.Query, depth, keyword.Or, v.kept)
		} else {
			hits, err = v.kw.Search(req.Query, depth, keyword.Or, allow)
		}
		if err != nil {
			return nil, err
		}
		if len(hits) > 0 {
			sig.keyword, sig.bm25Top, sig.bm25Tenth = true, float64(hits[0].Score), float64(hits[min(10, len(hits))-1].Score)
		}
		for _, h := range hits {
			c := cand(byOrd, h.Key)
			s := float64(h.Score)
			c.bm25, c.terms = &s, h.Matched
		}
	}
	sig.semanticWeight = e.Fusion().queryWeight(req.Query, sig)
	cands := rank(byOrd, req.Mode, sig)
	if err := e.fill(ctx, res, cands, &req, v); err != nil {
		return nil, err
	}
	return e.finish(res, start), nil
}

func cand(m map[uint32]*candidate, ord uint32) *candidate {
	c := m[ord]
	if c == nil {
		c = &candidate{ord: ord}
		m[ord] = c
	}
	return c
}

// rank scores the candidates for the mode and sorts them, best first.
// Hybrid scores are the convex combination of the two normalised signals
// (see fuse).
func rank(m map[uint32]*candidate, mode nexus.SearchMode, sig signals) []*candidate {
	out := make([]*candidate, 0, len(m))
	for _, c := range m {
		switch mode {
		case nexus.Semantic:
			c.fused = *c.sim
		case nexus.Keyword:
			c.fused = *c.bm25
		default:
			c.fused = sig.fuse(c)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *candidate) int {
		if a.fused != b.fused {
			if a.fused > b.fused {
				return -1
			}
			return 1
		}
		return int(a.ord) - int(b.ord)
	})
	return out
}

// semantic embeds the query and returns its nearest allowed vectors.
func (e *Engine) semantic(ctx context.Context, query string, k int, allow func(uint32) bool, v view, exact bool) ([]vector.Result, error) {
	e.mu.RLock()
	degraded, missing := e.degraded, len(e.noVec)
	e.mu.RUnlock()
	if degraded != "" && missing > 0 && v.vec.Len()+len(v.freshOrds) == 0 {
		return nil, nexus.Errorf(nexus.EUnavailable, "%s", degraded)
	}
	qs, err := e.emb.Embed(ctx, []string{query})
	if err == nil && len(qs) != 1 {
		err = nexus.Errorf(nexus.EUnavailable, "embedder returned %d vectors for 1 query", len(qs))
	}
	if err == nil {
		err = nexus.CheckVector(qs[0], e.emb.Dimension())
	}
	if err != nil {
		return nil, nexus.WrapError(nexus.EUnavailable, err, "embed the query")
	}
	if exact && !v.narrowed {
		res, err := v.vec.Exact(qs[0], k, allow)
		if err != nil {
			return nil, err
		}
		return withFresh(res, qs[0], k, allow, v)
	}
	return e.nearest(qs[0], k, allow, v)
}

// nearest searches the graph, or scans exactly when the filter keeps few
// contexts (a graph walk could then end before finding k of them); and
// scans the fresh segment, whose vectors are not in the graph yet.
func (e *Engine) nearest(q []float32, k int, allow func(uint32) bool, v view) ([]vector.Result, error) {
	var res []vector.Result
	var err error
	switch {
	case v.narrowed:
		res, err = v.vec.ExactAmong(q, k, v.kept)
	case v.filtered && e.keepsFew(allow, len(v.docs)):
		res, err = v.vec.Exact(q, k, allow)
	default:
		res, err = v.vec.SearchEf(q, k, max(k, e.opts.EfSearch), allow)
	}
	if err != nil {
		return nil, err
	}
	return withFresh(res, q, k, allow, v)
}

// withFresh merges into the graph's results res the k vectors of the
// fresh segment most similar to q among those allow accepts (among
// v.kept when the view is narrowed: it is then the exact set), and
// returns the best k of both, best first, ties by lower ordinal. A doc
// linked while the search ran can be in both; it is kept once.
func withFresh(res []vector.Result, q []float32, k int, allow func(uint32) bool, v view) ([]vector.Result, error) {
	if len(v.freshOrds) == 0 {
		return res, nil
	}
	if v.narrowed {
		allow = func(o uint32) bool { _, found := slices.BinarySearch(v.kept, o); return found }
	}
	fresh, err := vector.Scan(q, k, v.freshOrds, v.freshVecs, allow)
	if err != nil {
		return nil, err
	}
	if len(fresh) == 0 {
		return res, nil
	}
	out := make([]vector.Result, 0, len(res)+len(fresh))
	seen := make(map[uint32]bool, len(res))
	for _, r := range res {
		seen[r.Key] = true
		out = append(out, r)
	}
	for _, r := range fresh {
		if !seen[r.Key] {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b vector.Result) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return out[:min(k, len(out))], nil
}

// freshVector returns the vector of doc ord if it is in the view's fresh
// segment.
func (v view) freshVector(ord uint32) ([]float32, bool) {
	i, ok := slices.BinarySearch(v.freshOrds, ord)
	if !ok {
		return nil, false
	}
	return v.freshVecs[i], true
}

// keepsFew estimates from an evenly spaced sample of up to 4,096 contexts
// whether allow keeps fewer than ExactBelow of the n, without a pass over
// all of them.
func (e *Engine) keepsFew(allow func(uint32) bool, n int) bool {
	const samples = 4096
	if n <= samples {
		kept := 0
		for o := range n {
			if allow(uint32(o)) {
				kept++
			}
		}
		return kept < e.opts.ExactBelow
	}
	kept := 0
	for i := range samples {
		if allow(uint32(i * n / samples)) {
			kept++
		}
	}
	return kept*n/samples < e.opts.ExactBelow
}

// compile snapshots the docs and builds the filter predicate.
func (e *Engine) compile(req *nexus.SearchRequest) (func(uint32) bool, view, bool) {
	return e.compileFor(req, nexus.ZeroID)
}

// compileFor is compile that also resolves self's ordinal in the same
// snapshot (for Related).
func (e *Engine) compileFor(req *nexus.SearchRequest, self nexus.ID) (func(uint32) bool, view, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	v := view{docs: e.tab.docs[:len(e.tab.docs):len(e.tab.docs)], vec: e.vec, kw: e.kw,
		freshOrds: e.freshOrds[:len(e.freshOrds):len(e.freshOrds)], freshVecs: e.freshVecs[:len(e.freshVecs):len(e.freshVecs)]}
	if !self.IsZero() {
		v.self, v.selfFound = e.tab.byID[self]
	}
	allow, ok := e.tab.filter(v, req)
	v.filtered = allow != nil
	if ok && v.filtered && !e.opts.ScanFilters {
		v.kept, v.narrowed = e.tab.narrow(v, req, allow, e.opts.ExactBelow)
	}
	if ok && allow == nil {
		n := uint32(len(v.docs))
		allow = func(o uint32) bool { return o < n }
	}
	return allow, v, ok
}

// fill reads the best candidates from the store and makes hits of them.
func (e *Engine) fill(ctx context.Context, res *nexus.SearchResult, cands []*candidate, req *nexus.SearchRequest, v view) error {
	ids := make([]nexus.ID, len(cands))
	for i, c := range cands {
		ids[i] = v.docs[c.ord].id
	}
	for i, c := range cands {
		if len(res.Hits) == req.Limit || c.fused < req.MinScore {
			break
		}
		ctxt, err := e.src.Get(ctx, ids[i])
		if err != nil {
			if nexus.ErrorCode(err) == nexus.ENotFound {
				continue // gone from the store since it was indexed
			}
			return err
		}
		hit := nexus.SearchHit{Context: ctxt, Score: c.fused, Similarity: c.sim, BM25: c.bm25, Terms: c.terms}
		if c.sim != nil {
			hit.Matched = append(hit.Matched, nexus.SignalSemantic)
		}
		if c.bm25 != nil {
			hit.Matched = append(hit.Matched, nexus.SignalKeyword)
		}
		terms := c.terms
		if len(terms) == 0 {
			terms = keyword.Analyze(req.Query)
		}
		hit.Snippet = keyword.Snippet(ctxt.Content, terms, snippetRunes)
		res.Hits = append(res.Hits, hit)
	}
	return nil
}

func (e *Engine) finish(res *nexus.SearchResult, start time.Time) *nexus.SearchResult {
	st := e.Stats()
	res.IndexLag = st.Lag
	if res.Degraded == "" && st.Degraded != "" && res.Mode != nexus.Keyword {
		res.Degraded = st.Degraded + fmt.Sprintf(" (%d contexts are not yet searchable by meaning)", st.NoVector)
	}
	res.TookMS = float64(time.Since(start).Microseconds()) / 1000
	return res
}

// Related returns the contexts nearest to id by meaning.
func (e *Engine) Related(ctx context.Context, id nexus.ID, req nexus.SearchRequest) (*nexus.SearchResult, error) {
	if s, note := e.serving(); s != e {
		return withNote(s.Related(ctx, id, req))(note)
	}
	start := time.Now()
	req.Mode = nexus.Semantic
	if err := req.Validate(false); err != nil {
		return nil, err
	}
	res := &nexus.SearchResult{Mode: nexus.Semantic, Hits: []nexus.SearchHit{}}
	allow, v, ok := e.compileFor(&req, id)
	ord, indexed := v.self, v.selfFound
	if !indexed || int(ord) >= len(v.docs) {
		if _, err := e.src.Get(ctx, id); err != nil {
			return nil, err
		}
		return nil, nexus.Errorf(nexus.EUnavailable, "context %s is not indexed yet; retry shortly", id)
	}
	q, found := v.vec.Vector(ord)
	if !found {
		q, found = v.freshVector(ord)
	}
	if !found {
		return nil, nexus.Errorf(nexus.EUnavailable, "context %s has no embedding yet (the embedding provider is failing)", id)
	}
	if !ok {
		return e.finish(res, start), nil
	}
	notSelf := func(o uint32) bool { return o != ord && allow(o) }
	if v.narrowed {
		v.kept = slices.DeleteFunc(v.kept, func(o uint32) bool { return o == ord })
	}
	hits, err := e.nearest(q, req.Limit, notSelf, v)
	if err != nil {
		return nil, err
	}
	byOrd := map[uint32]*candidate{}
	for _, h := range hits {
		s := float64(h.Score)
		cand(byOrd, h.Key).sim = &s
	}
	if err := e.fill(ctx, res, rank(byOrd, nexus.Semantic, signals{}), &req, v); err != nil {
		return nil, err
	}
	return e.finish(res, start), nil
}

// withNote adds note to a result's Degraded.
func withNote(res *nexus.SearchResult, err error) func(note string) (*nexus.SearchResult, error) {
	return func(note string) (*nexus.SearchResult, error) {
		if res != nil {
			res.Degraded = strings.TrimPrefix(res.Degraded+"; "+note, "; ")
		}
		return res, err
	}
}
