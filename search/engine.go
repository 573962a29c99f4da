package search

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/keyword"
	"github.com/nexus-mem/nexus/vector"
)

// Source is the store an engine indexes: gitstore.Store is one.
type Source interface {
	List(ctx context.Context, f nexus.Filter) (*nexus.Page, error)
	Get(ctx context.Context, id nexus.ID) (*nexus.Context, error)
	// Len is the number of contexts stored.
	Len() int
}

// Options configure an engine. Zero fields take working defaults.
type Options struct {
	// Dir holds the saved indexes; empty keeps them in memory only.
	Dir string
	// Vector tunes the HNSW graph (zero fields: the vector package's
	// defaults). A saved index keeps the options it was built with. An
	// EfConstruction of 64 instead of 100 halves the graph's CPU per
	// insertion but gave recall@10 0.920 at 1M (docs/BENCHMARKS.md,
	// "efConstruction").
	Vector vector.Options
	// Keyword chooses the keyword analyzer.
	Keyword keyword.Config
	// Batch is the number of contexts indexed per step (default 256).
	Batch int
	// SaveInterval is how often changed indexes are saved (default 30s).
	SaveInterval time.Duration
	// RetryInterval is the wait before embedding again after the embedder
	// failed (default 5s).
	RetryInterval time.Duration
	// MaxCPU is the share of one core the indexer uses while writes keep
	// arriving and the index is not behind (default 0.25; 1 or more: no
	// limit).
	MaxCPU float64
	// MaxCPULagging is the share of the cores (1 = one core) the indexer
	// uses while writes keep arriving and the index is LagBound or more
	// contexts behind; between no lag and LagBound the share rises in
	// proportion from MaxCPU. Default 1 (one core), or half of GOMAXPROCS
	// if that is less, so that writes keep at least as much. Below MaxCPU:
	// MaxCPU, a fixed ration.
	MaxCPULagging float64
	// LagBound is the lag (contexts stored, not yet in the graph) at
	// which the indexer takes MaxCPULagging (default 10,000).
	LagBound int
	// FreshMax bounds the fresh segment: contexts searchable (keywords
	// indexed, vectors scanned exactly by every semantic search) while
	// their vectors wait to be inserted into the graph (default 20,000).
	// Past it, new contexts become searchable only as the graph catches
	// up. Every semantic search scans the segment: its cost grows with
	// the bound (docs/BENCHMARKS.md, "Fresh segment").
	FreshMax int
	// Workers is the number of goroutines adding to the indexes when
	// catching up (default GOMAXPROCS).
	Workers int
	// EfSearch is the candidate list of a graph search: larger finds more
	// of the true nearest neighbours, more slowly (default 512; see
	// docs/BENCHMARKS.md for recall against it).
	EfSearch int
	// ExactBelow: a filtered search whose filter keeps fewer contexts than
	// this scans their vectors exactly (default 5,000).
	ExactBelow int
	// ScanFilters filters every search with a predicate asked about every
	// context, never from the posting lists: how filters worked before
	// the lists, kept as the baseline `nexus bench search` measures them
	// against.
	ScanFilters bool
	// Log keeps embeddings in the store's repository, so that a rebuild
	// takes them from there instead of calling the embedder; nil keeps
	// them only in the index files. An engine whose embedder is a
	// [LocalEmbedder] (the built-in models) does not use it: a rebuild
	// embeds the texts again, which costs less than keeping the vectors.
	Log VectorLog
	// LogSegment is the most embeddings appended to Log as one segment
	// (default 1,024), and LogDelay the longest an embedding waits for
	// its segment (default 2s; Close appends what waits). Each segment is
	// a commit the store makes between durable writes.
	LogSegment int
	LogDelay   time.Duration
	// Resolve returns the embedder of a model other than the configured
	// one, if it can still be made; after a model change, the saved index
	// of that model then answers searches until the new one has caught up.
	Resolve func(model string) (nexus.Embedder, bool)
	// Logger receives index events; nil discards them.
	Logger *slog.Logger
	// Progress, if set, is called while the indexer catches up after
	// Open (a rebuild, or the writes made while the index was closed).
	Progress func(done, total int)
	// Fusion, if not nil, weighs the signals of hybrid searches instead
	// of DefaultFusion of the embedder's model.
	Fusion *Fusion
	// Seal, if set, encrypts the saved index files, which hold the terms
	// and vectors of every context (the store's data key when the store
	// is encrypted at rest); nil saves them in the clear.
	Seal Sealer
	// MaxLag bounds the lag (contexts stored, not yet searchable) that
	// writes may make: Pace holds a write back while the lag is above it
	// (default 50,000; negative: writes are never held back). A burst
	// builds a lag up to it at the store's full write rate; a write load
	// the index cannot keep up with for good is slowed to the rate the
	// index makes contexts searchable.
	MaxLag int
	// PaceStall is how long Pace waits without the index making any
	// progress before it lets the write through anyway: a stuck index
	// (its health says why) must not stop writes (default 5s).
	PaceStall time.Duration
}

