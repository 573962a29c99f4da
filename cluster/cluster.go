package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// Config is one node's part in a cluster.
type Config struct {
	// NodeID names the node in the cluster; it never changes.
	NodeID string
	// RaftAddr is where the node listens for its peers (host:port).
	RaftAddr string
	// Advertise is the address peers dial (default RaftAddr).
	Advertise string
	// APIURL is the node's HTTP API as its peers reach it: followers
	// forward writes to the leader's.
	APIURL string
	// Dir holds the raft log, its state and the snapshots.
	Dir string
	// Bootstrap makes a new cluster of this node alone.
	Bootstrap bool

	Timeouts Timeouts
	// SnapshotThreshold is the number of entries applied since the last
	// snapshot that makes a new one; TrailingLogs the entries kept after
	// it for slow followers; SnapshotInterval how often it is checked.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	SnapshotInterval  time.Duration
	// ApplyTimeout bounds a write's wait for its entry to be enqueued and
	// applied (default 30 s).
	ApplyTimeout time.Duration

	// ServerTLS and ClientTLS secure the peer network (both or neither).
	ServerTLS, ClientTLS *tls.Config
	// Listener, if set, is used instead of listening on RaftAddr.
	Listener net.Listener
	// Dial, if set, dials peers (tests route the network through faults).
	Dial func(addr string, timeout time.Duration) (net.Conn, error)

	// OnLeader is called with true once this node leads and has applied
	// every entry of earlier terms (it may then take writes), and with
	// false when it stops leading. Calls are in order, from one goroutine.
	OnLeader func(leading bool)
	// OnFatal is called once if the store fails for good while applying.
	OnFatal func(error)
	// OnEvent, if set, hears of leader changes ("cluster.leader":
	// {"leader","node"}) and membership changes ("cluster.member":
	// {"action":"added"|"removed","id","node"}).
	OnEvent func(typ string, data map[string]any)
	// FetchHistory fetches a member's history (a git bundle of main, as
	// GET /v1/admin/history serves it) from the first of apiURLs that
	// gives it, into a file whose path it returns (the caller removes it).
	// A node that joins a cluster bootstrapped over existing contexts
	// needs it.
	FetchHistory func(ctx context.Context, apiURLs []string) (string, error)
	// Phase runs one phase of a cluster recovery plan on this node.
	Phase func(ctx context.Context, plan, phase string) error

	Logger *slog.Logger
	Now    func() time.Time
}

// Timeouts are raft's failure detection. Lower values fail over faster
// and need a steadier network and less loaded machines.
type Timeouts struct {
	Heartbeat   time.Duration // a follower without contact for this long starts an election
	Election    time.Duration // a candidate without a result for this long starts another
	LeaderLease time.Duration // a leader without contact with a quorum for this long steps down
	Commit      time.Duration // the longest a follower waits to learn of a commit
}

// DefaultTimeouts are a node's: a follower notices a lost leader within
// 0.5–1 s (raft randomises the timeout between one and two heartbeat
// timeouts); the leader lease is raft's own.
func DefaultTimeouts() Timeouts {
	return Timeouts{Heartbeat: 500 * time.Millisecond, Election: 500 * time.Millisecond, LeaderLease: 500 * time.Millisecond, Commit: 50 * time.Millisecond}
}

// FastTimeouts notice a lost leader within 0.25–0.5 s, for a quiet local
// network; a loaded machine makes them hold needless elections.
func FastTimeouts() Timeouts {
	return Timeouts{Heartbeat: 250 * time.Millisecond, Election: 250 * time.Millisecond, LeaderLease: 250 * time.Millisecond, Commit: 20 * time.Millisecond}
}

// RaftTimeouts are hashicorp/raft's own defaults (1 s): the most patient,
// for machines under heavy load (the tests run with them).
func RaftTimeouts() Timeouts {
	return Timeouts{Heartbeat: time.Second, Election: time.Second, LeaderLease: 500 * time.Millisecond, Commit: 50 * time.Millisecond}
}

