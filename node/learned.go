package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/search"
)

// The learned embedder (config search.embedder: cooc): a model the node
// trains from its own contexts (embed.TrainCooc) in the background, once
// the store holds enough text and again each time it has grown by a
// factor. Each model's parameters are committed on the side ref
// refs/nexus/models/cooc before the index moves to it, so a restart, a
// restore of a backup or a `nexus reindex --embedder cooc` takes the same
// model and makes the same vectors without training. The index moves with
// search.Engine.Successor: the previous model answers searches until
// every context has its new vector.

// Defaults of config.Learned.
const (
	DefaultLearnedMinContexts = 1000
	DefaultLearnedGrowth      = 2.0
	DefaultLearnedMaxTexts    = 50_000
	DefaultLearnedInterval    = time.Minute
)

// ModelsRef is the side ref (under refs/nexus/) that keeps the learned
// model's parameters: one commit per model trained, the newest at its tip.
const ModelsRef = "models/cooc"

// coocPrefix starts the id of every learned model (embed.Cooc.Model).
const coocPrefix = "nexus-cooc-v1-"

// maxTrainText is the most bytes of one context a training reads.
const maxTrainText = 16 << 10

// learnedConfig is config.Learned with its defaults filled in.
func learnedConfig(c config.Learned) config.Learned {
	if c.MinContexts == 0 {
		c.MinContexts = DefaultLearnedMinContexts
	}
	if c.Growth == 0 {
		c.Growth = DefaultLearnedGrowth
	}
	if c.MaxTexts == 0 {
		c.MaxTexts = DefaultLearnedMaxTexts
	}
	if c.Interval == 0 {
		c.Interval = DefaultLearnedInterval
	}
	return c
}

// modelMeta describes a model kept on ModelsRef.
type modelMeta struct {
	Model     string    `json:"model"`
	Contexts  int       `json:"contexts"` // the store's size it was trained at
	Texts     int       `json:"texts"`    // the texts it read
	TrainedAt time.Time `json:"trained_at"`
	TookMS    int64     `json:"took_ms"`
}

// modelMagic starts a model's segment: then the length of the JSON
// modelMeta (uint32, little endian), the JSON, and the parameters
// (embed.Cooc.MarshalBinary).
const modelMagic = "NXMODEL1\n"

func encodeModel(meta modelMeta, c *embed.Cooc) ([]byte, error) {
	params, err := c.MarshalBinary()
	if err != nil {
		return nil, err
	}
	head, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(modelMagic)+4+len(head)+len(params))
	b = append(b, modelMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(head)))
	b = append(b, head...)
	return append(b, params...), nil
}

// decodeModel reads a segment of ModelsRef: its parameters must be those
// of the model it names.
func decodeModel(seg []byte) (modelMeta, *embed.Cooc, error) {
	var meta modelMeta
	rest, ok := bytes.CutPrefix(seg, []byte(modelMagic))
	if !ok || len(rest) < 4 {
		return meta, nil, nexus.Errorf(nexus.EInvalid, "not a model of %s", ModelsRef)
	}
	n := int(binary.LittleEndian.Uint32(rest))
	if n > len(rest)-4 {
		return meta, nil, nexus.Errorf(nexus.EInvalid, "model of %s: truncated header", ModelsRef)
	}
	if err := json.Unmarshal(rest[4:4+n], &meta); err != nil {
		return meta, nil, nexus.Errorf(nexus.EInvalid, "model of %s: header: %v", ModelsRef, err)
	}
	c, err := embed.UnmarshalCooc(rest[4+n:])
	if err != nil {
		return meta, nil, nexus.WrapError(nexus.EInvalid, err, "parameters of %s", meta.Model)
	}
	if c.Model() != meta.Model {
		return meta, nil, nexus.Errorf(nexus.EInvalid, "the parameters kept for %s are those of %s: damaged", meta.Model, c.Model())
	}
	return meta, c, nil
}

var errFound = errors.New("found")

