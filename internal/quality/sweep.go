package quality

import (
	"context"
	"math"
	"slices"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/keyword"
	"github.com/nexus-mem/nexus/search"
)

// SweepRow is the figures of one setting of a [Memory.SweepKeyword]:
// keyword search with BM25 parameters K1 and B, and hybrid search with
// those and the hashing model's share Semantic for queries in words (0
// for exact names).
type SweepRow struct {
	K1, B, Semantic float64
	Keyword, Hybrid Metrics
}

// sweepDepth is how many candidates each signal gives a hybrid search of
// limit 10, as the engine takes them (max(4·limit, 50)).
const sweepDepth = 50

// SweepKeyword ranks the questions of a split with every BM25 k1 of k1s
// and b of bs, in keyword search and in hybrid search with each semantic
// share of shares (exact names 0), as the engine would with those
// parameters: the keyword side scores the memory's texts with the
// keyword package's analyzer (a compound word's parts in its terms, the
// words in its length) and Lucene's idf, ties to the earlier context;
// the semantic side is the engine's own exact semantic search; the two
// are fused as [search.Fusion] fuses them, without the evidence shift.
// So the figures at keyword.K1, keyword.B and the engine's share are
// those of [Memory.Evaluate] (TestSweepMatchesEngine), and the others
// say what other parameters would give without building an index for
// each.
func (m *Memory) SweepKeyword(ctx context.Context, split Split, k1s, bs, shares []float64) ([]SweepRow, error) {
	an := keyword.DefaultAnalyzer
	tf := make([]map[string]int32, len(m.texts)) // per context: term → frequency
	lens := make([]float64, len(m.texts))
	df := map[string]int{}
	var total float64
	for i, t := range m.texts {
		f := map[string]int32{}
		for _, term := range an.Terms(t) {
			f[term]++
		}
		for term := range f {
			df[term]++
		}
		tf[i] = f
		lens[i] = float64(len(an.Analyze(t)))
		total += lens[i]
	}
	n := float64(len(m.texts))
	avg := total / n
	// A context that has a term of a question: its place in the store, its
	// length and the frequency of each of the question's terms.
	type match struct {
		ord int32
		len float64
		tf  []float64
	}
	type question struct {
		q        Question
		idf      []float64
		docs     []match // ascending by ord
		semantic []scored
		weight   float64 // the share's multiplier: 0 for exact names
	}
	var qs []question
	for i, q := range m.Set.Questions {
		if !split.Has(i) {
			continue
		}
		qq := question{q: q, weight: 1}
		if (search.Fusion{Semantic: 1}).Weight(q.Q) == 0 {
			qq.weight = 0
		}
		var terms []string
		for _, term := range an.Analyze(q.Q) {
			if slices.Contains(terms, term) || df[term] == 0 {
				continue
			}
			terms = append(terms, term)
			d := float64(df[term])
			qq.idf = append(qq.idf, math.Log(1+(n-d+0.5)/(d+0.5)))
		}
		for d, f := range tf {
			var freqs []float64
			for j, term := range terms {
				if c := f[term]; c > 0 {
					if freqs == nil {
						freqs = make([]float64, len(terms))
					}
					freqs[j] = float64(c)
				}
			}
			if freqs != nil {
				qq.docs = append(qq.docs, match{int32(d), lens[d], freqs})
			}
		}
		res, err := m.Engine.Search(ctx, nexus.SearchRequest{Query: q.Q, Mode: nexus.Semantic, Limit: sweepDepth, Exact: true})
		if err != nil {
			return nil, err
		}
		for _, h := range res.Hits {
			qq.semantic = append(qq.semantic, scored{m.ord[h.Context.ID], *h.Similarity})
		}
		qs = append(qs, qq)
	}
	var out []SweepRow
	for _, k1 := range k1s {
		for _, b := range bs {
			rows := make([]SweepRow, len(shares))
			kw := Metrics{}
			for i := range rows {
				rows[i] = SweepRow{K1: k1, B: b, Semantic: shares[i]}
			}
			for _, q := range qs {
				var top topK
				for _, d := range q.docs {
					var s float64
					norm := k1 * (1 - b + b*d.len/avg)
					for j, f := range d.tf {
						if f > 0 {
							s += q.idf[j] * (k1 + 1) * f / (f + norm)
						}
					}
					top.offer(scored{d.ord, s})
				}
				// Ranked by the exact sums, handed to fusion as the float32
				// of a keyword.Result, as the engine does.
				top.s = best(top.s, sweepDepth)
				for i := range top.s {
					top.s[i].score = float64(float32(top.s[i].score))
				}
				kw.add(m.labelsOf(top.s), q.q.Answers)
				for i, share := range shares {
					rows[i].Hybrid.add(m.labelsOf(fuse(q.semantic, top.s, share*q.weight)), q.q.Answers)
				}
			}
			kw.mean()
			for i := range rows {
				rows[i].Keyword = kw
				rows[i].Hybrid.mean()
			}
			out = append(out, rows...)
		}
	}
	return out, nil
}

// scored is a context (its place in the store) and a score.
type scored struct {
	ord   int32
	score float64
}

// topK keeps the sweepDepth best of the contexts offered: a heap whose
// root is the worst kept.
type topK struct{ s []scored }

// worse orders contexts: lower score, then later in the store.
func worse(a, b scored) bool { return a.score < b.score || a.score == b.score && a.ord > b.ord }

func (t *topK) offer(c scored) {
	h := t.s
	if len(h) < sweepDepth {
		h = append(h, c)
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if !worse(h[i], h[p]) {
				break
			}
			h[i], h[p] = h[p], h[i]
			i = p
		}
		t.s = h
		return
	}
	if !worse(h[0], c) {
		return
	}
	h[0] = c
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && worse(h[l], h[m]) {
			m = l
		}
		if r < len(h) && worse(h[r], h[m]) {
			m = r
		}
		if m == i {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// best sorts s best first, ties to the earlier context, and keeps k.
func best(s []scored, k int) []scored {
	slices.SortFunc(s, func(a, b scored) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return int(a.ord - b.ord)
	})
	return s[:min(k, len(s))]
}

// fuse ranks the candidates of the two signals (each best first) as
// search.Fusion does with semantic weight w and no evidence shift.
func fuse(sem, kw []scored, w float64) []scored {
	switch {
	case len(kw) == 0:
		w = 1
	case len(sem) == 0:
		w = 0
	}
	type both struct{ s, k float64 }
	c := map[int32]*both{}
	get := func(o int32) *both {
		if c[o] == nil {
			c[o] = &both{}
		}
		return c[o]
	}
	for _, h := range sem {
		if sem[0].score > 0 {
			get(h.ord).s = max(0, h.score) / sem[0].score
		} else {
			get(h.ord)
		}
	}
	for _, h := range kw {
		get(h.ord).k = h.score / kw[0].score
	}
	out := make([]scored, 0, len(c))
	for o, b := range c {
		out = append(out, scored{o, min(1, max(0, w*b.s+(1-w)*b.k))})
	}
	return best(out, 10)
}

// labelsOf returns the document ids of the first 10 contexts (noise "").
func (m *Memory) labelsOf(s []scored) []string {
	out := make([]string, 0, 10)
	for _, h := range s[:min(10, len(s))] {
		out = append(out, m.labels[h.ord])
	}
	return out
}
