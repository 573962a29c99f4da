package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/config"
)

func TestParse_search(t *testing.T) {
	for _, c := range []struct {
		text string
		want config.Search
		err  string
	}{
		{"server:\n  max_chain_depth: 3\n", config.Search{}, ""},
		{"search:\n  embedder: hash\n", config.Search{Embedder: config.EmbedderHash}, ""},
		{"search:\n  embedder: cooc\n  learned:\n    min_contexts: 500\n    growth: 1.5\n    every: 20000\n    max_texts: 10000\n    interval: 30s\n    dimension: 64\n",
			config.Search{Embedder: config.EmbedderCooc, Learned: config.Learned{MinContexts: 500, Growth: 1.5, Every: 20000, MaxTexts: 10000, Interval: 30 * time.Second, Dimension: 64}}, ""},
		{"search:\n  learned: {dimension: 4}\n", config.Search{}, "search.learned.dimension: 4: must be 8-1024"},
		{"search:\n  embedder: bert\n", config.Search{}, `search.embedder: "bert": want hash or cooc`},
		{"search:\n  learned: {growth: 1}\n", config.Search{}, "search.learned.growth: 1: must be more than 1"},
		{"search:\n  learned: {growth: 0.5}\n", config.Search{}, "search.learned.growth: 0.5: must be more than 1"},
		{"search:\n  learned: {min_contexts: -1}\n", config.Search{}, "search.learned.min_contexts: must not be negative, not -1"},
		{"search:\n  max_lag: 1000\n", config.Search{MaxLag: 1000}, ""},
		{"search:\n  max_lag: -1\n", config.Search{MaxLag: -1}, ""},
		{"search:\n  max_lag: -2\n", config.Search{}, "search.max_lag: -2: must be -1 (no bound), positive, or left out for the default 50000"},
		{"search:\n  learned: {every: -1}\n", config.Search{}, "search.learned.every: must not be negative"},
		{"search:\n  learned: {max_texts: -3}\n", config.Search{}, "search.learned.max_texts: must not be negative"},
		{"search:\n  learned: {interval: -1s}\n", config.Search{}, "search.learned.interval: -1s: must be positive"},
		{"search:\n  model: cooc\n", config.Search{}, "search.model: unknown field (known: embedder, learned, max_lag)"},
	} {
		f, err := config.Parse("nexus.yaml", []byte(c.text))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want an error with %q", c.text, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.text, err)
			continue
		}
		if f.Search != c.want {
			t.Errorf("%q: %+v, want %+v", c.text, f.Search, c.want)
		}
	}
}