// loadModel reads the newest model of ModelsRef: nil without one, an
// error with code invalid when it does not decode.
func loadModel(ctx context.Context, st *gitstore.Store) (modelMeta, *embed.Cooc, error) {
	var (
		meta modelMeta
		c    *embed.Cooc
		derr error
	)
	err := st.SideLog().Walk(ctx, ModelsRef, func(seg []byte) error {
		meta, c, derr = decodeModel(seg)
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return meta, nil, err
	}
	return meta, c, derr
}

// findModel reads the model called model from ModelsRef.
func findModel(ctx context.Context, st *gitstore.Store, model string) (*embed.Cooc, error) {
	var found *embed.Cooc
	err := st.SideLog().Walk(ctx, ModelsRef, func(seg []byte) error {
		meta, c, err := decodeModel(seg)
		if err == nil && meta.Model == model {
			found = c
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return nil, err
	}
	if found == nil {
		return nil, nexus.Errorf(nexus.ENotFound, "model %s is not kept on refs/nexus/%s", model, ModelsRef)
	}
	return found, nil
}

// resolver makes the embedder of a model the index used before: a
// hashing model, or a learned one kept on ModelsRef.
func resolver(st *gitstore.Store) func(model string) (nexus.Embedder, bool) {
	return func(model string) (nexus.Embedder, bool) {
		if !strings.HasPrefix(model, coocPrefix) {
			return ResolveEmbedder(model)
		}
		c, err := findModel(context.Background(), st, model)
		if err != nil {
			return nil, false
		}
		return c, true
	}
}

// sampleTexts reads the texts a training learns from: of the first total
// contexts in id order, every ⌈total/max⌉-th, agents' checkpoints left
// out, each cut to maxTrainText bytes. The same store gives the same
// texts.
func sampleTexts(ctx context.Context, st *gitstore.Store, total, most int) ([]string, error) {
	stride := max(1, (total+most-1)/most)
	out := make([]string, 0, min(total, most))
	f := nexus.Filter{Order: nexus.Oldest, Limit: 256}
	for i := 0; i < total; {
		page, err := st.List(ctx, f)
		if err != nil {
			return nil, err
		}
		if len(page.Contexts) == 0 {
			break
		}
		for _, c := range page.Contexts {
			if i >= total {
				break
			}
			if i%stride == 0 && c.Type != nexus.TypeAgentState {
				out = append(out, clipText(c.Content, maxTrainText))
			}
			i++
		}
		f.Cursor = page.Contexts[len(page.Contexts)-1].ID.String()
	}
	return out, nil
}

// clipText cuts s to at most n bytes, at a rune boundary.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// learnedStatus is what the learner reports in /health.
type learnedStatus struct {
	Model     string    // the learned model serving or being moved to; "" for none
	Contexts  int       // the store's size it was trained at
	Texts     int       // the texts it read
	TrainedAt time.Time // when
	Took      time.Duration
	Next      int    // the store's size that trains again
	Training  bool   // a training is under way
	LoadError string // why the model kept on ModelsRef did not load at open
	LastError string // why the last training failed
	Trainings uint64 // trainings done since the node opened
	Failures  uint64 // trainings that failed since the node opened
	Rounds    uint64 // looks whether to train
}

// learner trains the learned model in the background and moves the
// index to each new one.
type learner struct {
	store *gitstore.Store
	live  *currentEngine
	cfg   config.Learned
	log   *slog.Logger
	kick  chan struct{}

	mu      sync.Mutex // guards what follows
	st      learnedStatus
	changed chan struct{} // closed and replaced at every change of st
	// wrap, if set, wraps each new model's embedder (tests hold the
	// re-embedding with it).
	wrap func(nexus.Embedder) nexus.Embedder
}

// searchEmbedder is the embedder the index opens with, and the learner
// when the configuration asks for the learned model: the newest model
// kept on ModelsRef, or the hashing model while there is none (or it does
// not load: the learner says why).
func (n *Node) searchEmbedder(ctx context.Context) (nexus.Embedder, *learner, error) {
	var sc config.Search
	if n.cfg.File != nil {
		sc = n.cfg.File.Search
	}
	if sc.Embedder != config.EmbedderCooc {
		if n.cfg.Embedder != nil {
			return n.cfg.Embedder, nil, nil
		}
		return embed.NewHashing(embed.DefaultDimension), nil, nil
	}
	if _, builtin := n.cfg.Embedder.(*embed.Hashing); n.cfg.Embedder != nil && !builtin {
		return nil, nil, &ConfigError{Err: fmt.Errorf("search.embedder: cooc, and an embedder is set too (%s): choose one", n.cfg.Embedder.Model())}
	}
	l := &learner{store: n.store, cfg: learnedConfig(sc.Learned), log: n.log.With("job", "embedder"),
		kick: make(chan struct{}, 1), changed: make(chan struct{})}
	var emb nexus.Embedder = embed.NewHashing(embed.DefaultDimension)
	meta, c, err := loadModel(ctx, n.store)
	switch {
	case c != nil:
		emb = c
		l.st.Model, l.st.Contexts, l.st.Texts, l.st.TrainedAt, l.st.Took = meta.Model, meta.Contexts, meta.Texts, meta.TrainedAt, time.Duration(meta.TookMS)*time.Millisecond
		n.log.Info("learned model loaded from git", "model", meta.Model, "trained_at_contexts", meta.Contexts, "ref", "refs/nexus/"+ModelsRef)
	case nexus.ErrorCode(err) == nexus.EInvalid:
		l.st.LoadError = nexus.ErrorMessage(err)
		n.log.Error("the learned model kept in git does not load; the hashing model serves until a new one is trained",
			"ref", "refs/nexus/"+ModelsRef, "err", err)
	case err != nil:
		return nil, nil, err
	}
	l.st.Next = l.next()
	return emb, l, nil
}

// next is the store size at which the learner trains: MinContexts
// without a model, else the size after the trained one. Called with mu
// held.
func (l *learner) next() int {
	if l.st.Model == "" || l.st.Contexts == 0 {
		return max(l.cfg.MinContexts, 1)
	}
	return l.after(l.st.Contexts)
}

// after is the training size that follows size: size times Growth, or
// plus Every if that comes first.
func (l *learner) after(size int) int {
	n := int(math.Ceil(float64(size) * l.cfg.Growth))
	if l.cfg.Every > 0 {
		n = min(n, size+l.cfg.Every)
	}
	return max(n, l.cfg.MinContexts, size+1)
}

// trainingSize is the number of contexts a training due now learns from:
// the largest size of the schedule (Next, then after(Next), …) the store
// of total contexts has reached, or 0 when none is. A training learns from
// the first that many contexts in id order, not from the store's size of
// the moment, so that every node of a cluster, and every rebuild, makes
// the same model at the same size. Called with mu held.
func (l *learner) trainingSize(total int) int {
	at := l.st.Next
	if total < at {
		return 0
	}
	for {
		n := l.after(at)
		if n > total {
			return at
		}
		at = n
	}
}

// status returns the learner's figures.
func (l *learner) status() learnedStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// update changes the status under mu and wakes the waiters.
func (l *learner) update(f func(st *learnedStatus)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.st)
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitFor returns once cond holds of the status, or fails when ctx ends.
func (l *learner) waitFor(ctx context.Context, cond func(learnedStatus) bool) error {
	for {
		l.mu.Lock()
		st, ch := l.st, l.changed
		l.mu.Unlock()
		if cond(st) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("learned model: %w; status %+v", ctx.Err(), st)
		}
	}
}

// Notify wakes the learner when the store may have grown past its next
// training. It never blocks.
func (l *learner) Notify() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// run looks whether to train at start, at every Interval and when woken,
// until ctx ends.
func (l *learner) run(ctx context.Context) {
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		l.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.kick:
		}
	}
}