// Sealer encrypts and authenticates whole files.
type Sealer interface {
	Seal(plain []byte) []byte
	Unseal(sealed []byte) ([]byte, error)
}

func (o *Options) setDefaults() {
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.SaveInterval <= 0 {
		o.SaveInterval = 30 * time.Second
	}
	if o.LogSegment <= 0 {
		o.LogSegment = defaultLogSegment
	}
	if o.LogDelay <= 0 {
		o.LogDelay = defaultLogDelay
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = 5 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.MaxCPU <= 0 {
		o.MaxCPU = 0.25
	}
	if o.MaxCPULagging <= 0 {
		o.MaxCPULagging = min(1, float64(runtime.GOMAXPROCS(0))/2)
	}
	if o.LagBound <= 0 {
		o.LagBound = 10000
	}
	if o.FreshMax <= 0 {
		o.FreshMax = 20000
	}
	if o.MaxLag == 0 {
		o.MaxLag = DefaultMaxLag
	}
	if o.PaceStall <= 0 {
		o.PaceStall = 5 * time.Second
	}
	if o.EfSearch <= 0 {
		o.EfSearch = 512
	}
	if o.ExactBelow <= 0 {
		o.ExactBelow = 5000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Engine indexes a store and answers searches. Its methods are safe for
// concurrent use; Close stops its goroutines.
type Engine struct {
	src  Source
	emb  nexus.Embedder
	opts Options
	log  *slog.Logger
	vlog VectorLog // opts.Log, or nil for a local embedder (vectorLogOf)

	vec *vector.Index
	kw  *keyword.Index

	mu     sync.RWMutex // guards the fields below
	tab    *table
	cursor nexus.ID // last context added to the table
	done   int      // docs searchable: in the keyword index, their vectors in the graph or fresh
	noVec  []uint32 // docs waiting for an embedding
	// The fresh segment: docs searchable whose vectors are not yet in the
	// graph, ascending, with their vectors. Linking removes them from the
	// front once the graph holds them; entries are never changed in
	// place, so a search may keep the slices it took.
	freshOrds []uint32
	freshVecs [][]float32
	degraded  string // why the last embedding failed; "" when healthy
	failedAt  time.Time
	savedAt   int // done at the last save
	progress  chan struct{}

	root       string                   // Options.Dir: the parent of the model directories
	loadErr    error                    // why the saved index was not loaded at open
	restores   atomic.Uint64            // the store's restore count the index reflects
	prev       atomic.Pointer[Engine]   // the previous model's engine, during a migration
	migrated   chan struct{}            // closed when the previous model's engine is retired
	saved      atomic.Pointer[manifest] // the generation last saved or loaded
	fileDamage atomic.Pointer[string]   // what the last check of the saved files found
	known      map[nexus.ID][]float32   // vectors from the log, for a rebuild; guarded by stepMu
	// Embeddings made and not yet appended to the vector log, and when
	// the first of them was queued (logVectors); guarded by stepMu.
	logIDs      []nexus.ID
	logVecs     [][]float32
	logSince    time.Time
	logFailures atomic.Int64 // embeddings whose vector log append failed
	paced       atomic.Int64 // writes Pace held back
	pacedNanos  atomic.Int64 // the time it held them back, in all
	paceStalls  atomic.Int64 // writes let through after PaceStall without progress
	// caughtUp: an admit has found nothing left to index since the
	// index was opened or reset (guarded by mu). Until then it is
	// rebuilding or catching up, and Pace holds no write back for that
	// lag.
	caughtUp bool
	fusionW  atomic.Pointer[Fusion] // the weights of hybrid searches; nil: DefaultFusion of the model

	kick      chan struct{}
	closing   chan struct{}
	wg        sync.WaitGroup
	stepMu    sync.Mutex // held by a step, a save and an embedding retry
	closeOnce sync.Once
}

// Open loads the saved indexes of opts.Dir (verifying and catching them
// up) or starts empty, and starts indexing src in the background.
func Open(src Source, emb nexus.Embedder, opts Options) (*Engine, error) {
	opts.setDefaults()
	dir := ""
	if opts.Dir != "" {
		dir = modelDir(opts.Dir, emb.Model())
	}
	e, err := open(src, emb, opts, dir)
	if err != nil {
		return nil, err
	}
	e.root = opts.Dir
	if e.Indexed() < src.Len() {
		e.startMigration()
	}
	e.wg.Add(1)
	go e.run()
	return e, nil
}

// open loads or starts the index of one model in dir, without starting
// its indexer.
func open(src Source, emb nexus.Embedder, opts Options, dir string) (*Engine, error) {
	opts.setDefaults()
	opts.Dir = dir
	e := &Engine{
		src: src, emb: emb, opts: opts, vlog: vectorLogOf(emb, opts.Log), log: opts.Logger.With("model", emb.Model()),
		progress: make(chan struct{}), kick: make(chan struct{}, 1), closing: make(chan struct{}),
		migrated: make(chan struct{}),
	}
	if opts.Fusion != nil {
		e.SetFusion(*opts.Fusion)
	}
	if rc, ok := src.(restoreCounter); ok {
		e.restores.Store(rc.Restores())
	}
	if err := e.load(); err != nil {
		e.loadErr = err
		e.log.Warn("search index not loaded; rebuilding from the store", "reason", err)
		if err := e.reset(); err != nil {
			return nil, err
		}
	}
	if e.done == 0 && src.Len() > 0 {
		if e.vlog != nil {
			known, err := e.loadKnown(context.Background())
			if err != nil {
				e.log.Warn("reading the vector log failed; the rebuild embeds again what it lacks", "err", err)
			}
			e.known = known
		}
		// A local model keeps no vectors: the rebuild embeds every text.
		e.log.Info("rebuilding the search index", "contexts", src.Len(), "vectors kept in git", len(e.known), "local model", e.vlog == nil)
	}
	return e, nil
}

// reset empties the indexes.
func (e *Engine) reset() error {
	vec, err := vector.New(e.emb.Dimension(), e.opts.Vector)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.vec, e.kw, e.tab = vec, keyword.New(e.opts.Keyword), newTable()
	e.cursor, e.done, e.noVec, e.savedAt = nexus.ID{}, 0, nil, -1
	e.freshOrds, e.freshVecs = nil, nil
	e.caughtUp = false
	return nil
}

// closeDrain bounds how long Close lets the indexer catch up first.
const closeDrain = 3 * time.Second

// Close stops indexing and saves the indexes. It first lets the indexer
// catch up with the store for a moment, so that the vectors of the last
// writes are kept in git rather than embedded again at the next start.
// Calling it again does nothing.
func (e *Engine) Close() error {
	err := errAlreadyClosed
	e.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeDrain)
		if werr := e.waitIndexed(ctx, e.src.Len()); werr != nil {
			e.log.Info("closing with contexts not indexed yet; the next start indexes them", "err", werr)
		}
		cancel()
		close(e.closing)
		e.wg.Wait()
		ctx, cancel = context.WithTimeout(context.Background(), closeDrain)
		e.stepMu.Lock()
		e.flushLog(ctx)
		e.stepMu.Unlock()
		cancel()
		err = e.save()
		if prev := e.prev.Swap(nil); prev != nil {
			if perr := prev.Close(); err == nil {
				err = perr
			}
		}
	})
	if err == errAlreadyClosed {
		return nil
	}
	return err
}

