package quality

import (
	"context"
	"slices"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
)

// TestCompoundWordsInQueries checks, through a real store and engine, what
// the query language does with a word that is a part of a compound word:
// a plain or quoted "trim" finds TrimSpace, -trim leaves it out, and a
// phrase is matched against the words as written.
func TestCompoundWordsInQueries(t *testing.T) {
	s := &Set{Name: "compound", Docs: []Doc{
		{"TrimSpace", "strings.TrimSpace removes the white space at both ends"},
		{"trim", "trim the space at both ends of a string"},
		{"ReadFile", "os.ReadFile reads a whole file"},
	}, Questions: []Question{{"trim", []string{"TrimSpace"}}}}
	ctx := context.Background()
	m, err := Build(ctx, s, Config{Noise: 0, Seed: 1, Embedder: embed.NewHashing(embed.DefaultDimension), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for q, want := range map[string][]string{
		"trim":               {"TrimSpace", "trim"},
		`"trim"`:             {"TrimSpace", "trim"},
		"space -trim":        {},
		"ends -TrimSpace":    {"trim"},
		`"trim space"`:       {},
		`"TrimSpace" ends`:   {"TrimSpace"},
		"read -file":         {},
		"whole -trimspace":   {"ReadFile"},
		`"the space" -trim`:  {},
		`"the space" ends`:   {"trim"},
		`"white space" trim`: {"TrimSpace"},
	} {
		res, err := m.Engine.Search(ctx, nexus.SearchRequest{Query: q, Mode: nexus.Keyword, Limit: 10})
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		got := []string{}
		for _, h := range res.Hits {
			got = append(got, m.label[h.Context.ID])
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%q finds %q, want %q", q, got, want)
		}
	}
}
