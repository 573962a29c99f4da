package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/events"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/metrics"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/search"
	"github.com/nexus-mem/nexus/tlsconf"
)

// Node is one running Nexus node: the store, its search engine, the event
// bus, the agents, the recovery cascade and every background job, owned
// together. Open starts it; Close stops every job and waits for it
// before the store closes.
type Node struct {
	cfg     Config
	log     *slog.Logger
	redact  *nexus.Redactor // every error text leaving the node goes through it
	store   *gitstore.Store
	data    nexus.Store    // what requests and jobs write through: the store, or the cluster's log
	cluster *cluster.Node  // nil for a single node
	engine  *currentEngine // nil with NoSearch
	bus     *events.Bus
	agents  *nodeAgents
	mgr     *recovery.Manager
	mets    *metrics.Metrics
	audit   *audit.Log
	health  func(context.Context) nexus.Health
	predict *predictor      // the trends of /health's predictions
	tls     *tlsconf.Server // nil: plain HTTP
	auth    *auth.Set

	incidents *incidentLog // records the node's incidents in its memory

	handler http.Handler
	conns   *connLimiter // counts and caps the connections Serve accepts
	hooks   *eventHooks  // the store's commit and restore hooks feed the bus
	notify  engineNotify // the store's commit hook wakes the indexer

	// services in start order; Close stops them in reverse. events and
	// processes are also stopped by Serve before it drains its server.
	services  []*service
	events    *service
	processes *service
	backups   *service // nil when scheduled backups are off
	repaired  []string // what the open repaired
	opened    time.Time

	// Fault injection by `nexus chaos` (chaos.go, chaos_net.go).
	chaos    chaosState // the fault held, if any
	chaosMu  sync.Mutex // serializes injections
	raftGate *raftGate  // the raft network under chaos; nil unless a cluster node opted in

	// ctx lives as long as the node; its cause says why the node stopped
	// by itself (a *FatalError).
	ctx  context.Context
	stop context.CancelCauseFunc

	closeOnce sync.Once
	closeErr  error
}

// FatalError is why a node stopped by itself: a critical component of the
// cascade could not be recovered. Serve returns it.
type FatalError struct{ Step recovery.Step }

func (f *FatalError) Error() string { return "the node stopped: " + f.Step.String() }

// Open opens the store in cfg.Dir (creating it if there is none, and
// repairing damage it can from the mirror and backups), checks it, and
// starts the search engine, the event bus, the agents and every
// background job. ctx bounds the opening only. On error, whatever was
// started is stopped again.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, opened: time.Now(), redact: nexus.NewRedactor(cfg.Token)}
	if n.log == nil {
		n.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n.log = slog.New(n.redact.Handler(n.log.Handler()))
	removeBallast(cfg.Dir, n.log) // a disk_fill's, if the node was killed during its hold
	if err := n.openTLS(); err != nil {
		return nil, err
	}
	if err := n.openAuth(); err != nil {
		return nil, err
	}
	if n.agents, err = loadNodeAgents(cfg.File, cfg.Dir, n.log, n.redact); err != nil {
		return nil, &ConfigError{Err: err}
	}
	n.ctx, n.stop = context.WithCancelCause(context.Background())
	defer func() {
		if err != nil {
			n.Close(context.Background())
		}
	}()
	if err := n.openStore(ctx); err != nil {
		return nil, err
	}
	if n.audit, err = audit.Open(cfg.auditFile(), audit.Options{Logger: n.log}); err != nil {
		return nil, err
	}
	if err := n.openSearch(ctx); err != nil {
		return nil, err
	}
	if err := n.startEvents(ctx); err != nil {
		return nil, err
	}
	n.observe()
	if err := n.startupCheck(ctx); err != nil {
		return nil, err
	}
	if n.cfg.Cluster.Enabled() {
		// The agent work of the leader: ready before leadership can come.
		n.agents.lead = newLeaderWork(n.ctx, n.agents, n.cfg.ShutdownTimeout)
		if err := n.openCluster(); err != nil {
			return nil, err
		}
	}
	// The task queue and the orchestrator write for requests too: through
	// the access checks of the request's principal.
	if err := n.agents.start(n.ctx, authz.NewStore(n.data), n.bus); err != nil {
		return nil, err
	}
	n.startServices()
	n.handler = n.newHandler()
	return n, nil
}

// openStore opens the store, repairing it offline first if it cannot be
// opened for damage.
func (n *Node) openStore(ctx context.Context) error {
	var hooks eventHooks
	n.hooks = &hooks
	var err error
	n.store, n.repaired, err = OpenRepairing(ctx, n.cfg.Dir, gitstore.Options{
		MaxContent: n.cfg.MaxContent, CacheBytes: n.cfg.CacheBytes, Logger: n.log,
		Progress: n.progress("catalog"), Failpoint: n.cfg.Failpoint,
		OnCommit: func() {
			if e := n.notify.Load(); e != nil {
				e.Notify()
			}
			hooks.commit()
		},
		OnContexts: hooks.added,
		OnRestore:  hooks.restore,
		Encrypt:    n.cfg.Encryption(),
	}, RepairSources(n.cfg.Mirror, n.cfg.backupDir())())
	if err != nil {
		return err
	}
	n.data = n.store
	for _, r := range n.repaired {
		n.log.Warn("repaired at start", "what", r)
	}
	return nil
}