var errAlreadyClosed = errors.New("already closed")

// Notify tells the engine that the store has new contexts. It never blocks.
func (e *Engine) Notify() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
	if prev := e.prev.Load(); prev != nil {
		prev.Notify() // it answers searches until e has caught up
	}
}

// run indexes until Close: on every Notify, and once a second to retry
// embeddings and save.
func (e *Engine) run() {
	defer e.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastSave := time.Now()
	progress := e.opts.Progress // only for the first pass: a rebuild or catch-up at start
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-e.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		e.checkRollback(ctx)
		if err := e.follow(ctx, progress); err != nil && ctx.Err() == nil {
			e.log.Warn("indexing failed; will retry", "err", err)
		}
		progress = nil
		e.finishMigration()
		e.retryEmbeddings(ctx)
		e.flushLogIfDue(ctx)
		cancel()
		if time.Since(lastSave) >= e.opts.SaveInterval {
			if err := e.save(); err != nil {
				e.log.Warn("saving the search index failed", "err", err)
			}
			lastSave = time.Now()
		}
		select {
		case <-e.closing:
			return
		case <-e.kick:
		case <-tick.C:
		}
	}
}

// restoreCounter is what a store that can move back in time offers:
// gitstore.Store counts its point-in-time restores.
type restoreCounter interface{ Restores() uint64 }

