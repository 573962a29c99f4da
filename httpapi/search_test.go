package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/search"
)

// Search over HTTP against a real store and engine: the client gets what
// the engine answers, and bad requests get 4xx errors naming the problem.
func TestServer_Search(t *testing.T) {
	store, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	eng, err := search.Open(store, embed.NewHashing(64), search.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	srv := newServer(t, store, httpapi.Options{Searcher: eng})
	c := httpapi.NewClient(srv.URL, httpapi.WithToken(token), httpapi.WithHTTPClient(srv.Client()))
	ctx := context.Background()
	zebra, err := c.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: "a zebra in the data center"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: "the zebra went home", ParentID: zebra.ID}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Search(ctx, nexus.SearchRequest{Query: "zebra data center", Consistent: true})
	if err != nil || len(res.Hits) != 2 || res.Hits[0].Context.ID != zebra.ID || res.Hits[0].Snippet == "" {
		t.Fatalf("search: %v %+v", err, res)
	}
	rel, err := c.Related(ctx, zebra.ID, nexus.SearchRequest{Limit: 5})
	if err != nil || len(rel.Hits) != 1 || rel.Hits[0].Context.ParentID != zebra.ID {
		t.Fatalf("related: %v %+v", err, rel)
	}
	for _, tc := range []struct {
		body, want string
		status     int
	}{
		{`{"query":""}`, "query is empty", 400},
		{`{"query":"x","limit":101}`, "limit 101 out of range", 400},
		{`{"query":"x","mode":"fuzzy"}`, `invalid mode "fuzzy"`, 400},
		{`{"query":"x","color":"red"}`, `unknown field "color"`, 400},
		{`{"query":"x","limit":"ten"}`, `field "limit": want an integer`, 400},
		{`{"query":"x","thread_id":"../etc"}`, "invalid id", 400},
		{`{"query":"` + strings.Repeat("a", nexus.MaxQueryBytes+1) + `"}`, "query is", 413},
	} {
		resp := send(t, srv, request{method: "POST", target: "/v1/search", ctype: "application/json", body: strings.NewReader(tc.body)})
		msg := wantError(t, resp, tc.status, map[int]nexus.Code{400: nexus.EInvalid, 413: nexus.ETooLarge}[tc.status])
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%s: message %q lacks %q", tc.body[:min(40, len(tc.body))], msg, tc.want)
		}
	}
	resp := send(t, srv, request{method: "GET", target: "/v1/contexts/" + zebra.ID.String() + "/related?limit=abc"})
	wantError(t, resp, http.StatusBadRequest, nexus.EInvalid)
	noSearch := newServer(t, store, httpapi.Options{})
	resp = send(t, noSearch, request{method: "POST", target: "/v1/search", ctype: "application/json", body: strings.NewReader(`{"query":"x"}`)})
	wantError(t, resp, http.StatusServiceUnavailable, nexus.EUnavailable)
}

// An agent's checkpoint (agent_state) comes back from /v1/search and
// /related only to a request for that type.
func TestServer_Search_agentState(t *testing.T) {
	store, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	eng, err := search.Open(store, embed.NewHashing(64), search.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	srv := newServer(t, store, httpapi.Options{Searcher: eng})
	c := httpapi.NewClient(srv.URL, httpapi.WithToken(token), httpapi.WithHTTPClient(srv.Client()))
	ctx := context.Background()
	memory, err := c.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: "a zebra in the data center"})
	if err != nil {
		t.Fatal(err)
	}
	state, err := c.Put(ctx, nexus.Draft{Type: nexus.TypeAgentState, AgentID: "keeper", Content: `{"seen":"a zebra in the data center"}`})
	if err != nil {
		t.Fatal(err)
	}
	hits := func(res *nexus.SearchResult, err error) []nexus.ID {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []nexus.ID
		for _, h := range res.Hits {
			out = append(out, h.Context.ID)
		}
		return out
	}
	if got := hits(c.Search(ctx, nexus.SearchRequest{Query: "zebra data center", Consistent: true})); len(got) != 1 || got[0] != memory.ID {
		t.Errorf("search: %v, want only the memory %s", got, memory.ID)
	}
	if got := hits(c.Search(ctx, nexus.SearchRequest{Query: "zebra data center", Type: nexus.TypeAgentState})); len(got) != 1 || got[0] != state.ID {
		t.Errorf("search of type agent_state: %v, want only the checkpoint %s", got, state.ID)
	}
	if got := hits(c.Related(ctx, memory.ID, nexus.SearchRequest{Limit: 5})); len(got) != 0 {
		t.Errorf("related: %v, want none (the only other context is a checkpoint)", got)
	}
	if got := hits(c.Related(ctx, memory.ID, nexus.SearchRequest{Limit: 5, Type: nexus.TypeAgentState})); len(got) != 1 || got[0] != state.ID {
		t.Errorf("related of type agent_state: %v, want the checkpoint %s", got, state.ID)
	}
}
