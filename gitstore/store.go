package gitstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nexus-mem/nexus"
)

// Options configure a Store. The zero value works.
type Options struct {
	MaxContent   int           // bytes of content per context; 0: nexus.DefaultMaxContent
	CacheBytes   int64         // L1 cache budget; 0: 64 MiB
	MaxBatch     int           // most contexts per group commit; 0: 1024
	SaveInterval time.Duration // how often the catalog is persisted; 0: 30s
	MergePacks   int           // packs of one size tier merged together; 0: 8
	Logger       *slog.Logger
	// Progress, if set, is called while the catalog is rebuilt or caught up
	// with the number of contexts processed so far and the estimated total.
	Progress func(done, total int)
	// Failpoint, if set, is called at "pack-written", "ref-moved" and
	// "catalog-updated" during each group commit. A non-nil error fails the
	// batch at that point; tests use it to crash or fail there.
	Failpoint func(point string) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnCommit, if set, is called by the writer after each group commit
	// is acknowledged (e.g. to wake an indexer). It must not block.
	OnCommit func()
	// OnContexts, if set, is called by the writer after each group commit
	// of contexts, before OnCommit, with the newest context id the
	// store held before it (zero: none) and the contexts it added, in
	// commit order (an event bus publishes them without reading them
	// back). It must not block nor modify them.
	OnContexts func(prev nexus.ID, added []Added)
	// OnRestore, if set, is called by the writer after a point-in-time
	// restore moved main back (before OnCommit, and before any later
	// commit), with its plan. It must not block.
	OnRestore func(RestorePlan)
	// Encrypt, if set, turns on encryption at rest (a new store) or gives
	// the master key of an encrypted one. An encrypted store refuses to
	// open without it.
	Encrypt *Encryption
}