// round trains a new model if the store has reached the next size, once
// the index is not moving to a model any more.
func (l *learner) round(ctx context.Context) {
	defer l.update(func(st *learnedStatus) { st.Rounds++ })
	total := l.store.Len()
	l.mu.Lock()
	if l.st.Model != "" && l.st.Contexts > total && l.st.Next > l.cfg.MinContexts {
		// The model learned from contexts the store no longer holds (a
		// restore rolled them back, or a repair lost them): train again
		// from what it holds, as soon as that is enough text.
		l.st.Next = max(l.cfg.MinContexts, 1)
		l.log.Info("the learned model was trained on more contexts than the store holds; training again from the store as it is",
			"model", l.st.Model, "trained_at_contexts", l.st.Contexts, "contexts", total, "next_training_at_contexts", l.st.Next)
	}
	at := l.trainingSize(total)
	l.mu.Unlock()
	if at == 0 {
		return
	}
	if e := l.live.engine(); e.Migration() != "" {
		// Due while the index still moves to the last model: look again
		// once it has (nothing else may wake the learner before its next
		// interval).
		if e.WaitMigration(ctx) == nil {
			l.Notify()
		}
		return
	}
	l.update(func(st *learnedStatus) { st.Training = true })
	meta, c, err := l.train(ctx, at)
	if err == nil {
		err = l.switchTo(ctx, meta, c)
	}
	if err != nil {
		if ctx.Err() != nil {
			l.update(func(st *learnedStatus) { st.Training = false })
			return
		}
		l.log.Warn("training the learned model failed", "contexts", at, "err", err)
		l.update(func(st *learnedStatus) {
			st.Training, st.LastError, st.Failures = false, nexus.ErrorMessage(err), st.Failures+1
			if nexus.ErrorCode(err) == nexus.EInvalid {
				// Too little text: try again once the store has grown.
				st.Next = max(st.Next, l.after(at))
			}
		})
		return
	}
	l.update(func(st *learnedStatus) {
		st.Training, st.LastError, st.Trainings = false, "", st.Trainings+1
		st.Model, st.Contexts, st.Texts, st.TrainedAt, st.Took = meta.Model, meta.Contexts, meta.Texts, meta.TrainedAt, time.Duration(meta.TookMS)*time.Millisecond
		st.Next = l.next()
	})
	l.log.Info("learned model trained; re-embedding the store with it", "model", meta.Model, "contexts", meta.Contexts,
		"texts", meta.Texts, "took", time.Duration(meta.TookMS)*time.Millisecond)
}