// Node is this node's part in the cluster: its raft instance over the
// store.
type Node struct {
	cfg    Config
	log    *slog.Logger
	store  *gitstore.Store
	raft   *raft.Raft
	fsm    *fsm
	snaps  *snapshots
	trans  *raft.NetworkTransport
	db     *raftboltdb.BoltStore
	stable *stableStore // raft's view of db's stable store, closed before db
	logs   raft.LogStore

	// stamping: the leader's clock of ids and timestamps, ahead of what
	// is applied by what it proposed.
	stampMu sync.Mutex
	gen     nexus.IDGenerator
	lastTS  int64
	ready   atomic.Bool // leads, and has applied every earlier entry

	leaderChanges atomic.Uint64
	lastLeader    atomic.Pointer[string] // the last leader known (id)
	onApply       atomic.Pointer[func(time.Duration)]
	done          chan struct{}
	wg            sync.WaitGroup
	closeOnce     sync.Once
}

// Open starts the node's raft over store. A node with no raft state
// either bootstraps a cluster (Config.Bootstrap) or waits to be added by
// the leader (Join asks it).
func Open(cfg Config, store *gitstore.Store) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if store.Encrypted() {
		return nil, nexus.Errorf(nexus.EInvalid, "cluster mode does not support encryption at rest yet: every node would seal with its own data key")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), store: store, done: make(chan struct{})}
	var err error
	if n.snaps, err = newSnapshots(filepath.Join(cfg.Dir, "snapshots"), store, 2); err != nil {
		return nil, err
	}
	if n.db, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")}); err != nil {
		return nil, fmt.Errorf("open the raft log: %w", err)
	}
	has, err := raft.HasExistingState(n.db, n.db, n.snaps)
	if err != nil {
		n.db.Close()
		return nil, err
	}
	if !has && !cfg.Bootstrap && store.Len() > 0 {
		n.db.Close()
		return nil, nexus.Errorf(nexus.EInvalid, "cluster: a node that joins a cluster starts with an empty data directory (this one holds %d contexts); bootstrap a new cluster from it instead, or empty it", store.Len())
	}
	if n.fsm, err = newFSM(store, cfg.Dir, !has, n.log); err != nil {
		n.db.Close()
		return nil, err
	}
	n.fsm.fatal = n.fatal
	n.fsm.fetch = cfg.FetchHistory
	if !has && cfg.Bootstrap && store.Len() > 0 {
		// The cluster starts from this store's history: the first entry
		// the node proposes as leader records it for the others.
		if err := writeJSON(n.fsm.basePath(), baseEntry{Head: store.Head().String(), From: cfg.APIURL}); err != nil {
			n.db.Close()
			return nil, err
		}
	}
	if cfg.Phase != nil {
		n.fsm.phase = func(ctx context.Context, p phaseEntry) error { return cfg.Phase(ctx, p.Plan, p.Phase) }
	}
	n.fsm.stats = n.snaps.stats
	// Raft replays only the entries after its newest snapshot, which the
	// repository already holds.
	if list, err := n.snaps.List(); err == nil && len(list) > 0 && list[0].Index > n.fsm.applied.Load() {
		n.fsm.applied.Store(list[0].Index)
	}
	if err := n.openTransport(); err != nil {
		n.db.Close()
		return nil, err
	}
	logs, err := raft.NewLogCache(1024, n.db)
	if err != nil {
		n.close()
		return nil, err
	}
	n.logs = logs
	notify := make(chan bool, 16)
	rc := n.raftConfig(notify)
	n.stable = &stableStore{s: n.db}
	if n.raft, err = raft.NewRaft(rc, n.fsm, logs, n.stable, n.snaps, n.trans); err != nil {
		n.close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.wg.Add(3)
	go func() { defer n.wg.Done(); n.fsm.applier() }()
	go n.watchLeadership(notify)
	go n.watchLeader()
	if cfg.Bootstrap {
		if !has {
			f := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(cfg.NodeID), Address: n.trans.LocalAddr()}}})
			if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
				n.Close()
				return nil, fmt.Errorf("bootstrap: %w", err)
			}
		}
	}
	return n, nil
}

