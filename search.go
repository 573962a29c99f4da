package nexus

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Searcher finds contexts by meaning and by words. Implementations: the
// search package (in process) and httpapi.Client (a remote server).
type Searcher interface {
	// Search runs a query.
	Search(ctx context.Context, req SearchRequest) (*SearchResult, error)
	// Related returns the contexts nearest to id by meaning, most similar
	// first, whose similarity is at least req.MinScore. Only Limit,
	// MinScore and the filters of req are used.
	Related(ctx context.Context, id ID, req SearchRequest) (*SearchResult, error)
}

// SearchMode selects the signals a search uses.
type SearchMode string

// Search modes.
const (
	Hybrid   SearchMode = "hybrid"   // meaning and words, fused (the default)
	Semantic SearchMode = "semantic" // meaning only: nearest embeddings
	Keyword  SearchMode = "keyword"  // words only: BM25
)

// Search limits.
const (
	DefaultSearchLimit = 10
	MaxSearchLimit     = 100
	MaxQueryBytes      = 4 << 10
	MaxMetadataFilters = 16
)

// SearchRequest is a query with its filters. Zero fields match everything.
type SearchRequest struct {
	Query     string     `json:"query"`
	Mode      SearchMode `json:"mode,omitempty"`
	Limit     int        `json:"limit,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	Type      Type       `json:"type,omitempty"`
	AgentID   string     `json:"agent_id,omitempty"`
	// ParentID keeps the direct children of a context.
	ParentID ID `json:"parent_id,omitzero"`
	// ThreadID keeps the contexts of the thread that id belongs to: those
	// whose chain of parents ends at the same root.
	ThreadID ID        `json:"thread_id,omitzero"`
	Since    time.Time `json:"since,omitzero"` // inclusive
	Until    time.Time `json:"until,omitzero"` // exclusive
	// Metadata keeps contexts whose metadata has each key with an equal
	// value (strings, numbers, booleans and null compare as JSON values).
	Metadata map[string]any `json:"metadata,omitempty"`
	// MinScore drops hits scoring below it: cosine similarity in semantic
	// mode and for Related, BM25 in keyword mode, the fused score (0–1) in
	// hybrid mode.
	MinScore float64 `json:"min_score,omitempty"`
	// AsOf searches the memory as it was at that time.
	AsOf time.Time `json:"as_of,omitzero"`
	// Consistent waits until every context written before the request is
	// indexed.
	Consistent bool `json:"consistent,omitempty"`
	// Exact compares the query with every stored vector instead of walking
	// the graph: the true nearest contexts, at a cost linear in the store.
	Exact bool `json:"exact,omitempty"`
	// AllowNamespace, if set, keeps only contexts of the namespaces it
	// accepts: the node sets it to what the caller may read. It is not
	// part of the wire form.
	AllowNamespace func(namespace string) bool `json:"-"`
}

// Validate checks the request and fills defaults. needQuery is false for
// Related, which takes no text.
func (r *SearchRequest) Validate(needQuery bool) error {
	if needQuery {
		if strings.TrimSpace(r.Query) == "" {
			return Errorf(EInvalid, "query is empty")
		}
		if len(r.Query) > MaxQueryBytes {
			return Errorf(ETooLarge, "query is %d bytes, over the limit of %d", len(r.Query), MaxQueryBytes)
		}
		if !utf8.ValidString(r.Query) {
			return Errorf(EInvalid, "query is not valid UTF-8")
		}
	}
	switch r.Mode {
	case "":
		r.Mode = Hybrid
	case Hybrid, Semantic, Keyword:
	default:
		return Errorf(EInvalid, "invalid mode %q: want hybrid, semantic or keyword", clip(string(r.Mode), 20))
	}
	if r.Limit == 0 {
		r.Limit = DefaultSearchLimit
	}
	if r.Limit < 0 || r.Limit > MaxSearchLimit {
		return Errorf(EInvalid, "limit %d out of range 1-%d", r.Limit, MaxSearchLimit)
	}
	if math.IsNaN(r.MinScore) || math.IsInf(r.MinScore, 0) || r.MinScore < 0 {
		return Errorf(EInvalid, "min_score must be a finite number ≥ 0")
	}
	f := Filter{Namespace: r.Namespace, Type: r.Type, AgentID: r.AgentID, Since: r.Since, Until: r.Until, Limit: 1}
	if err := f.Validate(); err != nil {
		return err
	}
	if len(r.Metadata) > MaxMetadataFilters {
		return Errorf(EInvalid, "%d metadata filters, at most %d", len(r.Metadata), MaxMetadataFilters)
	}
	for k, v := range r.Metadata {
		if k == "" || len(k) > 256 {
			return Errorf(EInvalid, "metadata filter key %q must be 1-256 bytes", clip(k, 40))
		}
		switch v.(type) {
		case string, float64, bool, nil, json.Number:
		default:
			return Errorf(EInvalid, "metadata filter %q: only strings, numbers, booleans and null compare", clip(k, 40))
		}
	}
	return nil
}

// Signal names reported in [SearchHit.Matched].
const (
	SignalSemantic = "semantic"
	SignalKeyword  = "keyword"
)

// SearchHit is one result.
type SearchHit struct {
	Context *Context `json:"context"`
	Score   float64  `json:"score"`
	// Matched lists the signals that found this context.
	Matched []string `json:"matched"`
	// Similarity is the cosine similarity to the query, when the semantic
	// signal found it; BM25 likewise for the keyword signal.
	Similarity *float64 `json:"similarity,omitempty"`
	BM25       *float64 `json:"bm25,omitempty"`
	// Terms are the query words the context contains.
	Terms   []string `json:"terms,omitempty"`
	Snippet string   `json:"snippet"`
}

// SearchResult is the answer to a search.
type SearchResult struct {
	Hits   []SearchHit `json:"hits"`
	Mode   SearchMode  `json:"mode"`
	TookMS float64     `json:"took_ms"`
	// Degraded says why a signal was left out (e.g. the embedding
	// provider is down and a hybrid search ran on keywords only).
	Degraded string `json:"degraded,omitempty"`
	// IndexLag is the number of stored contexts not yet indexed.
	IndexLag int `json:"index_lag"`
}