// checkRollback rebuilds the index when the store moved back in time: it
// ran a restore since the index was built, or it no longer holds the last
// context indexed (a restore made while the index was closed).
func (e *Engine) checkRollback(ctx context.Context) {
	e.mu.RLock()
	cur := e.cursor
	e.mu.RUnlock()
	restored := false
	if rc, ok := e.src.(restoreCounter); ok {
		n := rc.Restores()
		restored = n != e.restores.Swap(n)
	}
	if !restored {
		if cur.IsZero() {
			return
		}
		if _, err := e.src.Get(ctx, cur); nexus.ErrorCode(err) != nexus.ENotFound {
			return
		}
	}
	e.log.Warn("the store was rolled back past the index; rebuilding it", "last_indexed", cur)
	e.stepMu.Lock()
	defer e.stepMu.Unlock()
	if err := e.reset(); err != nil {
		e.log.Error("resetting the index failed", "err", err)
		return
	}
	if e.vlog != nil {
		e.flushLog(ctx) // what waits is in the log the rebuild reads
		known, err := e.loadKnown(ctx)
		if err != nil {
			e.log.Warn("reading the vector log failed; the rebuild embeds again what it lacks", "err", err)
		}
		e.known = known
	}
}

// CatchUp indexes every context stored after the cursor and returns when
// none is left (or ctx is done), reporting to progress if it is not nil.
func (e *Engine) CatchUp(ctx context.Context, progress func(done, total int)) error {
	return e.catchUp(ctx, progress)
}