// openSearch opens the search engine over the store, unless NoSearch.
func (n *Node) openSearch(ctx context.Context) error {
	if n.cfg.NoSearch {
		return nil
	}
	emb, learn, err := n.searchEmbedder(ctx)
	if err != nil {
		return err
	}
	var sc config.Search
	if n.cfg.File != nil {
		sc = n.cfg.File.Search
	}
	e, err := search.Open(n.store, emb, search.Options{
		Dir: IndexDir(n.cfg.Dir), Log: n.store.SideLog(), Resolve: resolver(n.store),
		Logger: n.log, Progress: n.progress("index"), Seal: indexSealer(n.store), MaxLag: sc.MaxLag,
	})
	if err != nil {
		return err
	}
	n.engine = newCurrentEngine(e, learn)
	n.notify.Store(n.engine)
	n.store.SetAdmission(func(ctx context.Context) error { return n.engine.engine().Pace(ctx) })
	n.log.Info("search enabled", "model", emb.Model(), "dimension", emb.Dimension())
	return nil
}

// startEvents makes the event bus over the store and runs it.
func (n *Node) startEvents(ctx context.Context) error {
	b, err := events.NewBus(ctx, n.store, events.Options{Logger: n.log})
	if err != nil {
		return err
	}
	n.bus = b
	n.hooks.bus.Store(b)
	n.events = newService("events", func(ctx context.Context) { b.Run(ctx) })
	n.start(n.events)
	return nil
}

// start starts s and makes it the node's to stop.
func (n *Node) start(s *service) {
	n.services = append(n.services, s)
	s.Start(n.ctx)
}

// startServices starts the background jobs: the recovery loop, the
// scrubber, the backup and mirror schedulers, the memory governor, and
// the agents' monitor, lease reaper and supervised processes (on a node
// of a cluster, those run while it leads: see leaderWork).
func (n *Node) startServices() {
	if n.cluster != nil && len(n.cfg.Cluster.Join) > 0 {
		n.start(n.joinService())
	}
	n.start(newService("incidents", func(ctx context.Context) { n.incidents.run(ctx, n.data) }))
	n.start(newService("recovery", n.mgr.Watch))
	if n.cfg.ScrubInterval > 0 {
		n.start(periodic("scrub", n.cfg.ScrubInterval, n.scrub))
	}
	if n.cfg.BackupInterval > 0 {
		n.backups = periodic("backup", n.cfg.BackupInterval, n.scheduledBackup)
		n.start(n.backups)
	}
	if n.cfg.Mirror != "" && n.cfg.MirrorInterval > 0 {
		n.start(periodic("mirror", n.cfg.MirrorInterval, n.pushMirror))
	}
	if budget := memoryBudget(n.cfg.MemoryBudget); budget > 0 {
		g := &governor{store: n.store, budget: budget, cacheBytes: n.cfg.CacheBytes, used: goMemory, mets: n.mets, log: n.log}
		n.start(periodic("memory", n.cfg.MemoryInterval, g.check))
	}
	n.start(periodic("predict", n.predict.cfg.Interval, n.predict.round))
	n.startLearning()
	if n.agents.lead != nil {
		n.agents.lead.activate()
		return
	}
	for _, s := range n.agents.services(n.cfg.ShutdownTimeout) {
		n.start(s)
	}
	n.processes = n.agents.processService(n.cfg.ShutdownTimeout)
	n.start(n.processes)
}

// stopProcesses stops the supervised processes, for good: on a node of a
// cluster, the whole agent work of the leader, which does not start again.
func (n *Node) stopProcesses() {
	if n.processes != nil {
		n.processes.Stop()
	}
	if n.agents.lead != nil {
		n.agents.lead.retire()
	}
}

// Handler is the node's HTTP API (with /mcp, /metrics, /health).
func (n *Node) Handler() http.Handler { return n.handler }

