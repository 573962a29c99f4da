package search

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nexus-mem/nexus"
)

// Each model's index lives in its own directory under Options.Dir, named
// like its vector log. After the configured model changes, the engine of
// the new model starts (from its saved files, or from its vectors kept in
// git, or embedding everything) while searches are answered by the engine
// of the previous model, which keeps following the store, until the new
// one has caught up; then the previous index is closed and deleted.

// modelDir is the directory of a model's index.
func modelDir(root, model string) string {
	return filepath.Join(root, strings.TrimPrefix(LogName(model), "embeddings/"))
}

// startMigration looks for the most complete saved index of another model
// whose embedder Options.Resolve can still provide, and opens it to serve
// searches while e catches up.
func (e *Engine) startMigration() {
	if e.opts.Resolve == nil || e.root == "" {
		return
	}
	ents, err := os.ReadDir(e.root)
	if err != nil {
		return
	}
	var best *manifest
	for _, de := range ents {
		m, err := readManifest(filepath.Join(e.root, de.Name()))
		if err != nil || m.Model == e.emb.Model() || filepath.Join(e.root, de.Name()) != modelDir(e.root, m.Model) {
			continue
		}
		if best == nil || m.Count > best.Count {
			best = m
		}
	}
	if best == nil || best.Count <= e.Indexed() {
		return
	}
	emb, ok := e.opts.Resolve(best.Model)
	if !ok || emb.Model() != best.Model {
		e.log.Warn("the index of the previous model cannot serve during the re-embedding: its embedder is not available",
			"previous", best.Model, "model", e.emb.Model())
		return
	}
	opts := e.opts
	opts.Dir, opts.Resolve, opts.Progress = "", nil, nil
	prev, err := open(e.src, emb, opts, modelDir(e.root, best.Model))
	if err != nil {
		e.log.Warn("opening the previous model's index failed", "previous", best.Model, "err", err)
		return
	}
	prev.wg.Add(1)
	go prev.run()
	e.prev.Store(prev)
	e.log.Info("re-embedding with a new model; searches use the previous model until it has caught up",
		"previous", best.Model, "model", e.emb.Model(), "contexts", e.src.Len())
}

// finishMigration retires the previous model's index once e has caught up.
func (e *Engine) finishMigration() {
	prev := e.prev.Load()
	if prev == nil || e.Indexed() < e.src.Len() {
		return
	}
	e.prev.Store(nil)
	defer close(e.migrated)
	dir := prev.opts.Dir
	if err := prev.Close(); err != nil {
		e.log.Warn("closing the previous model's index failed", "err", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		e.log.Warn("removing the previous model's index failed", "dir", dir, "err", err)
	}
	e.log.Info("re-embedding finished", "model", e.emb.Model(), "previous", prev.emb.Model())
}

// Successor opens the engine of another model over e's store, with e's
// options, and starts it: it embeds every context with emb in the
// background (from the model's vectors kept in git when it has some)
// while e, which keeps following the store, answers its searches; once it
// has every context, e is closed and its saved index deleted. From then on
// the caller uses the successor instead of e: the successor owns e (its
// Close closes e too). It fails with code conflict while e is itself
// still migrating, and with code invalid for e's own model.
func (e *Engine) Successor(emb nexus.Embedder) (*Engine, error) {
	if emb.Model() == e.emb.Model() {
		return nil, nexus.Errorf(nexus.EInvalid, "the index already uses model %s", emb.Model())
	}
	if prev := e.prev.Load(); prev != nil {
		return nil, nexus.Errorf(nexus.EConflict, "a model change is under way: from %s to %s", prev.emb.Model(), e.emb.Model())
	}
	opts := e.opts
	opts.Progress = nil
	dir := ""
	if e.root != "" {
		dir = modelDir(e.root, emb.Model())
	}
	s, err := open(e.src, emb, opts, dir)
	if err != nil {
		return nil, err
	}
	s.root = e.root
	s.prev.Store(e)
	s.log.Info("re-embedding with a new model; searches use the previous model until it has caught up",
		"previous", e.emb.Model(), "contexts", e.src.Len())
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// serving returns the engine that answers searches: the previous model's
// during a migration.
func (e *Engine) serving() (*Engine, string) {
	if prev := e.prev.Load(); prev != nil {
		return prev, fmt.Sprintf("re-embedding with %s: %d of %d contexts done; answered with the previous model %s",
			e.emb.Model(), e.Indexed(), e.src.Len(), prev.emb.Model())
	}
	return e, ""
}

// WaitMigration returns once no previous model answers searches: at
// once when none does, else when the migration has finished. It fails
// when ctx ends or the engine closes first.
func (e *Engine) WaitMigration(ctx context.Context) error {
	if e.prev.Load() == nil {
		return nil
	}
	select {
	case <-e.migrated:
		return nil
	case <-ctx.Done():
		return nexus.WrapError(nexus.EUnavailable, ctx.Err(), "re-embedding with %s: %d of %d contexts done", e.emb.Model(), e.Indexed(), e.src.Len())
	case <-e.closing:
		return nexus.Errorf(nexus.EUnavailable, "search engine is closing")
	}
}

// Migration reports the previous model still answering searches, or "".
func (e *Engine) Migration() string {
	if prev := e.prev.Load(); prev != nil {
		return prev.emb.Model()
	}
	return ""
}