// follow catches up like CatchUp, but while contexts keep arriving it
// rations the CPU of the graph's building, sleeping after each round, so
// that indexing does not take the cores that durable writes need:
// Options.MaxCPU of one core while the graph keeps up, rising with the
// lag to Options.MaxCPULagging at Options.LagBound contexts behind (see
// ration). A round makes every new context searchable (admit: its
// keywords indexed, its vector put in the fresh segment, which searches
// scan exactly; about a sixth of the work, not rationed) while the fresh
// segment is under Options.FreshMax, then inserts one batch of the fresh
// segment into the graph (link), the costly part. The lag left is made up
// at full speed once writes pause.
func (e *Engine) follow(ctx context.Context, progress func(done, total int)) error {
	busy := false // writes arrived during the last round
	for {
		before := e.src.Len()
		share := math.Inf(1)
		if busy {
			share = e.ration(e.graphLag(before))
		}
		workers := e.opts.Workers
		if share < float64(workers) {
			workers = max(1, int(math.Ceil(share)))
		}
		admitted, linked, linking, err := e.round(ctx, workers)
		if err != nil || admitted+linked == 0 {
			return err
		}
		if progress != nil {
			progress(e.Indexed(), max(before, e.Indexed()))
		}
		if busy = e.src.Len() != before; !busy || share >= float64(workers) {
			continue // writes have paused, or no ration: full speed
		}
		// Only the linking is rationed: pausing for the admitting too
		// lengthens the next round's admitting, and its pause, in turn.
		pause := time.Duration(float64(linking) * (float64(workers)/share - 1))
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// maxAdmitBatches bounds the batches one round admits before it links.
const maxAdmitBatches = 64

// round admits the contexts stored since the cursor (up to
// maxAdmitBatches batches, and while the fresh segment is under FreshMax)
// and links one batch of the fresh segment, which took linking.
func (e *Engine) round(ctx context.Context, workers int) (admitted, linked int, linking time.Duration, err error) {
	e.stepMu.Lock()
	defer e.stepMu.Unlock()
	for range maxAdmitBatches {
		if e.freshLen() >= e.opts.FreshMax {
			break
		}
		n, err := e.admit(ctx, workers)
		if err != nil {
			return admitted, 0, 0, err
		}
		if n == 0 {
			break
		}
		admitted += n
	}
	start := time.Now()
	linked, err = e.link(workers)
	return admitted, linked, time.Since(start), err
}

// graphLag is the contexts of the stored ones (stored of them) that are
// not in the graph yet: those not yet admitted and the fresh segment.
func (e *Engine) graphLag(stored int) int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return max(0, stored-e.done) + len(e.freshOrds)
}

func (e *Engine) freshLen() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.freshOrds)
}

// ration returns the cores the indexer may use while writes keep arriving
// and the index is lag contexts behind: MaxCPU with no lag, rising in
// proportion to MaxCPULagging at LagBound and beyond; +Inf when MaxCPU is
// 1 or more (no ration). More CPU when behind shortens the lag at the cost
// of the write rate; the cap leaves the writes the rest of the cores.
func (e *Engine) ration(lag int) float64 {
	lo, hi := e.opts.MaxCPU, e.opts.MaxCPULagging
	if lo >= 1 {
		return math.Inf(1)
	}
	if hi <= lo {
		return lo
	}
	f := min(1, float64(max(lag, 0))/float64(e.opts.LagBound))
	return lo + (hi-lo)*f
}

func (e *Engine) catchUp(ctx context.Context, progress func(done, total int)) error {
	total := e.src.Len()
	if progress != nil && e.Indexed() >= total {
		progress = nil // nothing to catch up: no bar
	}
	for {
		n, err := e.step(ctx, e.opts.Workers)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if progress != nil {
			progress(e.Indexed(), max(total, e.Indexed()))
		}
	}
}

// step indexes the next batch, adding to the indexes from workers
// goroutines, and returns its size; then it inserts the whole fresh
// segment into the graph. Steps, rounds (and saves) are serialised by
// stepMu: the background indexer and an explicit CatchUp may run at once.
func (e *Engine) step(ctx context.Context, workers int) (int, error) {
	e.stepMu.Lock()
	defer e.stepMu.Unlock()
	n, err := e.admit(ctx, workers)
	if err != nil {
		return 0, err
	}
	for {
		m, err := e.link(workers)
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, nil
		}
	}
}

