package authz_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/search"
)

// Search and related find only what the principal may read, whatever the
// request's namespace, and fill their pages from it: unreadable contexts
// that match better do not crowd the readable ones out.
func TestSearcher_onlyReadable(t *testing.T) {
	s := openStore(t)
	var team, secret []nexus.ID
	for i := range 30 {
		ns, content := "secret", fmt.Sprintf("The deploy key of the billing service is rotated on day %d.", i)
		if i%10 == 0 {
			ns, content = "team-a", fmt.Sprintf("The billing service deploy went out on day %d.", i)
		}
		c, err := s.Put(context.Background(), nexus.Draft{Namespace: ns, Type: nexus.TypeMemory, Content: content})
		if err != nil {
			t.Fatal(err)
		}
		if ns == "secret" {
			secret = append(secret, c.ID)
		} else {
			team = append(team, c.ID)
		}
	}
	e, err := search.Open(s, embed.NewHashing(64), search.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	sr := authz.NewSearcher(e, authz.NewStore(s))
	for _, mode := range []nexus.SearchMode{nexus.Hybrid, nexus.Keyword, nexus.Semantic} {
		req := nexus.SearchRequest{Query: "billing service deploy key rotated", Mode: mode, Limit: 3, Consistent: true}
		res, err := sr.Search(as(reader), req)
		if err != nil {
			t.Fatal(err)
		}
		if got := hitIDs(res); !sameSet(got, team) {
			t.Errorf("%s search by reader: %v, want exactly %v", mode, got, team)
		}
		all, err := sr.Search(context.Background(), req)
		if err != nil || len(all.Hits) != 3 || !allIn(hitIDs(all), secret) {
			t.Errorf("%s search by the node: %v %v (the secret contexts match best)", mode, hitIDs(all), err)
		}
	}
	_, err = sr.Search(as(reader), nexus.SearchRequest{Query: "key", Namespace: "secret"})
	wantCode(t, "search of an unreadable namespace", err, nexus.EForbidden)

	rel, err := sr.Related(as(reader), team[0], nexus.SearchRequest{Limit: 5})
	if err != nil || !sameSet(hitIDs(rel), team[1:]) {
		t.Errorf("related by reader: %v %v, want %v", hitIDs(rel), err, team[1:])
	}
	_, err = sr.Related(as(reader), secret[0], nexus.SearchRequest{})
	wantCode(t, "related of an unreadable context", err, nexus.ENotFound)
	if authz.NewSearcher(nil, nil) != nil {
		t.Error("a node without search got a searcher")
	}
}

func hitIDs(res *nexus.SearchResult) []nexus.ID {
	var out []nexus.ID
	for _, h := range res.Hits {
		out = append(out, h.Context.ID)
	}
	return out
}

func sameSet(a, b []nexus.ID) bool {
	return len(a) == len(b) && allIn(a, b)
}

func allIn(a, b []nexus.ID) bool {
	in := map[nexus.ID]bool{}
	for _, x := range b {
		in[x] = true
	}
	for _, x := range a {
		if !in[x] {
			return false
		}
	}
	return true
}
