package node

import (
	"context"
	"sync/atomic"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/search"
)

// currentEngine is the node's search engine, which the learned embedder
// replaces by the engine of each new model (search.Engine.Successor):
// every caller goes through it to whichever engine is current.
type currentEngine struct {
	cur   atomic.Pointer[search.Engine]
	learn *learner // nil unless the learned embedder is configured
}

var _ nexus.Searcher = (*currentEngine)(nil)

func newCurrentEngine(e *search.Engine, learn *learner) *currentEngine {
	l := &currentEngine{learn: learn}
	l.cur.Store(e)
	return l
}

// engine is the current engine.
func (l *currentEngine) engine() *search.Engine { return l.cur.Load() }

// moveTo makes the engine of emb current: it re-embeds the store in the
// background while the previous model answers searches.
func (l *currentEngine) moveTo(emb nexus.Embedder) error {
	next, err := l.engine().Successor(emb)
	if err != nil {
		return err
	}
	l.cur.Store(next)
	return nil
}

func (l *currentEngine) Search(ctx context.Context, req nexus.SearchRequest) (*nexus.SearchResult, error) {
	return l.engine().Search(ctx, req)
}

func (l *currentEngine) Related(ctx context.Context, id nexus.ID, req nexus.SearchRequest) (*nexus.SearchResult, error) {
	return l.engine().Related(ctx, id, req)
}

// Notify wakes the indexer, and the learner: the store has new contexts.
func (l *currentEngine) Notify() {
	l.engine().Notify()
	if l.learn != nil {
		l.learn.Notify()
	}
}

func (l *currentEngine) Stats() search.Stats        { return l.engine().Stats() }
func (l *currentEngine) FileDamage() string         { return l.engine().FileDamage() }
func (l *currentEngine) Resave() error              { return l.engine().Resave() }
func (l *currentEngine) CheckFiles(deep bool) error { return l.engine().CheckFiles(deep) }
func (l *currentEngine) Close() error               { return l.engine().Close() }

// CheckHealth is the engine's health, with the learner's figures.
func (l *currentEngine) CheckHealth(ctx context.Context) nexus.ComponentHealth {
	h := l.engine().CheckHealth(ctx)
	if l.learn != nil {
		l.learn.health(&h)
	}
	return h
}