// admit makes the next batch of contexts searchable and returns its size:
// they are added to the table and the keyword index (from workers
// goroutines), and their vectors to the fresh segment. The caller holds
// stepMu.
func (e *Engine) admit(ctx context.Context, workers int) (int, error) {
	e.mu.RLock()
	cur := e.cursor
	e.mu.RUnlock()
	f := nexus.Filter{Order: nexus.Oldest, Limit: e.opts.Batch}
	if !cur.IsZero() {
		f.Cursor = cur.String()
	}
	page, err := e.src.List(ctx, f)
	if err != nil {
		return 0, fmt.Errorf("list contexts after %s: %w", cur, err)
	}
	cs := page.Contexts
	if len(cs) == 0 {
		e.mu.Lock()
		e.caughtUp = true // nothing stored after the cursor
		e.mu.Unlock()
		return 0, nil
	}
	vecs, embErr := e.vectorsOf(ctx, cs)
	if embErr != nil && ctx.Err() != nil {
		return 0, ctx.Err()
	}
	e.mu.Lock()
	ords := make([]uint32, len(cs))
	for i, c := range cs {
		ords[i] = e.tab.add(c)
		if vecs[i] == nil {
			e.noVec = append(e.noVec, ords[i])
		}
	}
	e.cursor = cs[len(cs)-1].ID
	if embErr != nil {
		e.markFailed(embErr)
	}
	e.mu.Unlock()
	if err := e.addKeywords(cs, ords, workers); err != nil {
		return 0, err
	}
	e.mu.Lock()
	for i, v := range vecs {
		if v != nil {
			e.freshOrds, e.freshVecs = append(e.freshOrds, ords[i]), append(e.freshVecs, v)
		}
	}
	e.mu.Unlock()
	e.advance(len(cs))
	return len(cs), nil
}

// addKeywords adds a batch to the keyword index from workers goroutines.
func (e *Engine) addKeywords(cs []*nexus.Context, ords []uint32, workers int) error {
	return parallel(len(cs), workers, func(i int) error {
		if err := e.kw.Add(ords[i], cs[i].Content); err != nil {
			return fmt.Errorf("keyword index %s: %w", cs[i].ID, err)
		}
		return nil
	})
}

// link inserts the oldest batch of the fresh segment into the graph from
// workers goroutines, then drops it from the segment, and returns its
// size. The caller holds stepMu. A vector the graph refuses is dropped
// too (and the error returned): it would be refused again.
func (e *Engine) link(workers int) (int, error) {
	e.mu.RLock()
	n := min(len(e.freshOrds), e.opts.Batch)
	ords, vecs := e.freshOrds[:n], e.freshVecs[:n]
	e.mu.RUnlock()
	if n == 0 {
		return 0, nil
	}
	err := parallel(n, workers, func(i int) error {
		if err := e.vec.Add(ords[i], vecs[i]); err != nil {
			return fmt.Errorf("vector index, doc %d: %w", ords[i], err)
		}
		return nil
	})
	e.mu.Lock()
	e.freshOrds, e.freshVecs = e.freshOrds[n:], e.freshVecs[n:]
	if len(e.freshOrds) == 0 {
		e.freshOrds, e.freshVecs = nil, nil // let the arrays go
	}
	e.mu.Unlock()
	return n, err
}

// parallel calls f(i) for i in [0, n) from up to workers goroutines. A
// goroutine stops at its first error; the errors are joined.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	errs := make([]error, max(1, min(workers, n)))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// vectorsOf returns the embedding of each context: from the vector log
// read for a rebuild when it has one, else from the embedder (and then
// kept in the log). On an embedder error the contexts it was asked for get
// nil vectors and the error is returned with the others.
func (e *Engine) vectorsOf(ctx context.Context, cs []*nexus.Context) ([][]float32, error) {
	vecs := make([][]float32, len(cs))
	var need []*nexus.Context
	var at []int
	for i, c := range cs {
		if v, ok := e.known[c.ID]; ok {
			vecs[i] = v
			delete(e.known, c.ID)
			continue
		}
		need, at = append(need, c), append(at, i)
	}
	if len(e.known) == 0 {
		e.known = nil
	}
	if len(need) == 0 {
		return vecs, nil
	}
	fresh, err := e.embed(ctx, need)
	if err != nil {
		return vecs, err
	}
	ids := make([]nexus.ID, len(need))
	for j, i := range at {
		vecs[i], ids[j] = fresh[j], need[j].ID
	}
	e.logVectors(ctx, ids, fresh)
	return vecs, nil
}

