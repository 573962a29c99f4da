package search_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/search"
	"github.com/nexus-mem/nexus/vector"
)

// corpus is a small memory with threads, namespaces, types and metadata.
type corpus struct {
	store *gitstore.Store
	ids   map[string]nexus.ID
	mid   time.Time // between the first and the second half of the writes
}

func mustCorpus(t *testing.T) *corpus {
	t.Helper()
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &corpus{store: st, ids: map[string]nexus.ID{}}
	put := func(name string, d nexus.Draft) {
		t.Helper()
		got, err := st.Put(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		c.ids[name] = got.ID
	}
	put("deploy", nexus.Draft{Type: nexus.TypeDecision, AgentID: "planner", Content: "We deploy the billing service with a blue green rollout on Kubernetes.",
		Metadata: json.RawMessage(`{"team":"payments","priority":1}`)})
	put("deploy-followup", nexus.Draft{Type: nexus.TypeObservation, AgentID: "watcher", ParentID: c.ids["deploy"],
		Content: "The blue green rollout of the billing service finished; error rates stayed flat."})
	put("deploy-result", nexus.Draft{Type: nexus.TypeResult, AgentID: "watcher", ParentID: c.ids["deploy-followup"],
		Content: "Billing service rollout complete; green is live.", Metadata: json.RawMessage(`{"team":"payments","priority":2}`)})
	c.mid = time.Now()
	time.Sleep(2 * time.Millisecond)
	put("cache", nexus.Draft{Type: nexus.TypeAnalysis, AgentID: "planner", Content: "Redis cache hit ratio dropped after the eviction policy changed to allkeys-lru.",
		Metadata: json.RawMessage(`{"team":"platform"}`)})
	put("recipe", nexus.Draft{Namespace: "kitchen", Type: nexus.TypeMemory, AgentID: "chef", Content: "Sourdough bread needs a lively starter and a long cold proof."})
	put("zebra", nexus.Draft{Type: nexus.TypeMemory, AgentID: "chef", Content: "The quokka incident: a zebra walked through the data center."})
	for i := range 40 {
		put(fmt.Sprint("filler", i), nexus.Draft{Type: nexus.TypeConversation, AgentID: "chatter",
			Content: fmt.Sprintf("Routine status update number %d about meetings, lunch and the weather.", i)})
	}
	return c
}

func mustEngine(t *testing.T, c *corpus, emb nexus.Embedder, dir string) *search.Engine {
	t.Helper()
	e, err := search.Open(c.store, emb, search.Options{Dir: dir, RetryInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func ids(res *nexus.SearchResult) []nexus.ID {
	out := make([]nexus.ID, len(res.Hits))
	for i, h := range res.Hits {
		out[i] = h.Context.ID
	}
	return out
}

func mustSearch(t *testing.T, s nexus.Searcher, req nexus.SearchRequest) *nexus.SearchResult {
	t.Helper()
	req.Consistent = true
	res, err := s.Search(context.Background(), req)
	if err != nil {
		t.Fatalf("search %+v: %v", req, err)
	}
	return res
}

func TestEngine_Search(t *testing.T) {
	c := mustCorpus(t)
	e := mustEngine(t, c, embed.NewHashing(384), "")
	for _, mode := range []nexus.SearchMode{nexus.Hybrid, nexus.Semantic, nexus.Keyword} {
		t.Run(string(mode), func(t *testing.T) {
			res := mustSearch(t, e, nexus.SearchRequest{Query: "quokka zebra", Mode: mode, Limit: 3})
			if len(res.Hits) == 0 || res.Hits[0].Context.ID != c.ids["zebra"] {
				t.Fatalf("first hit is not the zebra context: %v", ids(res))
			}
			h := res.Hits[0]
			if res.Mode != mode || res.IndexLag != 0 || res.TookMS < 0 || h.Snippet == "" {
				t.Fatalf("result %+v, hit %+v", res, h)
			}
			wantSignals := map[nexus.SearchMode][]string{
				nexus.Hybrid: {nexus.SignalSemantic, nexus.SignalKeyword}, nexus.Semantic: {nexus.SignalSemantic}, nexus.Keyword: {nexus.SignalKeyword},
			}[mode]
			if !slices.Equal(h.Matched, wantSignals) {
				t.Fatalf("matched %v, want %v", h.Matched, wantSignals)
			}
			if mode != nexus.Semantic && !slices.Equal(h.Terms, []string{"quokka", "zebra"}) {
				t.Fatalf("terms %v", h.Terms)
			}
			if mode == nexus.Hybrid && (h.Score <= 0 || h.Score > 1) {
				t.Fatalf("fused score %v outside (0, 1]", h.Score)
			}
		})
	}
	t.Run("semantic ranks the rollout thread first", func(t *testing.T) {
		res := mustSearch(t, e, nexus.SearchRequest{Query: "billing service blue green rollout", Mode: nexus.Semantic, Limit: 3})
		got := ids(res)
		for _, name := range []string{"deploy", "deploy-followup", "deploy-result"} {
			if !slices.Contains(got, c.ids[name]) {
				t.Fatalf("%s missing from %v", name, got)
			}
		}
	})
}

func TestEngine_Filters(t *testing.T) {
	c := mustCorpus(t)
	e := mustEngine(t, c, embed.NewHashing(384), "")
	// The same filters through the predicate alone: with ExactBelow 1 no
	// posting list is short enough to rank from.
	unlisted, err := search.Open(c.store, embed.NewHashing(384), search.Options{ExactBelow: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unlisted.Close() })
	q := "billing rollout cache sourdough zebra status"
	cases := []struct {
		name string
		req  nexus.SearchRequest
		want []string // exactly these, in any order
	}{
		{"namespace", nexus.SearchRequest{Namespace: "kitchen"}, []string{"recipe"}},
		{"type", nexus.SearchRequest{Type: nexus.TypeDecision}, []string{"deploy"}},
		{"agent", nexus.SearchRequest{AgentID: "watcher"}, []string{"deploy-followup", "deploy-result"}},
		{"parent", nexus.SearchRequest{ParentID: c.ids["deploy"]}, []string{"deploy-followup"}},
		{"thread", nexus.SearchRequest{ThreadID: c.ids["deploy-result"]}, []string{"deploy", "deploy-followup", "deploy-result"}},
		{"metadata string", nexus.SearchRequest{Metadata: map[string]any{"team": "payments"}}, []string{"deploy", "deploy-result"}},
		{"metadata number", nexus.SearchRequest{Metadata: map[string]any{"team": "payments", "priority": 2.0}}, []string{"deploy-result"}},
		{"until", nexus.SearchRequest{Until: c.mid}, []string{"deploy", "deploy-followup", "deploy-result"}},
		{"as_of", nexus.SearchRequest{AsOf: c.mid}, []string{"deploy", "deploy-followup", "deploy-result"}},
		{"unknown namespace", nexus.SearchRequest{Namespace: "nowhere"}, nil},
	}
	for _, tc := range cases {
		for _, mode := range []nexus.SearchMode{nexus.Hybrid, nexus.Keyword, nexus.Semantic} {
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				req := tc.req
				req.Query, req.Mode, req.Limit = q, mode, 100
				got := ids(mustSearch(t, e, req))
				if other := ids(mustSearch(t, unlisted, req)); !slices.Equal(got, other) {
					t.Fatalf("ranked from the posting lists %v, through the predicate %v", got, other)
				}
				var want []nexus.ID
				for _, n := range tc.want {
					want = append(want, c.ids[n])
				}
				// Every kept context has a query word, and semantic search
				// ranks every kept context: each mode returns exactly them.
				if got, want = sorted(got), sorted(want); !slices.Equal(got, want) {
					t.Fatalf("got %v, want %v", got, want)
				}
			})
		}
	}
	t.Run("since", func(t *testing.T) {
		for _, h := range mustSearch(t, e, nexus.SearchRequest{Query: q, Since: c.mid, Limit: 100}).Hits {
			if h.Context.Timestamp.Before(c.mid) {
				t.Fatalf("hit %s from before since", h.Context.ID)
			}
		}
	})
	t.Run("limit and min_score", func(t *testing.T) {
		all := mustSearch(t, e, nexus.SearchRequest{Query: "status update", Mode: nexus.Keyword, Limit: 100})
		if len(all.Hits) < 10 {
			t.Fatalf("%d hits", len(all.Hits))
		}
		top := mustSearch(t, e, nexus.SearchRequest{Query: "status update", Mode: nexus.Keyword, Limit: 5})
		if !slices.Equal(ids(top), ids(all)[:5]) {
			t.Fatal("limit does not keep the best hits")
		}
		cut := all.Hits[7].Score
		for _, h := range mustSearch(t, e, nexus.SearchRequest{Query: "status update", Mode: nexus.Keyword, Limit: 100, MinScore: cut}).Hits {
			if h.Score < cut {
				t.Fatalf("hit scoring %v under min_score %v", h.Score, cut)
			}
		}
	})
}

// Agents' checkpoints (agent_state) stay out of search and Related unless
// the request asks for that type.
func TestEngine_AgentState(t *testing.T) {
	c := mustCorpus(t)
	state, err := c.store.Put(context.Background(), nexus.Draft{Namespace: "agents", Type: nexus.TypeAgentState, AgentID: "chef",
		Content: `{"notes":"the quokka incident: a zebra walked through the data center"}`})
	if err != nil {
		t.Fatal(err)
	}
	e := mustEngine(t, c, embed.NewHashing(384), "")
	for _, mode := range []nexus.SearchMode{nexus.Hybrid, nexus.Semantic, nexus.Keyword} {
		t.Run(string(mode), func(t *testing.T) {
			res := mustSearch(t, e, nexus.SearchRequest{Query: "quokka zebra data center", Mode: mode, Limit: 100})
			if got := ids(res); slices.Contains(got, state.ID) || !slices.Contains(got, c.ids["zebra"]) {
				t.Errorf("without a type: %v, want the zebra memory and not the checkpoint %s", got, state.ID)
			}
			res = mustSearch(t, e, nexus.SearchRequest{Query: "quokka zebra data center", Mode: mode, Type: nexus.TypeAgentState})
			if got := ids(res); !slices.Equal(got, []nexus.ID{state.ID}) {
				t.Errorf("type agent_state: %v, want only the checkpoint %s", got, state.ID)
			}
		})
	}
	t.Run("related", func(t *testing.T) {
		res, err := e.Related(context.Background(), c.ids["zebra"], nexus.SearchRequest{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(res); slices.Contains(got, state.ID) || len(got) == 0 {
			t.Errorf("related to the zebra memory: %v, want hits but not the checkpoint %s", got, state.ID)
		}
		res, err = e.Related(context.Background(), c.ids["zebra"], nexus.SearchRequest{Limit: 100, Type: nexus.TypeAgentState})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(res); !slices.Equal(got, []nexus.ID{state.ID}) {
			t.Errorf("related of type agent_state: %v, want only the checkpoint %s", got, state.ID)
		}
	})
}

func sorted(xs []nexus.ID) []nexus.ID {
	out := slices.Clone(xs)
	slices.SortFunc(out, func(a, b nexus.ID) int { return a.Compare(b) })
	return out
}

func TestEngine_BadRequests(t *testing.T) {
	c := mustCorpus(t)
	e := mustEngine(t, c, embed.NewHashing(64), "")
	for name, req := range map[string]nexus.SearchRequest{
		"empty query":     {Query: "  "},
		"huge query":      {Query: string(make([]byte, nexus.MaxQueryBytes+1))},
		"limit too large": {Query: "x", Limit: nexus.MaxSearchLimit + 1},
		"negative limit":  {Query: "x", Limit: -1},
		"unknown mode":    {Query: "x", Mode: "fuzzy"},
		"unknown type":    {Query: "x", Type: "memo"},
		"bad namespace":   {Query: "x", Namespace: "../etc"},
		"negative score":  {Query: "x", MinScore: -1},
		"object metadata": {Query: "x", Metadata: map[string]any{"k": map[string]any{}}},
		"non-UTF-8":       {Query: "\xff\xfe"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.Search(context.Background(), req)
			if code := nexus.ErrorCode(err); code != nexus.EInvalid && code != nexus.ETooLarge {
				t.Fatalf("error %v, want invalid or too_large", err)
			}
		})
	}
}

func TestEngine_Related(t *testing.T) {
	c := mustCorpus(t)
	e := mustEngine(t, c, embed.NewHashing(384), "")
	mustSearch(t, e, nexus.SearchRequest{Query: "wait for the index"})
	res, err := e.Related(context.Background(), c.ids["deploy"], nexus.SearchRequest{Limit: 2, MinScore: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	got := ids(res)
	if slices.Contains(got, c.ids["deploy"]) {
		t.Fatal("a context is related to itself")
	}
	if len(got) == 0 || (got[0] != c.ids["deploy-followup"] && got[0] != c.ids["deploy-result"]) {
		t.Fatalf("related to the deploy decision: %v", got)
	}
	for _, h := range res.Hits {
		if *h.Similarity < 0.2 {
			t.Fatalf("similarity %v under the threshold", *h.Similarity)
		}
	}
	if _, err := e.Related(context.Background(), nexus.ID{1}, nexus.SearchRequest{}); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("unknown id: %v", err)
	}
}

// The saved index is verified on open; a damaged file is detected by its
// checksum and the index rebuilt, answering exactly like a fresh one.
func TestEngine_PersistAndRebuild(t *testing.T) {
	c := mustCorpus(t)
	dir := t.TempDir()
	queries := []nexus.SearchRequest{
		{Query: "billing rollout"}, {Query: "cache eviction", Mode: nexus.Semantic}, {Query: "status weather", Mode: nexus.Keyword, Limit: 20},
		{Query: "bread", Namespace: "kitchen"},
	}
	answers := func(s nexus.Searcher) []string {
		var out []string
		for _, q := range queries {
			for _, h := range mustSearch(t, s, q).Hits {
				out = append(out, fmt.Sprintf("%s %.6f %v", h.Context.ID, h.Score, h.Matched))
			}
		}
		return out
	}
	fresh := mustEngine(t, c, embed.NewHashing(128), "")
	want := answers(fresh)

	e := mustEngine(t, c, embed.NewHashing(128), dir)
	if got := answers(e); !slices.Equal(got, want) {
		t.Fatalf("first engine differs from a fresh one")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := mustEngine(t, c, embed.NewHashing(128), dir)
	if n := reopened.Indexed(); n != c.store.Len() {
		t.Fatalf("reopened engine holds %d of %d contexts before catching up", n, c.store.Len())
	}
	if got := answers(reopened); !slices.Equal(got, want) {
		t.Fatalf("reloaded engine differs from a fresh one")
	}
	reopened.Close()

	files, _ := filepath.Glob(filepath.Join(dir, "*", "vectors-*.bin"))
	if len(files) != 1 {
		t.Fatalf("vector files: %v", files)
	}
	b, _ := os.ReadFile(files[0])
	b[len(b)/2] ^= 0x10
	os.WriteFile(files[0], b, 0o644)
	// The damage is found at open, and the index rebuilt from the store.
	logs := &recordLog{}
	rebuilt, err := search.Open(c.store, embed.NewHashing(128), search.Options{Dir: dir, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rebuilt.Close() })
	wantReason := filepath.Base(files[0]) + ": checksum mismatch (damaged)"
	if got := logs.attr("search index not loaded; rebuilding from the store", "reason"); got != wantReason {
		t.Fatalf("open with a damaged vectors file: reason %q for not loading it, want %q", got, wantReason)
	}
	if got := answers(rebuilt); !slices.Equal(got, want) {
		t.Fatalf("rebuilt engine differs from a fresh one")
	}

	// Another model: the saved vectors are not used.
	other := mustEngine(t, c, embed.NewHashing(96), t.TempDir())
	other.Close()
	if err := rebuilt.Close(); err != nil {
		t.Fatal(err)
	}
	m, _ := search.Open(c.store, embed.NewHashing(96), search.Options{Dir: dir})
	defer m.Close()
	if st := m.Stats(); st.Model != "nexus-hash-v1-96" {
		t.Fatalf("model %s", st.Model)
	}
}

// recordLog is a slog.Handler that keeps every record.
type recordLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *recordLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *recordLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *recordLog) WithGroup(string) slog.Handler            { return l }

func (l *recordLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// attr returns the attribute key of the first record with message msg, or
// "" if there is none.
func (l *recordLog) attr(msg, key string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.Message != msg {
			continue
		}
		var v string
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v = a.Value.String()
			}
			return v == ""
		})
		return v
	}
	return ""
}

// flakyEmbeddings is an OpenAI-compatible embeddings server that can be
// switched down (503) and up; up, it answers with the hashing embedder.
type flakyEmbeddings struct {
	down atomic.Bool
	h    *embed.Hashing
}

func (f *flakyEmbeddings) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.down.Load() {
		http.Error(w, `{"error":{"message":"model is loading","type":"server_error"}}`, http.StatusServiceUnavailable)
		return
	}
	var req struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	vecs, _ := f.h.Embed(r.Context(), req.Input)
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	out := struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
	}{Object: "list", Model: req.Model}
	for i, v := range vecs {
		out.Data = append(out.Data, item{"embedding", i, v})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// With the embedding provider down, keyword search keeps working and says
// it is degraded; semantic search fails clearly; once the provider is back
// the waiting contexts get their vectors.
func TestEngine_ProviderDown(t *testing.T) {
	c := mustCorpus(t)
	fake := &flakyEmbeddings{h: embed.NewHashing(64)}
	fake.down.Store(true)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	emb, err := embed.NewOpenAI(embed.OpenAIConfig{BaseURL: srv.URL, Model: "test-model", Dimension: 64, MaxRetries: -1,
		BreakerFailures: 1000, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := mustEngine(t, c, emb, "")
	res := mustSearch(t, e, nexus.SearchRequest{Query: "quokka zebra"})
	if res.Degraded == "" || len(res.Hits) == 0 || res.Hits[0].Context.ID != c.ids["zebra"] {
		t.Fatalf("degraded hybrid search: %+v", res)
	}
	if !slices.Equal(res.Hits[0].Matched, []string{nexus.SignalKeyword}) {
		t.Fatalf("matched %v", res.Hits[0].Matched)
	}
	if _, err := e.Search(context.Background(), nexus.SearchRequest{Query: "zebra", Mode: nexus.Semantic}); nexus.ErrorCode(err) != nexus.EUnavailable {
		t.Fatalf("semantic search with the provider down: %v", err)
	}
	if st := e.Stats(); st.NoVector != c.store.Len() || st.Degraded == "" {
		t.Fatalf("stats %+v", st)
	}
	fake.down.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for e.Stats().NoVector > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("embeddings not retried: %+v", e.Stats())
		}
		e.Notify()
		time.Sleep(20 * time.Millisecond)
	}
	res = mustSearch(t, e, nexus.SearchRequest{Query: "quokka zebra", Mode: nexus.Semantic})
	if res.Degraded != "" || len(res.Hits) == 0 || res.Hits[0].Context.ID != c.ids["zebra"] {
		t.Fatalf("after recovery: %+v", res)
	}
}

// countingEmbedder is the hashing embedder, counting the texts it embeds.
// Unless local is set it stands for a remote model, whose vectors an
// engine keeps in the vector log (the hashing model itself is local and
// keeps none: TestEngine_LocalModelKeepsNoVectors).
type countingEmbedder struct {
	*embed.Hashing
	texts atomic.Int64
	local bool
}

func (c *countingEmbedder) Local() bool { return c.local }

func (c *countingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	c.texts.Add(int64(len(texts)))
	return c.Hashing.Embed(ctx, texts)
}

// Embeddings are kept in git: a rebuild with the index files gone takes
// every vector from the repository and embeds nothing but the queries.
func TestEngine_RebuildTakesVectorsFromGit(t *testing.T) {
	c := mustCorpus(t)
	dir := t.TempDir()
	first := &countingEmbedder{Hashing: embed.NewHashing(64)}
	e, err := search.Open(c.store, first, search.Options{Dir: dir, Log: c.store.SideLog()})
	if err != nil {
		t.Fatal(err)
	}
	want := ids(mustSearch(t, e, nexus.SearchRequest{Query: "billing rollout", Mode: nexus.Semantic, Limit: 20}))
	if n := first.texts.Load(); n < int64(c.store.Len()) {
		t.Fatalf("first build embedded %d texts for %d contexts", n, c.store.Len())
	}
	e.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	again := &countingEmbedder{Hashing: embed.NewHashing(64)}
	r, err := search.Open(c.store, again, search.Options{Dir: dir, Log: c.store.SideLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := ids(mustSearch(t, r, nexus.SearchRequest{Query: "billing rollout", Mode: nexus.Semantic, Limit: 20}))
	if !slices.Equal(got, want) {
		t.Fatalf("rebuilt from git: %v, want %v", got, want)
	}
	if n := again.texts.Load(); n != 1 {
		t.Fatalf("rebuild embedded %d texts; want only the query", n)
	}
	if st := r.Stats(); st.LogFailures != 0 || st.NoVector != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// gatedEmbedder is the hashing embedder, held back until open is closed.
type gatedEmbedder struct {
	*embed.Hashing
	open chan struct{}
}

func (g *gatedEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Hashing.Embed(ctx, texts)
}

// After a model change, searches are answered with the previous model's
// index (saying so) until the new model has every context; then the old
// index is deleted.
func TestEngine_ModelChange(t *testing.T) {
	c := mustCorpus(t)
	dir := t.TempDir()
	old, err := search.Open(c.store, embed.NewHashing(128), search.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mustSearch(t, old, nexus.SearchRequest{Query: "zebra"})
	old.Close()
	resolve := func(model string) (nexus.Embedder, bool) {
		if model == "nexus-hash-v1-128" {
			return embed.NewHashing(128), true
		}
		return nil, false
	}
	gate := &gatedEmbedder{Hashing: embed.NewHashing(96), open: make(chan struct{})}
	e, err := search.Open(c.store, gate, search.Options{Dir: dir, Resolve: resolve})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if m := e.Migration(); m != "nexus-hash-v1-128" {
		t.Fatalf("migration from %q", m)
	}
	res := mustSearch(t, e, nexus.SearchRequest{Query: "quokka zebra", Mode: nexus.Semantic})
	if len(res.Hits) == 0 || res.Hits[0].Context.ID != c.ids["zebra"] || !strings.Contains(res.Degraded, "previous model nexus-hash-v1-128") {
		t.Fatalf("during the migration: %+v", res)
	}
	close(gate.open)
	for deadline := time.Now().Add(10 * time.Second); e.Migration() != ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("migration did not finish: %+v", e.Stats())
		}
		e.Notify()
	}
	res = mustSearch(t, e, nexus.SearchRequest{Query: "quokka zebra", Mode: nexus.Semantic})
	if res.Degraded != "" || res.Hits[0].Context.ID != c.ids["zebra"] {
		t.Fatalf("after the migration: %+v", res)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	dirs, _ := os.ReadDir(dir)
	if len(dirs) != 1 || !strings.HasPrefix(dirs[0].Name(), "nexus-hash-v1-96-") {
		t.Fatalf("index dirs after the migration: %v", dirs)
	}
}

// A point-in-time restore of the store makes the index rebuild: rolled
// back contexts are no longer found.
func TestEngine_FollowsRestore(t *testing.T) {
	c := mustCorpus(t)
	e := mustEngine(t, c, embed.NewHashing(64), t.TempDir())
	if res := mustSearch(t, e, nexus.SearchRequest{Query: "quokka zebra", Mode: nexus.Keyword}); len(res.Hits) != 1 {
		t.Fatalf("before the restore: %+v", res)
	}
	if _, err := c.store.RestoreTo(context.Background(), c.mid, false); err != nil {
		t.Fatal(err)
	}
	e.Notify()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := mustSearch(t, e, nexus.SearchRequest{Query: "quokka zebra billing", Mode: nexus.Keyword, Limit: 50})
		if len(res.Hits) == 3 { // only the rollout thread, written before mid
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("index still serves rolled-back contexts: %d hits", len(res.Hits))
		}
		e.Notify()
		time.Sleep(20 * time.Millisecond)
	}
}

// Metadata numbers compare as JSON values: 1 equals 1.0, and integers
// beyond 2^53 stay distinct.
func TestEngine_MetadataNumbers(t *testing.T) {
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	byName := map[string]nexus.ID{}
	for name, meta := range map[string]string{
		"big":      `{"n":9007199254740993}`,
		"bigger-1": `{"n":9007199254740992}`,
		"one":      `{"k":1.0}`,
	} {
		c, err := st.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: "same words here", Metadata: json.RawMessage(meta)})
		if err != nil {
			t.Fatal(err)
		}
		byName[name] = c.ID
	}
	e, err := search.Open(st, embed.NewHashing(32), search.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, tc := range []struct {
		meta map[string]any
		want string
	}{
		{map[string]any{"n": json.Number("9007199254740993")}, "big"},
		{map[string]any{"n": json.Number("9007199254740992")}, "bigger-1"},
		{map[string]any{"k": float64(1)}, "one"},
		{map[string]any{"k": json.Number("1")}, "one"},
	} {
		got := ids(mustSearch(t, e, nexus.SearchRequest{Query: "same words", Mode: nexus.Keyword, Metadata: tc.meta}))
		if len(got) != 1 || got[0] != byName[tc.want] {
			t.Errorf("metadata %v: %v, want %s", tc.meta, got, tc.want)
		}
	}
}

// Contexts written just before Close are indexed and their vectors kept
// in git before the engine stops, so the next start embeds nothing.
func TestEngine_CloseKeepsLastVectors(t *testing.T) {
	c := mustCorpus(t)
	dir := t.TempDir()
	e, err := search.Open(c.store, &countingEmbedder{Hashing: embed.NewHashing(64)}, search.Options{Dir: dir, Log: c.store.SideLog()})
	if err != nil {
		t.Fatal(err)
	}
	mustSearch(t, e, nexus.SearchRequest{Query: "billing", Mode: nexus.Semantic, Consistent: true})
	for i := range 40 {
		if _, err := c.store.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("written just before the shutdown ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	again := &countingEmbedder{Hashing: embed.NewHashing(64)}
	os.RemoveAll(dir)
	r, err := search.Open(c.store, again, search.Options{Dir: dir, Log: c.store.SideLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mustSearch(t, r, nexus.SearchRequest{Query: "shutdown", Mode: nexus.Semantic, Consistent: true})
	if n := again.texts.Load(); n != 1 {
		t.Fatalf("the rebuild embedded %d texts; want only the query", n)
	}
}

// An index saved with other graph options (efConstruction 64 here, as
// an index built while that was tried as the engine's default) opens as it
// is with today's options: no rebuild, no embedding, every context there,
// the same answers; its graph keeps the options of its file.
func TestEngine_OpensIndexOfOtherEfConstruction(t *testing.T) {
	c := mustCorpus(t)
	dir := t.TempDir()
	old, err := search.Open(c.store, embed.NewHashing(64), search.Options{Dir: dir, Vector: vector.Options{EfConstruction: 64}})
	if err != nil {
		t.Fatal(err)
	}
	q := nexus.SearchRequest{Query: "billing rollout", Mode: nexus.Semantic, Limit: 20}
	want := ids(mustSearch(t, old, q))
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "vectors-*.bin"))
	if len(files) != 1 {
		t.Fatalf("vector files: %v", files)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	saved, err := vector.Read(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := saved.Options().EfConstruction; got != 64 {
		t.Fatalf("saved graph's efConstruction %d, want 64", got)
	}
	emb := &countingEmbedder{Hashing: embed.NewHashing(64)}
	e, err := search.Open(c.store, emb, search.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if n := e.Indexed(); n != c.store.Len() {
		t.Fatalf("reopened engine holds %d of %d contexts", n, c.store.Len())
	}
	if got := ids(mustSearch(t, e, q)); !slices.Equal(got, want) {
		t.Fatalf("answers after reopening: %v, want %v", got, want)
	}
	if n := emb.texts.Load(); n != 1 {
		t.Fatalf("embedded %d texts, want 1 (the query): the index was rebuilt", n)
	}
}

// segmentLog is a vector log that records how many embeddings each
// appended segment holds (read from its header: magic, model, dimension,
// count) before passing it on.
type segmentLog struct {
	search.VectorLog
	mu    sync.Mutex
	sizes []int
	walks int
}

func (l *segmentLog) Walk(ctx context.Context, name string, fn func([]byte) error) error {
	l.mu.Lock()
	l.walks++
	l.mu.Unlock()
	return l.VectorLog.Walk(ctx, name, fn)
}

func (l *segmentLog) Append(ctx context.Context, name string, seg []byte) error {
	l.mu.Lock()
	l.sizes = append(l.sizes, search.SegmentEmbeddings(seg))
	l.mu.Unlock()
	return l.VectorLog.Append(ctx, name, seg)
}

// The built-in models are local: an engine over one keeps no vector log,
// neither appending to it nor reading it, and a rebuild embeds every text
// again. Without the check the first engine appends a segment.
func TestEngine_LocalModelKeepsNoVectors(t *testing.T) {
	c := mustCorpus(t)
	dir := t.TempDir()
	log := &segmentLog{VectorLog: c.store.SideLog()}
	e, err := search.Open(c.store, embed.NewHashing(64), search.Options{Dir: dir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	want := ids(mustSearch(t, e, nexus.SearchRequest{Query: "billing rollout", Mode: nexus.Semantic, Limit: 20, Consistent: true}))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if len(log.sizes) != 0 || log.walks != 0 {
		t.Fatalf("the hashing model's engine appended segments of %v and read the log %d times; want none", log.sizes, log.walks)
	}
	os.RemoveAll(dir)
	again := &countingEmbedder{Hashing: embed.NewHashing(64), local: true}
	r, err := search.Open(c.store, again, search.Options{Dir: dir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := ids(mustSearch(t, r, nexus.SearchRequest{Query: "billing rollout", Mode: nexus.Semantic, Limit: 20, Consistent: true}))
	if !slices.Equal(got, want) {
		t.Fatalf("rebuilt by embedding again: %v, want %v", got, want)
	}
	if n, want := again.texts.Load(), int64(c.store.Len()+1); n != want {
		t.Fatalf("the rebuild embedded %d texts; want every context's and the query: %d", n, want)
	}
	if log.walks != 0 {
		t.Fatalf("the rebuild read the log %d times; want none", log.walks)
	}
}

// Embeddings go to the vector log in segments of LogSegment, not one per
// batch indexed: the 46 contexts of the first build in one, then 30
// contexts indexed one at a time in a segment of 16 and, at Close, one of
// the 14 left. A rebuild then finds every vector there.
func TestEngine_VectorLogSegments(t *testing.T) {
	c := mustCorpus(t)
	dir := t.TempDir()
	log := &segmentLog{VectorLog: c.store.SideLog()}
	opts := search.Options{Dir: dir, Log: log, LogSegment: 16, LogDelay: time.Hour}
	e, err := search.Open(c.store, &countingEmbedder{Hashing: embed.NewHashing(64)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	mustSearch(t, e, nexus.SearchRequest{Query: "billing", Mode: nexus.Semantic})
	first := c.store.Len()
	for i := range 30 {
		if _, err := c.store.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("indexed on its own ", i)}); err != nil {
			t.Fatal(err)
		}
		mustSearch(t, e, nexus.SearchRequest{Query: "own", Mode: nexus.Semantic})
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []int{first, 16, 14}; !slices.Equal(log.sizes, want) {
		t.Fatalf("segments of %v embeddings, want %v", log.sizes, want)
	}
	again := &countingEmbedder{Hashing: embed.NewHashing(64)}
	os.RemoveAll(dir)
	r, err := search.Open(c.store, again, search.Options{Dir: dir, Log: c.store.SideLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mustSearch(t, r, nexus.SearchRequest{Query: "own", Mode: nexus.Semantic})
	if n := again.texts.Load(); n != 1 {
		t.Fatalf("the rebuild embedded %d texts; want only the query", n)
	}
}
