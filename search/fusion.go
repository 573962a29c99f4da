package search

import (
	"strings"
	"unicode"
)

// Fusion weighs the two signals of a hybrid search. A hybrid score is
//
//	w·s + (1 − w)·k
//
// where k is the context's BM25 score divided by the best BM25 score of
// the search's candidates, s its cosine similarity (negative counts as 0)
// divided by the best similarity of the search's candidates (each 0 when
// that signal did not find the context among its max(4·limit, 50) best),
// and w the semantic weight of the query: Semantic or Exact, then, if
// Evidence is set, shifted towards the signal with more evidence (see
// signals.evidence). A signal that found nothing (or did not run: a
// failing embedder) gets weight 0 and the other weight 1. Scores are in
// [0, 1], and a context first in both signals scores 1.
type Fusion struct {
	// Semantic is w for a query in words, in [0, 1].
	Semantic float64
	// Exact is w for a query that names something exactly: a word with
	// a digit, an underscore or a capital after a small letter, a word
	// in capitals, a path, a flag or a dotted name (ENOSPC, sha256sum,
	// --max-streams, os.ReadFile, TestPowerLoss). Such words are rare and
	// keyword search finds them as written, where an embedding blurs
	// them, so Exact is usually below Semantic.
	Exact float64
	// Evidence shifts w, query by query, towards the signal whose best
	// candidates stand out of the rest (see signals.evidence).
	Evidence bool
}

// DefaultFusion returns the weights measured for an embedder model on the
// tuning questions of the evaluation sets (docs/SEARCH.md). The built-in
// hashing model is lexical: its signal mostly repeats keyword search's.
// Its share was chosen with BM25's k1 and b (`nexus bench quality
// --embedder hash --sweep`): 0.005 for queries in words, enough to order
// contexts that keyword search scores alike or nearly so (with BM25's k1
// and b of now, 0.01 and more ranked nexusdocs' tuning questions below
// keyword search alone); 0 for exact names, as measured with the k1 and
// b of before (a share for them ranked gostd's tuning questions below
// keyword search at every value tried), not swept again; and no shift by
// evidence, which moved weight to it on queries where it was wrong. The learned model was measured with the
// shift; a model not measured gets equal shares, and less for exact names.
func DefaultFusion(model string) Fusion {
	switch {
	case strings.HasPrefix(model, "nexus-hash-"):
		return Fusion{Semantic: 0.005}
	case strings.HasPrefix(model, "nexus-cooc-"):
		return Fusion{Semantic: 0.5, Exact: 0.25, Evidence: true}
	}
	return Fusion{Semantic: 0.5, Exact: 0.3, Evidence: true}
}

// Weight returns w for a query before any shift by evidence: Exact if a
// word of the query is an exact name, else Semantic.
func (f Fusion) Weight(query string) float64 {
	for _, word := range strings.Fields(query) {
		if exactName(word) {
			return f.Exact
		}
	}
	return f.Semantic
}

// queryWeight returns w for a query whose signals found sig: the weight
// of the query, shifted by evidence if f.Evidence.
func (f Fusion) queryWeight(query string, sig signals) float64 {
	w := f.Weight(query)
	if f.Evidence {
		w = sig.evidence(w)
	}
	return w
}

// exactName reports whether a word of a query looks like a name to be
// found as written rather than a word of prose.
func exactName(word string) bool {
	word = strings.Trim(word, "\"'`,;:!?()[]{}<>")
	if strings.HasPrefix(word, "--") || strings.Contains(word, "/") && len(word) > 1 {
		return true
	}
	var upper, lower, prevLower bool
	letters := 0
	for i, r := range word {
		switch {
		case r >= '0' && r <= '9', r == '_':
			return true
		case r == '.' && i > 0 && i < len(word)-1:
			return true
		case unicode.IsUpper(r):
			if prevLower {
				return true // camelCase
			}
			upper = true
			letters++
		case unicode.IsLower(r):
			lower = true
			letters++
		}
		prevLower = unicode.IsLower(r)
	}
	return upper && !lower && letters >= 3 // ENOSPC, HNSW
}

// fuse returns a candidate's hybrid score.
func (sig signals) fuse(c *candidate) float64 {
	w := sig.semanticWeight
	switch {
	case !sig.semantic:
		w = 0
	case !sig.keyword:
		w = 1
	}
	var s, k float64
	if c.sim != nil && sig.simTop > 0 {
		s = max(0, *c.sim) / sig.simTop
	}
	if c.bm25 != nil && sig.bm25Top > 0 {
		k = *c.bm25 / sig.bm25Top
	}
	return min(1, max(0, w*s+(1-w)*k))
}

// SetFusion replaces the weights of hybrid searches (by default
// DefaultFusion of the embedder's model). The evaluation harness sweeps
// them with it; Options.Fusion sets them at open.
func (e *Engine) SetFusion(f Fusion) { e.fusionW.Store(&f) }

// Fusion returns the weights of hybrid searches.
func (e *Engine) Fusion() Fusion {
	if f := e.fusionW.Load(); f != nil {
		return *f
	}
	return DefaultFusion(e.emb.Model())
}

// Model returns the id of the engine's embedder.
func (e *Engine) Model() string { return e.emb.Model() }

// evidence shifts the weight w towards the signal whose best candidates
// stand out of the rest: a signal whose 10 best candidates score alike
// says little about which is right. Each signal's evidence is the drop
// from its best score to its 10th, over the best; w becomes
// w·e_s / (w·e_s + (1 − w)·e_k).
func (sig signals) evidence(w float64) float64 {
	var es, ek float64
	if sig.simTop > 0 {
		es = max(0, sig.simTop-sig.simTenth) / sig.simTop
	}
	if sig.bm25Top > 0 {
		ek = max(0, sig.bm25Top-sig.bm25Tenth) / sig.bm25Top
	}
	if d := w*es + (1-w)*ek; d > 0 {
		return w * es / d
	}
	return w
}
