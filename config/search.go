package config

import (
	"math"
	"time"
)

// Embedders of search.embedder.
const (
	EmbedderHash = "hash" // nexus-hash-v1-384, the built-in lexical model (the default)
	EmbedderCooc = "cooc" // nexus-cooc-v1, learned from the store's own contexts
)

// Search chooses the embedder of the node's search index
// (docs/SEARCH.md, "The learned model in the node"). An embedder set in
// the environment (NEXUS_EMBED_URL) cannot be combined with cooc.
type Search struct {
	// Embedder is hash (default) or cooc: a model the node trains from
	// its own contexts, in the background, served by hash until there is
	// enough text.
	Embedder string `yaml:"embedder"`
	// Learned sets when cooc trains; fields left out take the node's
	// defaults.
	Learned Learned `yaml:"learned"`
	// MaxLag bounds the search index's lag behind the store (contexts
	// written, not yet searchable): while the index is further behind,
	// new writes wait for it (default 50,000; -1: never wait).
	MaxLag int `yaml:"max_lag"`
}

// Learned sets when the node trains its cooc model. It trains once the
// store holds MinContexts contexts, then again when the store has grown
// Growth times (or by Every contexts, if set, whichever comes first)
// since the model was trained.
type Learned struct {
	// MinContexts is the store size below which the hashing model serves
	// (default 1000).
	MinContexts int `yaml:"min_contexts"`
	// Growth is the factor of the store's size since the last training
	// that trains again (default 2; more than 1).
	Growth float64 `yaml:"growth"`
	// Every, if set, trains again once this many contexts were written
	// since the last training, even before Growth.
	Every int `yaml:"every"`
	// MaxTexts bounds the texts a training reads: a sample spread evenly
	// over the store in id order (default 50000).
	MaxTexts int `yaml:"max_texts"`
	// Interval is how often the node looks whether to train (default 1m).
	Interval time.Duration `yaml:"interval"`
	// Dimension is the size of the learned word vectors, next to the
	// hashed features (default 128, 8-1024): smaller trains faster, with
	// less to tell words apart; a training needs at least twice as many
	// distinct words seen three times or more.
	Dimension int `yaml:"dimension"`
}

func (d *decoder) validateSearch(s *Search) {
	switch s.Embedder {
	case "", EmbedderHash, EmbedderCooc:
	default:
		d.errorf("search.embedder", "%q: want %s or %s", s.Embedder, EmbedderHash, EmbedderCooc)
	}
	if s.MaxLag < -1 {
		d.errorf("search.max_lag", "%d: must be -1 (no bound), positive, or left out for the default 50000", s.MaxLag)
	}
	l := &s.Learned
	d.atLeast("search.learned.min_contexts", l.MinContexts, 0)
	d.atLeast("search.learned.every", l.Every, 0)
	d.atLeast("search.learned.max_texts", l.MaxTexts, 0)
	if l.Growth != 0 && !(l.Growth > 1 && !math.IsInf(l.Growth, 0)) {
		d.errorf("search.learned.growth", "%v: must be more than 1 (or left out for the default 2)", l.Growth)
	}
	if l.Dimension != 0 && (l.Dimension < 8 || l.Dimension > 1024) {
		d.errorf("search.learned.dimension", "%d: must be 8-1024 (or left out for the default 128)", l.Dimension)
	}
	if l.Interval < 0 {
		d.errorf("search.learned.interval", "%s: must be positive (or left out for the default)", l.Interval)
	}
}