func (o *Options) setDefaults() {
	if o.MaxContent <= 0 {
		o.MaxContent = nexus.DefaultMaxContent
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 64 << 20
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.SaveInterval <= 0 {
		o.SaveInterval = 30 * time.Second
	}
	if o.MergePacks <= 0 {
		o.MergePacks = 8
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is the on-disk context store. It is safe for concurrent use.
type Store struct {
	dir   string
	opts  Options
	log   *slog.Logger
	lock  *os.File
	repo  *repo
	cat   *catalog
	cache *cache
	// admit, if set, is asked before each new context is written
	// (SetAdmission).
	admit atomic.Pointer[func(context.Context) error]

	reqs    chan *request
	closing chan struct{}
	// sendMu orders sends on reqs before Close: submit holds it for
	// reading while it sends, Close for writing while it sets shut and
	// closes closing. No request is queued after the writer drained.
	sendMu sync.RWMutex
	shut   bool
	// refMu is held by the writer from moving main until the catalog
	// follows it, and for reading by whoever compares the two (health).
	refMu     sync.RWMutex
	mergeKick chan struct{}
	mergeMu   sync.Mutex // held by a merge, and by a deep fsck to pause merging
	wg        sync.WaitGroup
	close     sync.Once

	// Owned by the writer goroutine.
	trees  *trees
	pw     *packWriter
	gen    nexus.IDGenerator
	lastTS int64

	failMu sync.Mutex
	failed error // set when a write left the repository in an unknown state

	diskFull    atomic.Pointer[string]      // why the last group commit failed for lack of space, or nil
	lastDeep    atomic.Pointer[FsckReport]  // the last deep integrity check
	corruptSeen atomic.Int64                // corrupt reads the last deep check accounts for
	orphanMarks atomic.Pointer[orphanMarks] // what refs/nexus/orphans holds, once known
	memPressure atomic.Bool                 // the cache was shrunk under memory pressure
	restores    atomic.Uint64               // point-in-time restores run since Open
	keys        atomic.Pointer[keyring]     // the data keys of an encrypted store, or nil
	logIndex    atomic.Uint64               // the Log-Index of the head commit (replicated stores)
}

var _ nexus.Store = (*Store)(nil)

// request is one write waiting for the writer: a draft to be assigned an id
// and timestamp, (from Apply) contexts with fixed ids and timestamps, or
// an append to a side ref.
type request struct {
	draft   *nexus.Draft
	fixed   []*nexus.Context
	side    *sideWrite
	restore *restoreReq
	fixRef  *fixRefReq
	rekey   *keyring
	install *installReq
	group   []*request // ApplyLog: one request per log entry, committed together
	index   uint64     // the replicated log index of fixed (0: none)
	done    chan result
}

type result struct {
	ctx  *nexus.Context
	blob []byte // ctx's stored JSON (a draft's only)
	head Hash
	err  error
}

// Open opens (creating if needed) the store in dir. It takes the directory
// lock, recovers from any interrupted write, and brings the catalog up to
// date with the repository.
func Open(dir string, opts Options) (*Store, error) {
	opts.setDefaults()
	if err := mkdirDurable(dir); err != nil {
		return nil, wrapIOError(err, "create data directory")
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir: dir, opts: opts, log: opts.Logger, lock: lock,
		cache:     newCache(opts.CacheBytes),
		reqs:      make(chan *request, 4096),
		closing:   make(chan struct{}),
		mergeKick: make(chan struct{}, 1),
		pw:        newPackWriter(),
	}
	if err := removeScratch(dir); err != nil {
		s.unlock()
		return nil, wrapIOError(err, "remove scratch files")
	}
	if err := s.openRepo(); err != nil {
		s.unlock()
		return nil, err
	}
	if err := s.loadLogIndex(); err != nil {
		// Recovery repairs the head; a replica then learns its index again.
		s.log.Warn("cannot read the log index of the head commit", "err", err)
	}
	s.wg.Add(4)
	go func() { defer s.wg.Done(); s.repo.spares.run(s.closing) }()
	go s.writer()
	go s.background()
	go s.merger()
	s.kickMerge()
	return s, nil
}

func (s *Store) openRepo() error {
	gitDir := filepath.Join(s.dir, "repo.git")
	if err := s.refuseLostRepo(gitDir); err != nil {
		return err
	}
	if err := initRepo(gitDir); err != nil {
		return wrapIOError(err, "create repository")
	}
	if did, err := fixHEAD(gitDir); err != nil {
		return wrapIOError(err, "repair HEAD")
	} else if did != "" {
		s.log.Warn("repository repaired at open", "what", did)
	}
	// The catalog file is read while the pack indexes are: at a million
	// contexts each is a few hundred MB of fresh memory, whose page faults
	// are most of a start's time, and the two take a core each.
	cat := make(chan loadedCatalog, 1)
	go func() {
		c, err := loadCatalog(s.dir)
		cat <- loadedCatalog{c, err}
	}()
	r, err := openRepo(gitDir)
	if err != nil {
		<-cat
		return nexus.WrapError(nexus.EUnavailable, err, "cannot open repository %s (run `nexus fsck`)", gitDir)
	}
	s.repo = r
	s.trees = newTrees(r)
	head, err := r.readRef()
	if err != nil {
		<-cat
		r.close()
		return nexus.WrapError(nexus.EUnavailable, err, "cannot read %s (run `nexus fsck`)", mainRef)
	}
	if err := s.openKeys(head); err != nil {
		<-cat
		r.close()
		return err
	}
	if err := s.loadCatalog(head, <-cat); err != nil {
		r.close()
		return err
	}
	if n := len(s.cat.ordered); n > 0 {
		last := s.cat.ordered[n-1]
		s.gen.Observe(last.id)
		s.lastTS = last.ts
	}
	return nil
}

// refuseLostRepo refuses to create a repository where one was: a data
// directory with a catalog but no repository lost its repository (deleted
// or moved), and an empty one in its place would serve none of what was
// acknowledged.
func (s *Store) refuseLostRepo(gitDir string) error {
	if _, err := os.Stat(filepath.Join(gitDir, "HEAD")); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(s.dir, catalogFile)); err != nil {
		return nil // a new data directory
	}
	return nexus.Errorf(nexus.EUnavailable, "%s is missing, but %s held a store (its %s is there): the repository was deleted or moved; "+
		"put it back, or restore a backup (nexus backup restore FILE --data %s --replace); to start an empty store there, remove %s",
		gitDir, s.dir, catalogFile, s.dir, filepath.Join(s.dir, catalogFile))
}

// ErrInUse is the cause of the conflict that opening a data directory
// reports when another process (a running server) holds it.
var ErrInUse = errors.New("data directory in use")

// lockDir makes dir private (0700) and takes an exclusive, non-blocking
// flock on dir/LOCK. The kernel
// drops it when the process dies, so a crash never leaves a stale lock.
func lockDir(dir string) (*os.File, error) {
	if err := os.Chmod(dir, privateDir); err != nil {
		return nil, wrapIOError(err, "make the data directory private")
	}
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, privateFile)
	if err != nil {
		return nil, wrapIOError(err, "open lock file")
	}
	if err := f.Chmod(privateFile); err != nil {
		f.Close()
		return nil, wrapIOError(err, "make the lock file private")
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		return nil, nexus.WrapError(nexus.EConflict, ErrInUse, "data directory %s is in use by %s", dir, lockHolder(strings.TrimSpace(string(b))))
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// lockHolder names the process whose id the lock file holds, with its
// command line where the system shows it.
func lockHolder(pid string) string {
	if _, err := strconv.Atoi(pid); err != nil {
		return "another process"
	}
	b, err := os.ReadFile("/proc/" + pid + "/cmdline")
	cmd := strings.Join(strings.Fields(strings.ReplaceAll(string(b), "\x00", " ")), " ")
	if err != nil || cmd == "" {
		return "process " + pid
	}
	if len(cmd) > 200 {
		cmd = cmd[:200] + "…"
	}
	return fmt.Sprintf("process %s (%s)", pid, cmd)
}

func (s *Store) unlock() {
	if s.lock != nil {
		s.lock.Truncate(0)
		s.lock.Close()
		s.lock = nil
	}
}

// Close stops the writer after the writes already queued, saves the
// catalog if it moved since it was loaded or saved, and releases the
// directory lock.
func (s *Store) Close() error {
	var err error
	s.close.Do(func() {
		s.sendMu.Lock()
		s.shut = true
		close(s.closing)
		s.sendMu.Unlock()
		s.wg.Wait()
		if s.failure() == nil && s.cat.unsaved() {
			err = s.cat.save(s.dir)
		}
		s.repo.close()
		s.repo.removeRefSpares() // no temp file outlives the store
		s.unlock()
	})
	return err
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// GitDir returns the path of the bare repository.
func (s *Store) GitDir() string { return filepath.Join(s.dir, "repo.git") }

// Head returns the commit the store is at (zero for an empty store).
func (s *Store) Head() Hash {
	s.cat.mu.RLock()
	defer s.cat.mu.RUnlock()
	return s.cat.head
}

// Len returns the number of live contexts.
func (s *Store) Len() int { return s.cat.len() }

// CacheStats reports on the L1 cache.
func (s *Store) CacheStats() CacheStats { return s.cache.stats() }

// Ready reports whether the store accepts writes.
func (s *Store) Ready() error { return s.failure() }

func (s *Store) failure() error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	return s.failed
}

func (s *Store) fail(err error) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if s.failed == nil {
		s.failed = nexus.WrapError(nexus.EUnavailable, err, "the store stopped accepting writes after a storage failure; restart it to recover")
		s.log.Error("store failed", "err", err)
	}
}

// Put validates d and stores it as a new context, returning once the commit
// that holds it is durable.
func (s *Store) Put(ctx context.Context, d nexus.Draft) (*nexus.Context, error) {
	c, _, err := s.PutRaw(ctx, d)
	return c, err
}

// PutRaw is [Store.Put] that also returns the stored JSON of the new
// context, the bytes [Store.GetRaw] returns (the API's JSON and a
// newline), which must not be modified.
func (s *Store) PutRaw(ctx context.Context, d nexus.Draft) (*nexus.Context, []byte, error) {
	if err := d.Normalize(s.opts.MaxContent); err != nil {
		return nil, nil, err
	}
	if err := s.checkParent(d.Namespace, d.ParentID, nil); err != nil {
		return nil, nil, err
	}
	if err := s.Admit(ctx); err != nil {
		return nil, nil, err
	}
	r, err := s.submit(ctx, &request{draft: &d})
	if err != nil {
		return nil, nil, err
	}
	return r.ctx, r.blob, nil
}

// SetAdmission makes f the check each new context passes before it is
// written (Put, PutRaw; not Apply, whose contexts a leader admitted): f
// may hold the write back, as the search index does while it is too far
// behind, or refuse it with an error, and then nothing is written. nil
// removes the check.
func (s *Store) SetAdmission(f func(context.Context) error) {
	if f == nil {
		s.admit.Store(nil)
		return
	}
	s.admit.Store(&f)
}

// Admit runs the check SetAdmission set, if any: a cluster's leader asks
// it before proposing a write.
func (s *Store) Admit(ctx context.Context) error {
	if f := s.admit.Load(); f != nil {
		return (*f)(ctx)
	}
	return nil
}

// Apply stores contexts whose ids and timestamps were fixed beforehand, in
// one group commit, and returns the new head. The same batch applied to the
// same state always yields byte-identical objects and the same head.
func (s *Store) Apply(ctx context.Context, batch []*nexus.Context) (Hash, error) {
	if len(batch) == 0 {
		return s.Head(), nil
	}
	r, err := s.submit(ctx, &request{fixed: batch})
	return r.head, err
}

func (s *Store) submit(ctx context.Context, req *request) (result, error) {
	if err := s.failure(); err != nil {
		return result{}, err
	}
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	req.done = make(chan result, 1)
	if err := s.send(ctx, req); err != nil {
		return result{}, err
	}
	select {
	case r := <-req.done:
		return r, r.err
	case <-ctx.Done():
		// The write may still be committed: its outcome is unknown to us.
		return result{}, ctx.Err()
	}
}

// send queues req for the writer, unless the store is closing: a request
// queued once the writer drained would never be answered.
func (s *Store) send(ctx context.Context, req *request) error {
	s.sendMu.RLock()
	defer s.sendMu.RUnlock()
	if s.shut {
		return nexus.Errorf(nexus.EUnavailable, "the store is shutting down")
	}
	select {
	case s.reqs <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkParent verifies that parent (if set) is a live context of ns, either
// committed or earlier in the pending batch.
func (s *Store) checkParent(ns string, parent nexus.ID, pending map[nexus.ID]string) error {
	if parent.IsZero() {
		return nil
	}
	pns, ok := pending[parent]
	if !ok {
		e, found := s.cat.get(parent)
		if !found {
			return nexus.Errorf(nexus.EInvalid, "parent %s does not exist", parent)
		}
		pns = e.ns
	}
	if pns != ns {
		return nexus.Errorf(nexus.EInvalid, "parent %s is in namespace %q, not %q: a thread stays in one namespace", parent, pns, ns)
	}
	return nil
}

func wrapIOError(err error, what string) error {
	if isNoSpace(err) {
		return nexus.WrapError(nexus.EInsufficientStorage, err, "%s: %s; nothing was written", what, noSpace(err))
	}
	return nexus.WrapError(nexus.EInternal, err, "%s", what)
}
