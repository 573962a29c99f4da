package quality

import (
	"math"
	"slices"
	"strings"
	"unicode"
)

// bm25 is a plain textbook Okapi BM25 (k1 = 1.2, b = 0.75, idf
// ln(1 + (N − df + 0.5)/(df + 0.5))) over lowercased runs of letters and
// digits: no stemming, no stop words, exhaustive scoring. It is the
// reference the engine's modes are compared with, kept apart from the
// keyword package on purpose.
type bm25 struct {
	postings map[string][]posting
	lengths  []int
	avg      float64
}

type posting struct {
	doc int32
	tf  int32
}

const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

func tokens(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

func newBM25(texts []string) *bm25 {
	x := &bm25{postings: map[string][]posting{}, lengths: make([]int, len(texts))}
	total := 0
	for i, t := range texts {
		tf := map[string]int32{}
		ts := tokens(t)
		for _, w := range ts {
			tf[w]++
		}
		// Postings in document order whatever the map's order.
		for _, w := range ts {
			if n := tf[w]; n > 0 {
				x.postings[w] = append(x.postings[w], posting{int32(i), n})
				tf[w] = 0
			}
		}
		x.lengths[i] = len(ts)
		total += len(ts)
	}
	x.avg = float64(total) / float64(max(len(texts), 1))
	return x
}

// search returns the k best documents for query, best first, ties broken
// by the smaller index.
func (x *bm25) search(query string, k int) []int {
	n := float64(len(x.lengths))
	scores := map[int32]float64{}
	seen := map[string]bool{}
	for _, w := range tokens(query) {
		if seen[w] {
			continue
		}
		seen[w] = true
		ps := x.postings[w]
		if len(ps) == 0 {
			continue
		}
		df := float64(len(ps))
		idf := math.Log(1 + (n-df+0.5)/(df+0.5))
		for _, p := range ps {
			tf := float64(p.tf)
			norm := bm25K1 * (1 - bm25B + bm25B*float64(x.lengths[p.doc])/x.avg)
			scores[p.doc] += idf * tf * (bm25K1 + 1) / (tf + norm)
		}
	}
	docs := make([]int32, 0, len(scores))
	for d := range scores {
		docs = append(docs, d)
	}
	slices.SortFunc(docs, func(a, b int32) int {
		if scores[a] != scores[b] {
			if scores[a] > scores[b] {
				return -1
			}
			return 1
		}
		return int(a - b)
	})
	out := make([]int, 0, min(k, len(docs)))
	for _, d := range docs[:min(k, len(docs))] {
		out = append(out, int(d))
	}
	return out
}