func (c *Config) validate() error {
	if c.NodeID == "" {
		return nexus.Errorf(nexus.EInvalid, "cluster: a node id is required")
	}
	if c.RaftAddr == "" && c.Listener == nil {
		return nexus.Errorf(nexus.EInvalid, "cluster: a raft address is required")
	}
	if c.Dir == "" {
		return nexus.Errorf(nexus.EInvalid, "cluster: a directory is required")
	}
	if (c.ServerTLS == nil) != (c.ClientTLS == nil) {
		return nexus.Errorf(nexus.EInvalid, "cluster: peer TLS needs both a server and a client configuration")
	}
	if c.Timeouts == (Timeouts{}) {
		c.Timeouts = DefaultTimeouts()
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 2 * time.Minute
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

func (n *Node) openTransport() error {
	ln := n.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", n.cfg.RaftAddr); err != nil {
			return nexus.WrapError(nexus.EInvalid, err, "cluster: cannot listen on the raft address %s", n.cfg.RaftAddr)
		}
	}
	if n.cfg.ServerTLS != nil {
		ln = tls.NewListener(ln, n.cfg.ServerTLS)
	}
	adv := ln.Addr()
	if n.cfg.Advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", n.cfg.Advertise)
		if err != nil {
			ln.Close()
			return nexus.WrapError(nexus.EInvalid, err, "cluster: bad advertised address %s", n.cfg.Advertise)
		}
		adv = a
	}
	layer := &streamLayer{Listener: ln, advertise: adv, client: n.cfg.ClientTLS, dial: n.cfg.Dial}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 3, Timeout: 10 * time.Second, Logger: hclogger(n.log, "raft-net"),
		// No pipelined replication: after a follower refuses an append (a
		// stale term, a log gap) raft v1.7.2's pipeline can park its sender
		// and its decoder on each other for good; the follower then gets
		// heartbeats but no entries, and Shutdown never returns. Found by
		// node's TestCluster_Nemesis; synchronous appends cost little here.
		MaxRPCsInFlight: 1,
	})
	return nil
}

func (n *Node) raftConfig(notify chan bool) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	t := n.cfg.Timeouts
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout, rc.CommitTimeout = t.Heartbeat, t.Election, t.LeaderLease, t.Commit
	rc.SnapshotThreshold, rc.TrailingLogs, rc.SnapshotInterval = n.cfg.SnapshotThreshold, n.cfg.TrailingLogs, n.cfg.SnapshotInterval
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	// The repository is the state: a restart keeps it, and the log after
	// the last snapshot is replayed over it (entries it has are skipped).
	rc.NoSnapshotRestoreOnStart = true
	rc.NotifyCh = notify
	rc.Logger = hclogger(n.log, "raft")
	return rc
}

// watchLeadership follows leadership: a new leader first applies every
// entry of earlier terms (a barrier), so that its clock of ids and
// timestamps starts after everything committed, then takes writes.
func (n *Node) watchLeadership(notify <-chan bool) {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case leading := <-notify:
			if !leading {
				n.ready.Store(false)
				n.log.Info("no longer the leader")
				if n.cfg.OnLeader != nil {
					n.cfg.OnLeader(false)
				}
				continue
			}
			if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
				n.log.Warn("new leader could not apply earlier entries", "err", err)
				continue
			}
			n.fsm.flush() // and committed them to git
			if err := n.proposeBase(); err != nil {
				n.log.Warn("new leader could not record the cluster's base history", "err", err)
				continue
			}
			n.resetClock()
			n.ready.Store(true)
			n.log.Info("leading", "term", n.raft.CurrentTerm(), "applied", n.raft.AppliedIndex())
			n.announce()
			if n.cfg.OnLeader != nil {
				n.cfg.OnLeader(true)
			}
		}
	}
}

// watchLeader follows who leads, as raft observes it.
func (n *Node) watchLeader() {
	defer n.wg.Done()
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	for {
		select {
		case <-n.done:
			return
		case o := <-ch:
			lo := o.Data.(raft.LeaderObservation)
			if lo.LeaderID != "" {
				id := string(lo.LeaderID)
				n.lastLeader.Store(&id)
			}
			n.leaderChanges.Add(1)
			n.log.Info("leader observed", "leader", lo.LeaderID)
			n.event("cluster.leader", map[string]any{"leader": string(lo.LeaderID)})
		}
	}
}

