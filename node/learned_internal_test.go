package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/internal/quality"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/search"
)

// learnedCorpus is 300 of the debian evaluation set's documents as two batches
// of contexts with fixed ids and times: the same store in every data
// directory they are applied to.
func learnedCorpus(t *testing.T) (first, second []*nexus.Context) {
	t.Helper()
	sets, err := quality.Sets()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(sets, func(s *quality.Set) bool { return s.Name == "debian" })
	if i < 0 {
		t.Fatal("no debian set")
	}
	docs := sets[i].Docs
	base := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var gen nexus.IDGenerator
	var all []*nexus.Context
	for j, d := range docs {
		ts := base.Add(time.Duration(j) * time.Millisecond)
		c := &nexus.Context{ID: gen.New(ts), Namespace: nexus.DefaultNamespace, Type: nexus.TypeMemory, AgentID: "librarian",
			Timestamp: ts, Metadata: []byte("{}"), Content: d.Text}
		c.SemanticHash = nexus.SemanticHash(c.Type, c.Content, c.Metadata)
		all = append(all, c)
	}
	return all[:150], all[150:300]
}

// gatedEmbedder holds Embed back until open is closed.
type gatedEmbedder struct {
	nexus.Embedder
	open chan struct{}
}

func (g *gatedEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Embedder.Embed(ctx, texts)
}

// logTail keeps the records a node logs.
type logTail struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// testDim is the learned dimension of the tests' models: small, so that
// a training under -race takes seconds.
const testDim = 16

// openLearned opens a node on dir with the learned embedder, training
// from minContexts contexts on.
func openLearned(t *testing.T, dir string, minContexts int, logs *logTail) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dir, cfg.Addr = dir, "127.0.0.1:0"
	cfg.BackupInterval, cfg.ScrubInterval, cfg.MemoryBudget = 0, 0, -1
	cfg.Predict.DiskHorizon = -1
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Logger = slog.New(slog.DiscardHandler)
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	f, err := config.Parse(filepath.Join(t.TempDir(), "nexus.yaml"),
		fmt.Appendf(nil, "search:\n  embedder: cooc\n  learned: {min_contexts: %d, interval: 1h, dimension: %d}\n", minContexts, testDim))
	if err != nil {
		t.Fatal(err)
	}
	cfg.File = f
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

func waitLearned(t *testing.T, n *Node, what string, cond func(learnedStatus) bool) learnedStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := n.engine.learn.waitFor(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return n.engine.learn.status()
}

// aRound waits until the learner has looked once more after now.
func aRound(t *testing.T, n *Node) learnedStatus {
	t.Helper()
	r := n.engine.learn.status().Rounds
	n.engine.learn.Notify()
	return waitLearned(t, n, "a round", func(st learnedStatus) bool { return st.Rounds > r && !st.Training })
}

func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetValue() == label }) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func semantic(t *testing.T, s nexus.Searcher, q string) *nexus.SearchResult {
	t.Helper()
	res, err := s.Search(context.Background(), nexus.SearchRequest{Query: q, Mode: nexus.Semantic, Limit: 10, Consistent: true})
	if err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	return res
}

