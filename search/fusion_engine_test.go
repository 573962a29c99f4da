package search_test

import (
	"slices"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/search"
)

func TestEngine_HybridScores(t *testing.T) {
	c := mustCorpus(t)
	e := mustEngine(t, c, embed.NewHashing(384), "")
	if e.Fusion() != search.DefaultFusion("nexus-hash-v1-384") {
		t.Fatalf("fusion %+v", e.Fusion())
	}
	// The zebra context is first by both signals: it scores exactly 1,
	// and a min_score just under 1 keeps it alone.
	res := mustSearch(t, e, nexus.SearchRequest{Query: "quokka zebra", Mode: nexus.Hybrid, Limit: 10, MinScore: 0.999})
	if len(res.Hits) != 1 || res.Hits[0].Context.ID != c.ids["zebra"] || res.Hits[0].Score != 1 {
		t.Fatalf("hits %v", res.Hits)
	}
	all := mustSearch(t, e, nexus.SearchRequest{Query: "billing rollout status", Mode: nexus.Hybrid, Limit: 20})
	for i, h := range all.Hits {
		if h.Score < 0 || h.Score > 1 || i > 0 && h.Score > all.Hits[i-1].Score {
			t.Fatalf("hit %d scores %v after %v", i, h.Score, all.Hits[max(i-1, 0)].Score)
		}
	}
	// With no weight on the semantic signal, hybrid ranks as keyword
	// search does, its scores the BM25 scores over the best one.
	e.SetFusion(search.Fusion{})
	kw := mustSearch(t, e, nexus.SearchRequest{Query: "billing rollout status", Mode: nexus.Keyword, Limit: 20})
	hy := mustSearch(t, e, nexus.SearchRequest{Query: "billing rollout status", Mode: nexus.Hybrid, Limit: 20})
	if !slices.Equal(ids(kw)[:len(kw.Hits)], ids(hy)[:len(kw.Hits)]) {
		t.Fatalf("keyword %v, hybrid %v", ids(kw), ids(hy))
	}
	for i, h := range kw.Hits {
		if want := h.Score / kw.Hits[0].Score; hy.Hits[i].Score != want {
			t.Fatalf("hit %d scores %v, want %v", i, hy.Hits[i].Score, want)
		}
	}
}