// train learns a model from the first total contexts of the store (in id
// order).
func (l *learner) train(ctx context.Context, total int) (modelMeta, *embed.Cooc, error) {
	start := time.Now()
	texts, err := sampleTexts(ctx, l.store, total, l.cfg.MaxTexts)
	if err != nil {
		return modelMeta{}, nil, err
	}
	c, err := embed.TrainCooc(ctx, texts, embed.CoocOptions{Dim: l.cfg.Dimension})
	if err != nil {
		return modelMeta{}, nil, err
	}
	took := time.Since(start)
	return modelMeta{Model: c.Model(), Contexts: total, Texts: len(texts), TrainedAt: time.Now().UTC(), TookMS: took.Milliseconds()}, c, nil
}

// switchTo commits the model's parameters on ModelsRef, then moves the
// index to it.
func (l *learner) switchTo(ctx context.Context, meta modelMeta, c *embed.Cooc) error {
	seg, err := encodeModel(meta, c)
	if err != nil {
		return err
	}
	if err := l.store.SideLog().Append(ctx, ModelsRef, seg); err != nil {
		return nexus.WrapError(nexus.ErrorCode(err), err, "keep the model's parameters in git")
	}
	var emb nexus.Embedder = c
	l.mu.Lock()
	if l.wrap != nil {
		emb = l.wrap(c)
	}
	l.mu.Unlock()
	if l.live.engine().Stats().Model == meta.Model {
		return nil // trained again to the same model (the one kept did not load, say)
	}
	return l.live.moveTo(emb)
}

// health adds the learner's figures to the index's health.
func (l *learner) health(h *nexus.ComponentHealth) {
	st := l.status()
	d := map[string]any{
		"embedder": config.EmbedderCooc, "model": st.Model, "next_training_at_contexts": st.Next,
		"training": st.Training, "trainings": st.Trainings, "failures": st.Failures,
	}
	if st.Model != "" {
		d["trained_at_contexts"], d["texts"], d["trained_at"], d["took_ms"] = st.Contexts, st.Texts, st.TrainedAt, st.Took.Milliseconds()
	}
	if st.LastError != "" {
		d["last_error"] = st.LastError
	}
	if st.LoadError != "" {
		d["load_error"] = st.LoadError
		if st.Model == "" {
			h.Status = worse(h.Status, nexus.StatusDegraded)
			h.Error = joinErr(h.Error, "the learned model kept in git does not load ("+st.LoadError+"): "+embed.NewHashing(embed.DefaultDimension).Model()+" serves until a new one is trained")
		}
	}
	if h.Details == nil {
		h.Details = map[string]any{}
	}
	h.Details["learned"] = d
}