// Serve serves the API on ln (HTTPS if the node has a certificate:
// TLSCert, TLSKey) until ctx ends or the node stops by itself
// (then it returns the *FatalError). Before it returns it stops the
// supervised processes (while the server still answers them), ends the
// event streams and drains in-flight requests for up to
// ShutdownTimeout, so that acknowledged writes finish: the node is then
// shutting down, and Close must follow.
func (n *Node) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           n.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return n.ctx },
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn), // refused TLS handshakes among them
	}
	// The connection cap counts raw connections, under TLS, so that the
	// server still sees *tls.Conn (and answers plain HTTP sent to HTTPS).
	ln, scheme := n.listener(n.conns.wrap(ln))
	n.log.Info("nexus serving", "addr", scheme+"://"+ln.Addr().String(), "data", n.cfg.Dir, "contexts", n.store.Len(), "head", n.store.Head())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	case <-n.ctx.Done():
	}
	n.stopProcesses()
	n.events.Stop()
	if err == nil {
		n.log.Info("shutting down: draining in-flight requests")
		sctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
		err = srv.Shutdown(sctx)
		cancel()
		<-errc
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if f := n.Err(); f != nil {
		return f
	}
	return err
}

// Done is closed when the node stops: by Close, or by itself (Err then
// says why).
func (n *Node) Done() <-chan struct{} { return n.ctx.Done() }

// Err is the *FatalError of a node that stopped by itself, or nil.
func (n *Node) Err() error {
	var f *FatalError
	if errors.As(context.Cause(n.ctx), &f) {
		return f
	}
	return nil
}

// Close stops the supervised processes, the agents (their last
// checkpoints go to the store) and every background job, waits for each,
// then closes the search engine and the store. ctx bounds the agents'
// checkpoints and the processes' stops (default ShutdownTimeout). Close
// may be called more than once.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() { n.closeErr = n.close(ctx) })
	return n.closeErr
}

func (n *Node) close(ctx context.Context) error {
	wait := n.cfg.ShutdownTimeout
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	if n.processes != nil {
		n.processes.Stop()
	}
	if n.agents != nil {
		n.agents.close(wait)
	}
	for i := len(n.services) - 1; i >= 0; i-- {
		n.services[i].Stop()
	}
	if n.incidents != nil {
		n.incidents.shutdown(n.writable())
	}
	if n.stop != nil {
		n.stop(nil)
	}
	var err error
	if n.cluster != nil {
		err = n.cluster.Close()
	}
	if n.engine != nil {
		if eerr := n.engine.Close(); err == nil {
			err = eerr
		}
	}
	if n.store != nil {
		if serr := n.store.Close(); err == nil {
			err = serr
		}
		n.log.Info("stopped", "head", n.store.Head())
	}
	return err
}

// Store is the node's memory: writes are durable when Put returns.
func (n *Node) Store() nexus.Store { return n.data }

// Cluster is the node's part in its cluster, nil for a single node.
func (n *Node) Cluster() *cluster.Node { return n.cluster }

// Apply stores contexts whose ids and timestamps were fixed beforehand
// (by a leader), in one group commit, and returns the new head. Every node
// that applies the same batches in the same order has the same head: are
// two replicas consistent is a comparison of heads.
func (n *Node) Apply(ctx context.Context, batch []*nexus.Context) (string, error) {
	h, err := n.store.Apply(ctx, batch)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// Searcher answers searches; nil when the node runs without search.
func (n *Node) Searcher() nexus.Searcher {
	if n.engine == nil {
		return nil
	}
	return n.engine
}

// Events is the node's live event stream.
func (n *Node) Events() nexus.EventSource { return n.bus }

// Len is the number of live contexts.
func (n *Node) Len() int { return n.store.Len() }

// Head is the commit main points at.
func (n *Node) Head() string { return n.store.Head().String() }

// Repaired lists what Open repaired before the store could be opened.
func (n *Node) Repaired() []string { return n.repaired }

// Health checks every component.
func (n *Node) Health(ctx context.Context) nexus.Health { return n.health(ctx) }

// Services reports the node's background jobs. A node of a cluster lists
// the agents' monitor, lease reaper and supervisor too: running while it
// leads.
func (n *Node) Services() []ServiceStats {
	out := make([]ServiceStats, 0, len(n.services))
	for _, s := range n.services {
		out = append(out, s.Stats())
	}
	if n.agents != nil && n.agents.lead != nil {
		out = append(out, n.agents.lead.stats()...)
	}
	return out
}

// progress makes a rebuild's progress reporter, or nil.
func (n *Node) progress(what string) func(done, total int) { return progressOf(n.cfg.Progress, what) }

// engineNotify is set once the search engine exists, for the store's
// commit hook.
type engineNotify = atomic.Pointer[currentEngine]

// ResolveEmbedder makes the embedder of a model other than the configured
// one when it can: the built-in hashing models of any dimension. After a
// model change, the previous index then serves until the new one is built.
func ResolveEmbedder(model string) (nexus.Embedder, bool) {
	d, ok := strings.CutPrefix(model, "nexus-hash-v1-")
	if !ok {
		return nil, false
	}
	n, err := strconv.Atoi(d)
	if err != nil || n <= 0 || n > 1<<16 {
		return nil, false
	}
	h := embed.NewHashing(n)
	return h, h.Model() == model
}

func fsckMode(deep bool) string {
	if deep {
		return "deep"
	}
	return "fast"
}
