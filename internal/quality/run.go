package quality

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/search"
)

// Config says how to build the memory of a set.
type Config struct {
	// Noise is the number of noise contexts added to the set's documents.
	Noise int
	// Seed makes the noise and the order of the writes.
	Seed uint64
	// Embedder embeds the memory and the queries, unless Train is set.
	Embedder nexus.Embedder
	// Train, if set, makes the embedder from the memory's texts (all of
	// them, documents and noise, as a store's contexts would be).
	Train func(ctx context.Context, texts []string) (nexus.Embedder, error)
	// Dir is an empty work directory for the store and its index.
	Dir string
	// Progress, if set, is called while the store fills and the index
	// catches up.
	Progress func(what string, done, total int)
}

// Memory is a set's documents among noise in a real store, indexed by a
// real search engine, with the textbook BM25 reference over the same texts.
type Memory struct {
	Set    *Set
	Store  *gitstore.Store
	Engine *search.Engine
	label  map[nexus.ID]string // context → document id, or "" for noise
	ord    map[nexus.ID]int32  // context → its place in the store
	texts  []string            // every context's text, in store order
	labels []string            // the same order: document id or ""
	ref    *bm25
}

// Build writes the set's documents and cfg.Noise noise contexts, shuffled
// together, into a new store under cfg.Dir and indexes them.
func Build(ctx context.Context, s *Set, cfg Config) (*Memory, error) {
	if cfg.Embedder == nil && cfg.Train == nil {
		return nil, fmt.Errorf("quality: no embedder")
	}
	noise := Noise(s, cfg.Noise, cfg.Seed)
	m := &Memory{Set: s, label: map[nexus.ID]string{}, ord: map[nexus.ID]int32{}}
	for _, d := range s.Docs {
		m.texts, m.labels = append(m.texts, d.Text), append(m.labels, d.ID)
	}
	for _, t := range noise {
		m.texts, m.labels = append(m.texts, t), append(m.labels, "")
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x6f72646572)) // "order"
	r.Shuffle(len(m.texts), func(i, j int) {
		m.texts[i], m.texts[j] = m.texts[j], m.texts[i]
		m.labels[i], m.labels[j] = m.labels[j], m.labels[i]
	})
	m.ref = newBM25(m.texts)
	emb := cfg.Embedder
	if cfg.Train != nil {
		var err error
		if emb, err = cfg.Train(ctx, m.texts); err != nil {
			return nil, err
		}
	}

	data := filepath.Join(cfg.Dir, "data")
	st, err := gitstore.Open(data, gitstore.Options{})
	if err != nil {
		return nil, err
	}
	m.Store = st
	var gen nexus.IDGenerator
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for start := 0; start < len(m.texts); start += 1024 {
		end := min(start+1024, len(m.texts))
		batch := make([]*nexus.Context, 0, end-start)
		for i := start; i < end; i++ {
			t = t.Add(time.Millisecond)
			c := &nexus.Context{ID: gen.New(t), Namespace: "eval", Type: nexus.TypeMemory, AgentID: "eval",
				Timestamp: t, Metadata: []byte(`{}`), Content: m.texts[i]}
			c.SemanticHash = nexus.SemanticHash(c.Type, c.Content, c.Metadata)
			m.label[c.ID] = m.labels[i]
			m.ord[c.ID] = int32(i)
			batch = append(batch, c)
		}
		if _, err := st.Apply(ctx, batch); err != nil {
			st.Close()
			return nil, err
		}
		if cfg.Progress != nil {
			cfg.Progress(s.Name+" store", end, len(m.texts))
		}
	}
	e, err := search.Open(st, emb, search.Options{Dir: filepath.Join(cfg.Dir, "index"), MaxCPU: 1})
	if err != nil {
		st.Close()
		return nil, err
	}
	var progress func(done, total int)
	if cfg.Progress != nil {
		progress = func(done, total int) { cfg.Progress(s.Name+" index", done, total) }
	}
	if err := e.CatchUp(ctx, progress); err != nil {
		e.Close()
		st.Close()
		return nil, err
	}
	m.Engine = e
	return m, nil
}

// Close closes the engine and the store.
func (m *Memory) Close() error {
	err := m.Engine.Close()
	if err2 := m.Store.Close(); err == nil {
		err = err2
	}
	return err
}

// RemoveAll closes the memory and deletes its directory.
func (m *Memory) RemoveAll(dir string) error {
	err := m.Close()
	if err2 := os.RemoveAll(dir); err == nil {
		err = err2
	}
	return err
}

// Modes are the rankings an evaluation compares: the engine's three modes
// and the textbook BM25 reference.
var Modes = []string{"keyword", "semantic", "hybrid", "bm25"}

// Rank returns the document ids of the top 10 answers to q in a mode of
// [Modes], best first; a noise context is "".
func (m *Memory) Rank(ctx context.Context, mode, q string) ([]string, error) {
	if mode == "bm25" {
		var out []string
		for _, i := range m.ref.search(q, 10) {
			out = append(out, m.labels[i])
		}
		return out, nil
	}
	// Exact: the semantic signal compares the query with every vector, so
	// that the figures measure the ranking, not the graph's recall (which
	// docs/BENCHMARKS.md measures), and do not vary with the order in
	// which parallel inserts built the graph.
	res, err := m.Engine.Search(ctx, nexus.SearchRequest{Query: q, Mode: nexus.SearchMode(mode), Limit: 10, Exact: true})
	if err != nil {
		return nil, fmt.Errorf("%s search %q: %w", mode, q, err)
	}
	out := make([]string, len(res.Hits))
	for i, h := range res.Hits {
		out[i] = m.label[h.Context.ID]
	}
	return out, nil
}

// Evaluate runs the questions of a split in each mode.
func (m *Memory) Evaluate(ctx context.Context, split Split, modes ...string) (map[string]*Metrics, error) {
	out := map[string]*Metrics{}
	for _, mode := range modes {
		met := &Metrics{}
		for i, q := range m.Set.Questions {
			if !split.Has(i) {
				continue
			}
			ranked, err := m.Rank(ctx, mode, q.Q)
			if err != nil {
				return nil, err
			}
			met.add(ranked, q.Answers)
		}
		met.mean()
		out[mode] = met
	}
	return out, nil
}

// Tune evaluates the hybrid mode of the split with each of the weights.
func (m *Memory) Tune(ctx context.Context, split Split, weights []search.Fusion) ([]*Metrics, error) {
	out := make([]*Metrics, len(weights))
	defer m.Engine.SetFusion(m.Engine.Fusion())
	for i, f := range weights {
		m.Engine.SetFusion(f)
		res, err := m.Evaluate(ctx, split, "hybrid")
		if err != nil {
			return nil, err
		}
		out[i] = res["hybrid"]
	}
	return out, nil
}