// embed returns the checked embeddings of cs.
func (e *Engine) embed(ctx context.Context, cs []*nexus.Context) ([][]float32, error) {
	texts := make([]string, len(cs))
	for i, c := range cs {
		texts[i] = c.Content
	}
	vecs, err := e.emb.Embed(ctx, texts)
	if err != nil {
		return nil, err
	}
	if len(vecs) != len(cs) {
		return nil, nexus.Errorf(nexus.EUnavailable, "embedder returned %d vectors for %d texts", len(vecs), len(cs))
	}
	for _, v := range vecs {
		if err := nexus.CheckVector(v, e.emb.Dimension()); err != nil {
			return nil, err
		}
	}
	return vecs, nil
}

func (e *Engine) markFailed(err error) {
	if e.degraded == "" {
		e.log.Warn("embedding failed; indexing keywords only until it recovers", "err", err)
	}
	e.degraded = "embedding provider failed: " + nexus.ErrorMessage(err)
	e.failedAt = time.Now()
}

// advance records n more docs as fully indexed and wakes waiters.
func (e *Engine) advance(n int) {
	e.mu.Lock()
	e.done += n
	close(e.progress)
	e.progress = make(chan struct{})
	e.mu.Unlock()
}

// retryEmbeddings embeds docs that were indexed without a vector, once the
// retry interval has passed since the last failure.
func (e *Engine) retryEmbeddings(ctx context.Context) {
	e.mu.RLock()
	due := len(e.noVec) > 0 && time.Since(e.failedAt) >= e.opts.RetryInterval
	e.mu.RUnlock()
	if !due {
		return
	}
	e.stepMu.Lock()
	defer e.stepMu.Unlock()
	for due && ctx.Err() == nil {
		e.mu.RLock()
		ords := append([]uint32(nil), e.noVec[:min(len(e.noVec), e.opts.Batch)]...)
		ids := make([]nexus.ID, len(ords))
		for i, o := range ords {
			ids[i] = e.tab.docs[o].id
		}
		e.mu.RUnlock()
		cs := make([]*nexus.Context, len(ids))
		for i, id := range ids {
			c, err := e.src.Get(ctx, id)
			if err != nil {
				e.log.Warn("re-reading a context to embed failed", "id", id, "err", err)
				return
			}
			cs[i] = c
		}
		vecs, err := e.embed(ctx, cs)
		if err != nil {
			e.mu.Lock()
			e.markFailed(err)
			e.mu.Unlock()
			return
		}
		e.logVectors(ctx, ids, vecs)
		for i, o := range ords {
			if err := e.vec.Add(o, vecs[i]); err != nil {
				e.log.Warn("vector index add failed", "id", ids[i], "err", err)
			}
		}
		e.mu.Lock()
		e.noVec = e.noVec[len(ords):]
		if len(e.noVec) == 0 {
			e.log.Info("embedding recovered; every context has its vector")
			e.degraded = ""
		}
		due = len(e.noVec) > 0
		e.mu.Unlock()
	}
}

// Indexed is the number of searchable contexts: in the keyword index,
// and in the graph or the fresh segment.
func (e *Engine) Indexed() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.done
}

