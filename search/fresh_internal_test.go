package search

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/vector"
)

// freshFixture is a store of n contexts on a few topics and an engine
// over it whose indexer is not running (open, not Open), so that a test
// decides what is admitted and what is linked.
type freshFixture struct {
	st    *gitstore.Store
	emb   nexus.Embedder
	texts []string
	types []nexus.Type
}

func newFreshFixture(t *testing.T, n int) *freshFixture {
	t.Helper()
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	topics := []string{"billing rollout on kubernetes", "redis cache eviction policy", "sourdough starter and cold proof",
		"zebra walked through the data center", "weekly meeting notes and lunch", "postgres vacuum and index bloat"}
	f := &freshFixture{st: st, emb: embed.NewHashing(64)}
	for i := range n {
		typ := nexus.TypeMemory
		if i%3 == 0 {
			typ = nexus.TypeDecision
		}
		text := fmt.Sprintf("%s, note %d of %d", topics[i%len(topics)], i, i%7)
		if _, err := st.Put(context.Background(), nexus.Draft{Type: typ, AgentID: "a", Content: text}); err != nil {
			t.Fatal(err)
		}
		f.texts, f.types = append(f.texts, text), append(f.types, typ)
	}
	return f
}

func (f *freshFixture) engine(t *testing.T, dir string) *Engine {
	t.Helper()
	e, err := open(f.st, f.emb, Options{Dir: dir, Batch: 32}, dir)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// exactTop is the reference: the ordinals of the k texts (of type typ
// when not empty) most similar to query, best first, ties by lower
// ordinal, from the embedder directly.
func (f *freshFixture) exactTop(t *testing.T, query string, k int, typ nexus.Type) []uint32 {
	t.Helper()
	vs, err := f.emb.Embed(context.Background(), append([]string{query}, f.texts...))
	if err != nil {
		t.Fatal(err)
	}
	var keys []uint32
	var vecs [][]float32
	for i, v := range vs[1:] {
		if typ == "" || f.types[i] == typ {
			keys, vecs = append(keys, uint32(i)), append(vecs, v)
		}
	}
	rs, err := vector.Scan(vs[0], k, keys, vecs, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint32, len(rs))
	for i, r := range rs {
		out[i] = r.Key
	}
	return out
}

// semanticOrds runs a semantic search and returns the ordinals of its hits.
func semanticOrds(t *testing.T, e *Engine, req nexus.SearchRequest) []uint32 {
	t.Helper()
	req.Mode = nexus.Semantic
	res, err := e.Search(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint32, len(res.Hits))
	for i, h := range res.Hits {
		o, ok := e.tab.byID[h.Context.ID]
		if !ok {
			t.Fatalf("hit %s is not in the table", h.Context.ID)
		}
		out[i] = o
	}
	return out
}

// admitAll makes every stored context searchable and links only the
// first batch of them into the graph.
func admitAll(t *testing.T, e *Engine) {
	t.Helper()
	e.stepMu.Lock()
	defer e.stepMu.Unlock()
	for {
		n, err := e.admit(context.Background(), 2)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if _, err := e.link(2); err != nil {
		t.Fatal(err)
	}
}

// checkExact asserts that semantic searches, plain, exact, filtered and
// Related, give the reference's answer for queries among the contexts
// linked into the graph and among those still fresh.
func checkExact(t *testing.T, e *Engine, f *freshFixture, what string) {
	t.Helper()
	for _, i := range []int{3, 40, 150, len(f.texts) - 1} {
		q := f.texts[i]
		want := f.exactTop(t, q, 10, "")
		if got := semanticOrds(t, e, nexus.SearchRequest{Query: q, Limit: 10}); !slices.Equal(got, want) {
			t.Errorf("%s: query of context %d: got %v, want %v", what, i, got, want)
		}
		if got := semanticOrds(t, e, nexus.SearchRequest{Query: q, Limit: 10, Exact: true}); !slices.Equal(got, want) {
			t.Errorf("%s: exact query of context %d: got %v, want %v", what, i, got, want)
		}
		if want[0] != uint32(i) {
			t.Errorf("%s: the reference does not find context %d first: %v", what, i, want)
		}
		wantTyp := f.exactTop(t, q, 5, nexus.TypeDecision)
		if got := semanticOrds(t, e, nexus.SearchRequest{Query: q, Limit: 5, Type: nexus.TypeDecision}); !slices.Equal(got, wantTyp) {
			t.Errorf("%s: query of context %d, decisions only: got %v, want %v", what, i, got, wantTyp)
		}
	}
	last := e.tab.docs[len(f.texts)-1].id
	res, err := e.Related(context.Background(), last, nexus.SearchRequest{Limit: 5})
	if err != nil {
		t.Fatalf("%s: related to the last context: %v", what, err)
	}
	if len(res.Hits) != 5 || slices.ContainsFunc(res.Hits, func(h nexus.SearchHit) bool { return h.Context.ID == last }) {
		t.Errorf("%s: related to the last context: %d hits, itself among them or too few", what, len(res.Hits))
	}
}

// A context is searchable by meaning as soon as it is admitted, before
// its vector is in the graph: searches scan the fresh segment exactly and
// merge it with the graph's answer, which on a small set equals an exact
// scan of every vector. The fresh segment is saved and loaded with the
// index, and emptied by a reset (the store rolled back).
func TestFresh_searchAcrossTheBoundary(t *testing.T) {
	const n = 200
	f := newFreshFixture(t, n)
	dir := t.TempDir()
	e := f.engine(t, dir)
	admitAll(t, e)
	st := e.Stats()
	if st.Indexed != n || st.Lag != 0 || st.Fresh != n-32 || e.vec.Len() != 32 {
		t.Fatalf("after admitting all and linking a batch: %+v, graph %d; want %d indexed, 0 lag, %d fresh, 32 in the graph", st, e.vec.Len(), n, n-32)
	}
	checkExact(t, e, f, "graph of 32, fresh 168")

	// Saved and loaded with the fresh segment as it is.
	if err := e.save(); err != nil {
		t.Fatal(err)
	}
	r := f.engine(t, dir)
	if r.loadErr != nil {
		t.Fatalf("reopened: %v", r.loadErr)
	}
	if st := r.Stats(); st.Indexed != n || st.Fresh != n-32 || r.vec.Len() != 32 {
		t.Fatalf("reopened: %+v, graph %d", st, r.vec.Len())
	}
	checkExact(t, r, f, "reopened")

	// Linked to the end: the graph alone answers the same.
	if err := r.catchUp(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Fresh != 0 || r.vec.Len() != n {
		t.Fatalf("caught up: %+v, graph %d", st, r.vec.Len())
	}
	checkExact(t, r, f, "all in the graph")

	// A reset empties the fresh segment with the rest; the rebuild is
	// searchable again.
	e2 := f.engine(t, t.TempDir())
	admitAll(t, e2)
	if err := e2.reset(); err != nil {
		t.Fatal(err)
	}
	if st := e2.Stats(); st.Indexed != 0 || st.Fresh != 0 {
		t.Fatalf("after a reset: %+v", st)
	}
	admitAll(t, e2)
	checkExact(t, e2, f, "rebuilt after a reset")
}

// A saved fresh segment that disagrees with the graph is not loaded: the
// index is rebuilt from the store.
func TestFresh_loadRejectsOverlap(t *testing.T) {
	f := newFreshFixture(t, 40)
	dir := t.TempDir()
	e := f.engine(t, dir)
	admitAll(t, e)
	e.mu.Lock()
	e.freshOrds = append([]uint32{0}, e.freshOrds...) // doc 0 is in the graph too
	e.freshVecs = append([][]float32{e.freshVecs[0]}, e.freshVecs...)
	e.mu.Unlock()
	if err := e.save(); err != nil {
		t.Fatal(err)
	}
	r := f.engine(t, dir)
	if r.loadErr == nil {
		t.Fatal("an index whose doc 0 is both in the graph and fresh was loaded")
	}
	if st := r.Stats(); st.Indexed != 0 || st.Fresh != 0 {
		t.Fatalf("not loaded, yet: %+v", st)
	}
}