// The learned embedder in a node, end to end: the hashing model serves
// below the threshold; at the threshold the node trains, keeps the
// parameters in git and re-embeds while the old model answers; the new
// model then serves, a restart loads it without training, a reindex makes
// the same vectors, git fsck is clean, and the same store trains the
// same parameters.
func TestLearned_trainsSwitchesAndReloads(t *testing.T) {
	first, second := learnedCorpus(t)
	dir := t.TempDir()
	ctx := context.Background()
	n := openLearned(t, dir, 200, nil)
	hash := embed.NewHashing(embed.DefaultDimension).Model()
	if _, err := n.Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	if st := aRound(t, n); st.Trainings != 0 || st.Model != "" || st.Next != 200 {
		t.Fatalf("below the threshold: %+v", st)
	}
	if m := n.engine.Stats().Model; m != hash {
		t.Fatalf("model below the threshold: %s", m)
	}

	gate := &gatedEmbedder{open: make(chan struct{})}
	n.engine.learn.mu.Lock()
	n.engine.learn.wrap = func(e nexus.Embedder) nexus.Embedder { gate.Embedder = e; return gate }
	n.engine.learn.mu.Unlock()
	if _, err := n.Apply(ctx, second); err != nil {
		t.Fatal(err)
	}
	// The store holds 300 contexts; the schedule's sizes are 200, 400, …:
	// the model learns from the first 200.
	total, trained := len(first)+len(second), 200
	st := waitLearned(t, n, "a training", func(st learnedStatus) bool { return st.Trainings == 1 })
	if st.Contexts != trained || st.Texts != trained || !strings.HasPrefix(st.Model, fmt.Sprintf("nexus-cooc-v1-%d-", embed.DefaultDimension+testDim)) || st.Next != 2*trained {
		t.Fatalf("after the training: %+v", st)
	}
	model := st.Model

	// Re-embedding: the previous model answers, saying so.
	res := semantic(t, n.Searcher(), "tool to compress files")
	if len(res.Hits) == 0 || !strings.Contains(res.Degraded, "answered with the previous model "+hash) {
		t.Fatalf("search during the re-embedding: %+v", res.Degraded)
	}
	h := n.engine.CheckHealth(ctx)
	learned, _ := h.Details["learned"].(map[string]any)
	if h.Details["model"] != model || h.Details["migrating_from"] != hash || learned["trained_at_contexts"] != trained || learned["model"] != model {
		t.Fatalf("health during the re-embedding: %+v", h)
	}
	if got := counter(t, n.mets.Registry(), "nexus_embedder_trainings_total", "done"); got != 1 {
		t.Fatalf("nexus_embedder_trainings_total{outcome=done} = %v", got)
	}
	if got := counter(t, n.mets.Registry(), "nexus_embedder_trained_contexts", ""); got != float64(trained) {
		t.Fatalf("nexus_embedder_trained_contexts = %v", got)
	}
	close(gate.open)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := n.engine.engine().WaitMigration(wctx); err != nil {
		t.Fatal(err)
	}
	after := semantic(t, n.Searcher(), "tool to compress files")
	if after.Degraded != "" || len(after.Hits) == 0 {
		t.Fatalf("search after the switch: %+v", after)
	}
	if s := n.engine.Stats(); s.Model != model || s.Indexed != total {
		t.Fatalf("stats after the switch: %+v", s)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// A restart loads the model from git: no training, the same answers.
	n = openLearned(t, dir, 200, nil)
	if s := n.engine.Stats(); s.Model != model {
		t.Fatalf("model after the restart: %s, want %s", s.Model, model)
	}
	if st := aRound(t, n); st.Trainings != 0 || st.Model != model || st.Contexts != trained {
		t.Fatalf("learner after the restart: %+v", st)
	}
	again := semantic(t, n.Searcher(), "tool to compress files")
	if !sameHits(again, after) {
		t.Fatalf("after the restart: %v, want %v", hitList(again), hitList(after))
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "--git-dir", filepath.Join(dir, "repo.git"), "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck --strict: %v\n%s", err, out)
	}
	if out, err := exec.Command("git", "--git-dir", filepath.Join(dir, "repo.git"), "log", "--format=%s", "refs/nexus/"+ModelsRef).CombinedOutput(); err != nil || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("git log refs/nexus/%s: %v\n%s", ModelsRef, err, out)
	}

	// A reindex takes the parameters from git and makes the same vectors.
	rst, err := Reindex(ctx, OfflineConfig{Dir: dir, Learned: true})
	if err != nil {
		t.Fatal(err)
	}
	if rst.Model != model || rst.Indexed != total {
		t.Fatalf("reindex: %+v", rst)
	}
	n = openLearned(t, dir, 200, nil)
	if got := semantic(t, n.Searcher(), "tool to compress files"); !sameHits(got, after) {
		t.Fatalf("after the reindex: %v, want %v", hitList(got), hitList(after))
	}
	_, kept, err := loadModel(ctx, n.store)
	if err != nil || kept.Model() != model {
		t.Fatalf("kept model: %v, %v", kept, err)
	}

	// The same store trains the same parameters, vector for vector.
	other := t.TempDir()
	st2, err := gitstore.Open(other, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	applyAll(t, st2.Apply, first, second)
	l2 := &learner{store: st2, cfg: learnedConfig(config.Learned{Dimension: testDim})}
	_, c2, err := l2.train(ctx, trained)
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := kept.MarshalBinary()
	p2, _ := c2.MarshalBinary()
	if c2.Model() != model || !bytes.Equal(p1, p2) {
		t.Fatalf("trained again from the same store: %s (%d bytes), kept %s (%d bytes)", c2.Model(), len(p2), model, len(p1))
	}
	texts := []string{first[0].Content, second[7].Content, "a text of words never seen"}
	v1, _ := kept.Embed(ctx, texts)
	v2, _ := c2.Embed(ctx, texts)
	for i := range texts {
		if !slices.Equal(v1[i], v2[i]) {
			t.Fatalf("vector %d differs", i)
		}
	}
}

