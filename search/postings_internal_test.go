package search

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// TestPostings_narrow checks that the ordinals a filter keeps, found from
// the postings, are exactly those its predicate keeps over every doc, for
// every kind of equality filter and combinations with the others, across
// seals of the key array (a tail of 64 pairs here) and a view taken
// before the last docs were added.
func TestPostings_narrow(t *testing.T) {
	old := metaTail
	metaTail = 64
	t.Cleanup(func() { metaTail = old })
	r := rand.New(rand.NewPCG(1, 2))
	tab := newTable()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []nexus.ID
	var gen nexus.IDGenerator
	const n = 3000
	for i := range n {
		c := &nexus.Context{
			ID: gen.New(base), Namespace: fmt.Sprintf("ns%d", r.IntN(4)), Type: []nexus.Type{nexus.TypeObservation, nexus.TypeDecision, nexus.TypeAgentState}[r.IntN(3)],
			AgentID: fmt.Sprintf("a%d", r.IntN(30)), Timestamp: base.Add(time.Duration(i) * time.Second),
			Metadata: json.RawMessage(fmt.Sprintf(`{"topic":"t%d","n":%d,"req":"r%d"}`, r.IntN(50), r.IntN(3), i)),
		}
		if i > 0 && r.IntN(3) > 0 {
			c.ParentID = ids[r.IntN(len(ids))]
		}
		ids = append(ids, c.ID)
		tab.add(c)
	}
	v := view{docs: tab.docs[: n-100 : n-100]} // a snapshot: the last 100 docs came after it
	reqs := []nexus.SearchRequest{
		{Namespace: "ns1"}, {Type: nexus.TypeDecision}, {AgentID: "a7"}, {AgentID: "a7", Type: nexus.TypeAgentState},
		{Metadata: map[string]any{"topic": "t3"}}, {Metadata: map[string]any{"n": 1.0, "topic": "t9"}},
		{Metadata: map[string]any{"req": "r17"}}, {Metadata: map[string]any{"req": fmt.Sprintf("r%d", n-1)}}, // the second one is past the view
		{ThreadID: ids[5]}, {ThreadID: ids[2000], Namespace: "ns0"}, {ParentID: ids[10]}, {ParentID: ids[10], Since: base.Add(1000 * time.Second)},
		{AgentID: "a3", AllowNamespace: func(ns string) bool { return ns != "ns2" }}, {Metadata: map[string]any{"topic": "t1"}, Until: base.Add(2000 * time.Second)},
	}
	for i, req := range reqs {
		pred, ok := tab.filter(v, &req)
		if !ok || pred == nil {
			t.Fatalf("request %d: filter ok %v, predicate %v", i, ok, pred != nil)
		}
		var want []uint32
		for o := range uint32(len(v.docs)) {
			if pred(o) {
				want = append(want, o)
			}
		}
		got, known := tab.narrow(v, &req, pred, n)
		if !known {
			t.Fatalf("request %d: no posting list found", i)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("request %d (%+v): narrow kept %d ordinals, the predicate %d:\n got %v\nwant %v", i, req, len(got), len(want), got, want)
		}
		if _, known := tab.narrow(v, &req, pred, -1); known {
			t.Fatalf("request %d: narrowed with a bound below every list", i)
		}
	}
	// Only range filters and namespace rights: no list to narrow from.
	req := nexus.SearchRequest{Since: base, AllowNamespace: func(string) bool { return true }}
	pred, _ := tab.filter(v, &req)
	if _, known := tab.narrow(v, &req, pred, n); known {
		t.Fatal("narrowed a filter that has no equality term")
	}
}
