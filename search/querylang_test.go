package search_test

import (
	"slices"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
)

// TestEngine_QueryLanguage checks phrases, exclusions and field terms in
// every mode against the small corpus, with exact expected sets.
func TestEngine_QueryLanguage(t *testing.T) {
	c := mustCorpus(t)
	e := mustEngine(t, c, embed.NewHashing(384), "")
	names := func(res *nexus.SearchResult) []nexus.ID { return sorted(ids(res)) }
	want := func(ns ...string) []nexus.ID {
		var out []nexus.ID
		for _, n := range ns {
			out = append(out, c.ids[n])
		}
		return sorted(out)
	}
	exact := []struct {
		name, query string
		want        []string
	}{
		{"phrase", `"blue green rollout" billing`, []string{"deploy", "deploy-followup"}},
		{"phrase in another order", `"rollout green blue"`, nil},
		{"phrase folds word forms", `"rolled out" "green is live"`, nil},
		{"two phrases", `"billing service" "error rates"`, []string{"deploy-followup"}},
		{"phrase and exclusion", `"billing service" -kubernetes`, []string{"deploy-followup", "deploy-result"}},
		{"excluded phrase", `"billing service" -"blue green"`, []string{"deploy-result"}},
		{"type", `billing type:decision`, []string{"deploy"}},
		{"agent", `"blue green" agent:watcher`, []string{"deploy-followup"}},
		{"namespace", `bread ns:kitchen`, []string{"recipe"}},
		{"metadata string", `"blue green" meta.team:payments`, []string{"deploy"}},
		{"metadata number", `billing meta.priority:2`, []string{"deploy-result"}},
		{"metadata quoted", `billing meta.team:"payments"`, []string{"deploy", "deploy-result"}},
		{"thread", `"billing service" thread:` + c.ids["deploy-result"].String(), []string{"deploy", "deploy-followup", "deploy-result"}},
		{"parent", `rollout parent:` + c.ids["deploy"].String(), []string{"deploy-followup"}},
	}
	for _, tc := range exact {
		for _, mode := range []nexus.SearchMode{nexus.Hybrid, nexus.Keyword, nexus.Semantic} {
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				got := names(mustSearch(t, e, nexus.SearchRequest{Query: tc.query, Mode: mode, Limit: 100}))
				// Field terms and phrases decide the set: semantic search
				// ranks every context they keep, keyword search those with
				// a word of the query, which all of these have.
				if w := want(tc.want...); !slices.Equal(got, w) {
					t.Fatalf("%s: got %v, want %v", tc.query, got, w)
				}
			})
		}
	}
	t.Run("exclusion", func(t *testing.T) {
		for _, mode := range []nexus.SearchMode{nexus.Hybrid, nexus.Keyword, nexus.Semantic} {
			got := names(mustSearch(t, e, nexus.SearchRequest{Query: "billing rollout -kubernetes", Mode: mode, Limit: 100}))
			if slices.Contains(got, c.ids["deploy"]) || !slices.Contains(got, c.ids["deploy-result"]) {
				t.Fatalf("%s: %v: the excluded word's context is in, or another is out", mode, got)
			}
		}
	})
	t.Run("a colon that names no field is a word", func(t *testing.T) {
		got := names(mustSearch(t, e, nexus.SearchRequest{Query: "zebra http://quokka", Mode: nexus.Keyword, Limit: 100}))
		if !slices.Equal(got, want("zebra")) {
			t.Fatalf("got %v", got)
		}
	})
	bad := []struct {
		name string
		req  nexus.SearchRequest
	}{
		{"unterminated quote", nexus.SearchRequest{Query: `"blue green`}},
		{"only operators", nexus.SearchRequest{Query: `type:decision -billing`}},
		{"contradicts the request", nexus.SearchRequest{Query: `billing type:decision`, Type: nexus.TypeResult}},
		{"not an id", nexus.SearchRequest{Query: `billing thread:nope`}},
		{"unknown type", nexus.SearchRequest{Query: `billing type:nonsense`}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Search(t.Context(), tc.req)
			if nexus.ErrorCode(err) != nexus.EInvalid {
				t.Fatalf("%q: got %v, want an invalid-request error", tc.req.Query, err)
			}
		})
	}
}