func hitList(res *nexus.SearchResult) []string {
	var out []string
	for _, h := range res.Hits {
		out = append(out, fmt.Sprintf("%s:%.6f", h.Context.ID, h.Score))
	}
	return out
}

func sameHits(a, b *nexus.SearchResult) bool { return slices.Equal(hitList(a), hitList(b)) }

// A damaged parameter blob does not stop the node: it serves with the
// hashing model, says why in /health, the log and an incident, and a
// later start trains a new model.
func TestLearned_damagedParameters(t *testing.T) {
	first, second := learnedCorpus(t)
	dir := t.TempDir()
	ctx := context.Background()
	n := openLearned(t, dir, 200, nil)
	applyAll(t, n.Apply, first, second)
	st := waitLearned(t, n, "a training", func(st learnedStatus) bool { return st.Trainings == 1 })
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}

	store, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var seg []byte
	if err := store.SideLog().Walk(ctx, ModelsRef, func(b []byte) error {
		if seg == nil {
			seg = bytes.Clone(b)
		}
		return nil
	}); err != nil || seg == nil {
		t.Fatalf("no model kept: %v", err)
	}
	seg[len(seg)-5] ^= 0x40 // a bit of the last word vector
	if err := store.SideLog().Append(ctx, ModelsRef, seg); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	logs := &logTail{}
	n = openLearned(t, dir, 100_000, logs) // no training: the damage stays visible
	hash := embed.NewHashing(embed.DefaultDimension).Model()
	if m := n.engine.Stats().Model; m != hash {
		t.Fatalf("model with damaged parameters: %s, want %s", m, hash)
	}
	h := n.engine.CheckHealth(ctx)
	learned, _ := h.Details["learned"].(map[string]any)
	if h.Status != nexus.StatusDegraded || !strings.Contains(h.Error, "the learned model kept in git does not load") ||
		!strings.Contains(h.Error, hash+" serves until a new one is trained") || learned["load_error"] == nil {
		t.Fatalf("health with damaged parameters: %+v", h)
	}
	if !strings.Contains(logs.String(), "the learned model kept in git does not load") || !strings.Contains(logs.String(), "damaged") {
		t.Fatalf("log: %s", logs.String())
	}
	if res := semantic(t, n.Searcher(), "tool to compress files"); len(res.Hits) == 0 {
		t.Fatal("no hits with the hashing model")
	}
	if err := n.incidents.flush(ctx, n.store); err != nil {
		t.Fatal(err)
	}
	page, err := n.store.List(ctx, nexus.Filter{Type: nexus.TypeIncident, Limit: 10})
	if err != nil || len(page.Contexts) == 0 || !strings.Contains(page.Contexts[len(page.Contexts)-1].Content+page.Contexts[0].Content, "does not load") {
		t.Fatalf("incident: %v %+v", err, page)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}

	n = openLearned(t, dir, 200, nil)
	got := waitLearned(t, n, "a new training", func(s learnedStatus) bool { return s.Trainings == 1 })
	if got.Model == "" || got.Contexts < st.Contexts {
		t.Fatalf("after training again: %+v", got)
	}
	if h := n.engine.CheckHealth(ctx); strings.Contains(h.Error, "does not load") {
		t.Fatalf("health after training again: %+v", h)
	}
}