// Stats describe the engine for health and metrics.
type Stats struct {
	Indexed int `json:"indexed"` // searchable contexts
	Lag     int `json:"lag"`     // stored contexts not yet searchable
	// Fresh counts searchable contexts whose vectors are not yet in the
	// graph: semantic searches scan them exactly.
	Fresh     int    `json:"fresh"`
	NoVector  int    `json:"no_vector"` // indexed for keywords, waiting for an embedding
	Model     string `json:"model"`     // embedding model
	Dimension int    `json:"dimension"` // of its vectors
	Degraded  string `json:"degraded,omitempty"`
	// LogFailures counts embeddings that could not be kept in git.
	LogFailures int64 `json:"log_failures"`
	// MaxLag is the lag above which writes are held back (Pace); Paced
	// counts the writes held back, PacedSeconds the time they waited in
	// all, PaceStalls the writes let through because the index made no
	// progress.
	MaxLag       int     `json:"max_lag"`
	Paced        int64   `json:"paced_writes"`
	PacedSeconds float64 `json:"paced_seconds"`
	PaceStalls   int64   `json:"pace_stalls"`
}

// Stats returns the current figures.
func (e *Engine) Stats() Stats {
	n := e.src.Len()
	e.mu.RLock()
	defer e.mu.RUnlock()
	return Stats{
		Indexed: e.done, Lag: max(0, n-e.done), Fresh: len(e.freshOrds), NoVector: len(e.noVec),
		Model: e.emb.Model(), Dimension: e.emb.Dimension(), Degraded: e.degraded,
		LogFailures: e.logFailures.Load(),
		MaxLag:      e.opts.MaxLag, Paced: e.paced.Load(), PacedSeconds: time.Duration(e.pacedNanos.Load()).Seconds(),
		PaceStalls: e.paceStalls.Load(),
	}
}

// DefaultMaxLag is Options.MaxLag's default.
const DefaultMaxLag = 50_000

// Pace holds a write back while the index is more than Options.MaxLag
// contexts behind the store, and returns once it is not (the indexer,
// no longer seeing writes arrive, catches up at full speed meanwhile).
// It lets the write through without waiting for the lag when the index
// has made no progress for Options.PaceStall, or is closing, and while
// the index has not yet caught up since it was opened or reset (a
// rebuild's lag is not the writes' doing: they are not held back for
// it). It fails only when ctx ends first: nothing was written then.
func (e *Engine) Pace(ctx context.Context) error {
	bound := e.opts.MaxLag
	if bound < 0 {
		return nil
	}
	lag, ch, hold := e.paceState(bound)
	if !hold {
		return nil
	}
	start := time.Now()
	e.paced.Add(1)
	defer func() { e.pacedNanos.Add(int64(time.Since(start))) }()
	e.Notify()
	stall := time.NewTimer(e.opts.PaceStall)
	defer stall.Stop()
	for {
		select {
		case <-ch:
			stall.Reset(e.opts.PaceStall)
		case <-stall.C:
			if e.paceStalls.Add(1) == 1 {
				e.log.Warn("the index made no progress while writes were held back for its lag; letting writes through",
					"lag", lag, "max_lag", bound, "waited", e.opts.PaceStall)
			}
			return nil
		case <-e.closing:
			return nil
		case <-ctx.Done():
			return nexus.WrapError(nexus.EUnavailable, ctx.Err(),
				"the write was held back while the search index caught up (%d contexts behind, at most %d) and the request ended first; nothing was written", lag, bound)
		}
		if lag, ch, hold = e.paceState(bound); !hold {
			return nil
		}
	}
}

// paceState returns the lag, the channel closed at the index's next
// progress, and whether Pace holds writes back at bound: the lag is above
// it and the index has caught up since it was opened or reset.
func (e *Engine) paceState(bound int) (lag int, progress <-chan struct{}, hold bool) {
	n := e.src.Len()
	e.mu.RLock()
	defer e.mu.RUnlock()
	lag = n - e.done
	return lag, e.progress, lag > bound && e.caughtUp
}

// waitIndexed blocks until n contexts are indexed or ctx is done.
func (e *Engine) waitIndexed(ctx context.Context, n int) error {
	e.Notify()
	for {
		e.mu.RLock()
		done, ch := e.done, e.progress
		e.mu.RUnlock()
		if done >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nexus.WrapError(nexus.EUnavailable, ctx.Err(), "index still %d contexts behind", n-done)
		case <-e.closing:
			return nexus.Errorf(nexus.EUnavailable, "search engine is closing")
		}
	}
}