func worse(a, b string) string {
	if a == nexus.StatusUnhealthy || b == nexus.StatusUnhealthy {
		return nexus.StatusUnhealthy
	}
	if a == nexus.StatusDegraded || b == nexus.StatusDegraded {
		return nexus.StatusDegraded
	}
	return a
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// startLearning starts the learner, its metrics and the incident of a
// model that did not load.
func (n *Node) startLearning() {
	if n.engine == nil || n.engine.learn == nil {
		return
	}
	l := n.engine.learn
	l.live = n.engine
	n.mets.Registry().MustRegister(newLearnedCollector(l))
	if st := l.status(); st.LoadError != "" {
		n.incidents.atStart(nexus.ComponentIndex, "the learned model kept on refs/nexus/"+ModelsRef+" does not load: "+st.LoadError, n.opened,
			[]string{"the index serves with " + embed.NewHashing(embed.DefaultDimension).Model() + " until a new model is trained"}, nil)
	}
	n.start(newService("embedder", l.run))
}

// learnedCollector is the learner's metrics.
type learnedCollector struct {
	l                               *learner
	trainings, took, trained, model *prometheus.Desc
}

func newLearnedCollector(l *learner) *learnedCollector {
	d := prometheus.NewDesc
	return &learnedCollector{l: l,
		trainings: d("nexus_embedder_trainings_total", "Trainings of the learned embedder since the node started, by outcome (done, failed).", []string{"outcome"}, nil),
		took:      d("nexus_embedder_training_seconds", "How long the training of the learned model serving took (reading the texts and learning).", nil, nil),
		trained:   d("nexus_embedder_trained_contexts", "The store's size the learned model serving was trained at.", nil, nil),
		model:     d("nexus_embedder_learned_model", "1 for the learned model serving, or being moved to.", []string{"model"}, nil),
	}
}

func (c *learnedCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.trainings, c.took, c.trained, c.model} {
		ch <- d
	}
}

func (c *learnedCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.status()
	ch <- prometheus.MustNewConstMetric(c.trainings, prometheus.CounterValue, float64(st.Trainings), "done")
	ch <- prometheus.MustNewConstMetric(c.trainings, prometheus.CounterValue, float64(st.Failures), "failed")
	if st.Model != "" {
		ch <- prometheus.MustNewConstMetric(c.took, prometheus.GaugeValue, st.Took.Seconds())
		ch <- prometheus.MustNewConstMetric(c.trained, prometheus.GaugeValue, float64(st.Contexts))
		ch <- prometheus.MustNewConstMetric(c.model, prometheus.GaugeValue, 1, st.Model)
	}
}

// offlineEmbedder is the embedder of a stopped node's search index: with
// cfg.Learned, the newest model kept on ModelsRef (the built-in one while
// there is none; an error when it does not load); else cfg.Embedder when
// set; else the model the node served last — a learned model whose index
// is saved and whose parameters are kept on ModelsRef — or the built-in
// one.
func offlineEmbedder(ctx context.Context, st *gitstore.Store, cfg OfflineConfig) (nexus.Embedder, error) {
	if cfg.Learned {
		_, c, err := loadModel(ctx, st)
		if err != nil {
			return nil, nexus.WrapError(nexus.ErrorCode(err), err, "the learned model kept on refs/nexus/%s", ModelsRef)
		}
		if c == nil {
			return embed.NewHashing(embed.DefaultDimension), nil
		}
		return c, nil
	}
	if cfg.Embedder != nil {
		return cfg.Embedder, nil
	}
	for _, m := range search.SavedModels(IndexDir(cfg.Dir)) {
		if !strings.HasPrefix(m, coocPrefix) {
			continue
		}
		if c, err := findModel(ctx, st, m); err == nil {
			return c, nil
		}
	}
	return embed.NewHashing(embed.DefaultDimension), nil
}