// damageBlob flips one bit in the middle of the blob named by the git
// object id, in the pack that holds it.
func damageBlob(t *testing.T, gitDir, blob string) {
	t.Helper()
	idxs, _ := filepath.Glob(filepath.Join(gitDir, "objects", "pack", "*.idx"))
	for _, idx := range idxs {
		f, err := os.Open(idx)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("git", "show-index")
		cmd.Stdin = f
		out, err := cmd.Output()
		f.Close()
		if err != nil {
			t.Fatalf("git show-index %s: %v", idx, err)
		}
		var offsets []int64
		start := int64(-1)
		for line := range strings.Lines(string(out)) {
			fs := strings.Fields(line)
			off, err := strconv.ParseInt(fs[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			offsets = append(offsets, off)
			if fs[1] == blob {
				start = off
			}
		}
		if start < 0 {
			continue
		}
		pack := strings.TrimSuffix(idx, ".idx") + ".pack"
		b, err := os.ReadFile(pack)
		if err != nil {
			t.Fatal(err)
		}
		end := int64(len(b) - 20)
		for _, o := range offsets {
			if o > start && o < end {
				end = o
			}
		}
		b[(start+end)/2] ^= 0x08
		if err := os.WriteFile(pack, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no pack holds %s", blob)
}

// Recovery with the learned model: a stopped node's fsck verifies the
// learned model's saved index (not the hashing model's), the offline
// recovery rebuilds it with the learned model, and a pack of
// refs/nexus/models/cooc damaged on disk is repaired from a backup: stock
// git finds the repository whole and the node loads the same model, and
// answers the same, without training; so does a node on the backup
// restored into a new data directory.
func TestLearned_recovery(t *testing.T) {
	first, second := learnedCorpus(t)
	dir := t.TempDir()
	ctx := context.Background()
	n := openLearned(t, dir, 200, nil)
	applyAll(t, n.Apply, first, second)
	model := waitLearned(t, n, "a training", func(st learnedStatus) bool { return st.Trainings == 1 }).Model
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := n.engine.engine().WaitMigration(wctx); err != nil {
		t.Fatal(err)
	}
	want := semantic(t, n.Searcher(), "tool to compress files")
	backup, err := n.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := search.SavedModels(IndexDir(dir)); !slices.Equal(got, []string{model}) {
		t.Fatalf("saved indexes %v, want the learned model's only", got)
	}

	// fsck verifies the learned model's index; a damaged one is found and
	// rebuilt with the learned model.
	res, err := FsckOffline(ctx, OfflineConfig{Dir: dir}, FsckOptions{Deep: true})
	if err != nil || res.Index != "ok" || res.Status != FsckClean {
		t.Fatalf("fsck: %v %+v", err, res)
	}
	files, _ := filepath.Glob(filepath.Join(IndexDir(dir), "*", "docs-*.bin"))
	if len(files) != 1 {
		t.Fatalf("saved docs files: %v", files)
	}
	if err := os.Truncate(files[0], 10); err != nil {
		t.Fatal(err)
	}
	if res, err := FsckOffline(ctx, OfflineConfig{Dir: dir}, FsckOptions{Deep: false}); err != nil || res.Index == "ok" || res.Index == "none" {
		t.Fatalf("fsck of a damaged learned index: %v %+v", err, res)
	}
	steps, err := RecoverOffline(ctx, OfflineConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(steps, func(s recovery.Step) bool { return s.Component == nexus.ComponentIndex }); i < 0 || steps[i].Status != recovery.Recovered {
		t.Fatalf("recovery: %+v", steps)
	}
	if got := search.SavedModels(IndexDir(dir)); !slices.Equal(got, []string{model}) {
		t.Fatalf("saved indexes after the recovery %v, want the learned model's only", got)
	}

	// A damaged pack of the model's parameters is repaired from the backup.
	gitDir := filepath.Join(dir, "repo.git")
	out, err := exec.Command("git", "--git-dir", gitDir, "ls-tree", "refs/nexus/"+ModelsRef).Output()
	if err != nil {
		t.Fatalf("git ls-tree: %v", err)
	}
	fields := strings.Fields(string(out)) // mode, type, id, name
	if len(fields) != 4 || fields[1] != "blob" {
		t.Fatalf("git ls-tree refs/nexus/%s: %q", ModelsRef, out)
	}
	damageBlob(t, gitDir, fields[2])
	if err := exec.Command("git", "--git-dir", gitDir, "fsck", "--full", "--strict").Run(); err == nil {
		t.Fatal("git fsck finds no damage in the model's pack")
	}
	res, err = FsckOffline(ctx, OfflineConfig{Dir: dir, Sources: RepairSources("", BackupDir(dir))()}, FsckOptions{Deep: true, Repair: true})
	if err != nil || res.Status != FsckRepaired {
		t.Fatalf("fsck --repair: %v %+v", err, res)
	}
	if out, err := exec.Command("git", "--git-dir", gitDir, "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck --strict after the repair: %v\n%s", err, out)
	}
	n = openLearned(t, dir, 200, nil)
	if m := n.engine.Stats().Model; m != model {
		t.Fatalf("model after the repair: %s, want %s", m, model)
	}
	if st := aRound(t, n); st.Trainings != 0 || st.Model != model || st.LoadError != "" {
		t.Fatalf("learner after the repair: %+v", st)
	}
	if got := semantic(t, n.Searcher(), "tool to compress files"); !sameHits(got, want) {
		t.Fatalf("after the repair: %v, want %v", hitList(got), hitList(want))
	}

	// The backup restored into a new data directory brings the model:
	// the node serves it without training and answers the same.
	restored := filepath.Join(t.TempDir(), "restored")
	if _, err := gitstore.RestoreBackup(ctx, backup.Path, restored); err != nil {
		t.Fatal(err)
	}
	r := openLearned(t, restored, 200, nil)
	if m := r.engine.Stats().Model; m != model {
		t.Fatalf("model of the restored node: %s, want %s", m, model)
	}
	if st := aRound(t, r); st.Trainings != 0 || st.Model != model {
		t.Fatalf("learner of the restored node: %+v", st)
	}
	if got := semantic(t, r.Searcher(), "tool to compress files"); !sameHits(got, want) {
		t.Fatalf("restored: %v, want %v", hitList(got), hitList(want))
	}
}

// applyAll applies each batch in turn, failing the test on an error.
func applyAll[R any](t *testing.T, apply func(context.Context, []*nexus.Context) (R, error), batches ...[]*nexus.Context) {
	t.Helper()
	for _, b := range batches {
		if _, err := apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// A point-in-time restore that rolls back contexts the model learned
// from makes the node train again from the store as restored: the new
// model is the one a store of only those contexts trains, and it serves.
// A restore that keeps every context the model learned from trains
// nothing; one below min_contexts trains nothing until the store has
// grown back to it.
func TestLearned_restoreTrainsAgain(t *testing.T) {
	first, second := learnedCorpus(t)
	ctx := context.Background()
	n := openLearned(t, t.TempDir(), 100, nil)
	applyAll(t, n.Apply, slices.Concat(first, second)) // one batch: no training at 150
	// 300 contexts, the schedule 100, 200, 400: the model learns from 200.
	st := waitLearned(t, n, "the first training", func(st learnedStatus) bool { return st.Trainings == 1 && !st.Training })
	if st.Contexts != 200 || st.Next != 400 {
		t.Fatalf("first training: %+v", st)
	}
	old := st.Model
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := n.engine.engine().WaitMigration(wctx); err != nil {
		t.Fatal(err)
	}

	// Back to 250 contexts: the model learned from the first 200 only.
	if plan, err := n.Restore(ctx, second[99].Timestamp, false); err != nil || plan.Kept != 250 {
		t.Fatalf("restore: %+v, %v", plan, err)
	}
	if st = aRound(t, n); st.Trainings != 1 || st.Model != old || st.Next != 400 {
		t.Fatalf("after a restore to 250 contexts: %+v", st)
	}

	// Back to 150: the model learned from 50 contexts no longer held.
	if plan, err := n.Restore(ctx, first[149].Timestamp, false); err != nil || plan.Kept != 150 {
		t.Fatalf("restore: %+v, %v", plan, err)
	}
	st = waitLearned(t, n, "a training after the restore", func(st learnedStatus) bool { return st.Trainings == 2 && !st.Training })
	if st.Contexts != 100 || st.Texts != 100 || st.Model == old || st.Next != 200 {
		t.Fatalf("after a restore to 150 contexts: %+v (the model before: %s)", st, old)
	}
	if err := n.engine.engine().WaitMigration(wctx); err != nil {
		t.Fatal(err)
	}
	if m := n.engine.Stats().Model; m != st.Model {
		t.Fatalf("the index serves %s, want the model trained after the restore %s", m, st.Model)
	}
	other, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	applyAll(t, other.Apply, first)
	l2 := &learner{store: other, cfg: learnedConfig(config.Learned{Dimension: testDim})}
	if _, c, err := l2.train(ctx, 100); err != nil || c.Model() != st.Model {
		t.Fatalf("a store of the 150 kept contexts trains %v (%v), the node %s", c, err, st.Model)
	}

	// Below min_contexts: the model stays until the store has grown back.
	if _, err := n.Restore(ctx, first[49].Timestamp, false); err != nil {
		t.Fatal(err)
	}
	if st = aRound(t, n); st.Trainings != 2 || st.Next != 100 || st.Contexts != 100 {
		t.Fatalf("after a restore to 50 contexts: %+v", st)
	}
}