// proposeBase records, once, the history a cluster bootstrapped over an
// existing store started from, before any write.
func (n *Node) proposeBase() error {
	b, err := os.ReadFile(n.fsm.basePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var be baseEntry
	if err := json.Unmarshal(b, &be); err != nil {
		return err
	}
	be.From = n.cfg.APIURL
	data, err := encode(kindBase, &be)
	if err != nil {
		return err
	}
	res, err := n.propose(context.Background(), data)
	if err != nil {
		return err
	}
	return res.err
}

// announce records this node's API address in the log when the log does
// not have it yet.
func (n *Node) announce() {
	me := Member{ID: n.cfg.NodeID, RaftAddr: string(n.trans.LocalAddr()), APIURL: n.cfg.APIURL}
	if n.fsm.Members()[me.ID] == me {
		return
	}
	go func() {
		if err := n.applyMember(me); err != nil {
			n.log.Warn("cannot record this node's address", "err", err)
		}
	}()
}

func (n *Node) applyMember(m Member) error {
	data, err := encode(kindMember, &m)
	if err != nil {
		return err
	}
	_, err = n.propose(context.Background(), data)
	return err
}

// resetClock starts the leader's clock after the newest applied context.
func (n *Node) resetClock() {
	n.stampMu.Lock()
	defer n.stampMu.Unlock()
	if id, ts, ok := n.store.Last(); ok {
		n.gen.Observe(id)
		n.lastTS = max(n.lastTS, ts.UnixNano())
	}
}

// stampLocked gives a draft its id and timestamp, after every one
// proposed.
func (n *Node) stampLocked(d *nexus.Draft) *nexus.Context {
	ts := n.cfg.Now().UnixNano()
	if ts <= n.lastTS {
		ts = n.lastTS + 1
	}
	n.lastTS = ts
	t := time.Unix(0, ts).UTC()
	return &nexus.Context{
		ID: n.gen.New(t), Namespace: d.Namespace, Type: d.Type, AgentID: d.AgentID,
		ParentID: d.ParentID, Timestamp: t, Metadata: d.Metadata, Content: d.Content, Principal: d.Principal,
		SemanticHash: nexus.SemanticHash(d.Type, d.Content, d.Metadata),
	}
}

// Put writes a context through the log: it returns once a quorum has the
// entry and this node (the leader) committed it to git. A node that does
// not lead answers no_quorum naming the leader it knows.
func (n *Node) Put(ctx context.Context, d nexus.Draft) (*nexus.Context, error) {
	if err := d.Normalize(n.store.MaxContent()); err != nil {
		return nil, err
	}
	if err := n.writable(); err != nil {
		return nil, err
	}
	// Ids and timestamps must reach the log in the order they were
	// given: stamp and enqueue under one lock (enqueueing does not wait
	// for the entry to commit).
	n.stampMu.Lock()
	c := n.stampLocked(&d)
	data, err := encode(kindPut, &putEntry{Contexts: []*nexus.Context{c}})
	if err != nil {
		n.stampMu.Unlock()
		return nil, nexus.WrapError(nexus.EInternal, err, "encode")
	}
	start := time.Now()
	f := n.raft.Apply(data, n.applyTimeout(ctx))
	n.stampMu.Unlock()
	res, err := n.result(f, start)
	if err != nil {
		return nil, err
	}
	if res.err != nil {
		return nil, res.err
	}
	return res.contexts[0], nil
}

// Restore rewinds every node to the state at at, through the log.
func (n *Node) Restore(ctx context.Context, at time.Time) error {
	if err := n.writable(); err != nil {
		return err
	}
	data, err := encode(kindRestore, &restoreEntry{At: at})
	if err != nil {
		return err
	}
	res, err := n.propose(ctx, data)
	if err != nil {
		return err
	}
	return res.err
}

// RunPhase has every node run one phase of a recovery plan; it returns
// this node's (the leader's) result once a quorum has the entry.
func (n *Node) RunPhase(ctx context.Context, plan, phase string) error {
	if err := n.writable(); err != nil {
		return err
	}
	data, err := encode(kindPhase, &phaseEntry{Plan: plan, Phase: phase})
	if err != nil {
		return err
	}
	res, err := n.propose(ctx, data)
	if err != nil {
		return err
	}
	return res.err
}

// writable says why this node cannot take a write now.
func (n *Node) writable() error {
	if n.ready.Load() {
		return nil
	}
	if n.raft.State() == raft.Leader {
		return nexus.Errorf(nexus.EUnavailable, "this node was just elected and is applying earlier entries; retry")
	}
	return n.notLeader()
}

func (n *Node) notLeader() error {
	if addr, id := n.raft.LeaderWithID(); addr != "" {
		return &NotLeaderError{Leader: string(id), APIURL: n.fsm.Members()[string(id)].APIURL}
	}
	last := "none"
	if l := n.lastLeader.Load(); l != nil {
		last = *l
	}
	return nexus.Errorf(nexus.ENoQuorum, "node %s cannot reach a quorum of its cluster (last known leader: %s); nothing was written", n.cfg.NodeID, last)
}

// NotLeaderError says which node leads: the write was not made here.
type NotLeaderError struct {
	Leader string // its node id
	APIURL string // its API, where the request may be sent ("" if not known yet)
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("no_quorum: this node does not lead; the leader is %s (%s)", e.Leader, e.APIURL)
}

// Unwrap makes it a no_quorum error for clients that do not follow it.
func (e *NotLeaderError) Unwrap() error {
	return nexus.Errorf(nexus.ENoQuorum, "this node does not lead the cluster: send writes to %s (%s)", e.Leader, e.APIURL)
}

// propose appends data to the log and waits for this node to apply it.
func (n *Node) propose(ctx context.Context, data []byte) (*applyResult, error) {
	start := time.Now()
	return n.result(n.raft.Apply(data, n.applyTimeout(ctx)), start)
}

func (n *Node) applyTimeout(ctx context.Context) time.Duration {
	timeout := n.cfg.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	return timeout
}

// result waits for an entry to be applied here.
func (n *Node) result(f raft.ApplyFuture, start time.Time) (*applyResult, error) {
	if err := f.Error(); err != nil {
		return nil, n.applyError(err)
	}
	res, _ := f.Response().(*applyResult)
	if res == nil {
		return nil, nexus.Errorf(nexus.EInternal, "the log entry gave no result")
	}
	res.wait(n.done) // a put: until the applier committed it to git
	took := time.Since(start)
	if f := n.onApply.Load(); f != nil {
		(*f)(took)
	}
	return res, nil
}

// applyError explains why an entry was not confirmed: not proposed at all
// (no leader here), or proposed and then the leadership was lost (it may
// still be committed by the next leader).
func (n *Node) applyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return n.notLeader()
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return nexus.WrapError(nexus.EUnavailable, err, "the log did not take the write in time; nothing was written")
	case errors.Is(err, raft.ErrLeadershipLost):
		return nexus.WrapError(nexus.EOutcomeUnknown, err, "this node lost its leadership before the write was confirmed: it may or may not be stored")
	case errors.Is(err, raft.ErrRaftShutdown):
		return nexus.WrapError(nexus.EOutcomeUnknown, err, "the node stopped before the write was confirmed: it may or may not be stored")
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return nexus.WrapError(nexus.EUnavailable, err, "leadership is moving to another node; nothing was written, retry")
	}
	return nexus.WrapError(nexus.EOutcomeUnknown, err, "the write was not confirmed: it may or may not be stored")
}

// SetOnApply has f told how long each write of this node took from its
// proposal to its application here.
func (n *Node) SetOnApply(f func(time.Duration)) { n.onApply.Store(&f) }

func (n *Node) event(typ string, data map[string]any) {
	if n.cfg.OnEvent != nil {
		data["node"] = n.cfg.NodeID
		n.cfg.OnEvent(typ, data)
	}
}

func (n *Node) fatal(err error) {
	if n.cfg.OnFatal != nil {
		n.cfg.OnFatal(err)
	}
}

// Close stops raft (this node leaves no one waiting: writes in flight
// answer outcome_unknown) and its network. The store stays open.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		close(n.fsm.quit)
		close(n.done)
		if n.raft != nil {
			err = n.raft.Shutdown().Error()
		}
		n.wg.Wait()
		if cerr := n.close(); err == nil {
			err = cerr
		}
	})
	return err
}

func (n *Node) close() error {
	var err error
	if n.trans != nil {
		err = n.trans.Close()
	}
	if n.stable != nil {
		n.stable.close()
	}
	if n.db != nil {
		if cerr := n.db.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
