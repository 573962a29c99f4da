package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/node"
)

// clusterBenchConfig sizes `nexus bench cluster`.
type clusterBenchConfig struct {
	dir         string
	keep        bool
	parts       map[string]bool
	size        int
	clients     int
	duration    time.Duration
	kills       int
	timeouts    []string
	raft        string
	loadClients int
	probeEvery  time.Duration
	catchup     int
	trailing    uint64
	snapshotN   int
	search      bool
	timeout     time.Duration
	profile     string // CPU profiles of the throughput runs: PROFILE-single.pprof, PROFILE-leader.pprof
}

// benchParts are the parts of `nexus bench cluster`, in the order they run.
var benchParts = []string{"throughput", "failover", "catchup", "snapshot"}

// benchTimeouts are the raft timeouts the failover part can measure.
var benchTimeouts = map[string]func() cluster.Timeouts{"default": cluster.DefaultTimeouts, "fast": cluster.FastTimeouts, "raft": cluster.RaftTimeouts}

// runBenchCluster measures cluster mode on in-process nodes over loopback:
// write throughput of a 3-node cluster against a single node, leader
// failover, a follower's catch-up from the log and from a snapshot, and a
// snapshot sent to a wiped follower.
func runBenchCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clusterBenchConfig{}
	only := fs.String("only", strings.Join(benchParts, ","), "parts to run: "+strings.Join(benchParts, ", "))
	fs.IntVar(&c.size, "size", 1024, "content bytes per context")
	fs.IntVar(&c.clients, "clients", 64, "concurrent HTTP writers of the throughput part")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "duration of each throughput run")
	fs.IntVar(&c.kills, "kills", 20, "leader kills per timeout setting")
	timeouts := fs.String("timeouts", "default,fast", "raft timeouts of the failover part, comma-separated: default, fast, raft")
	fs.StringVar(&c.raft, "raft", "default", "raft timeouts of the throughput and catch-up clusters: default, fast or raft")
	fs.IntVar(&c.loadClients, "failover-clients", 4, "writers of the light load during a failover (each writes every 10 ms)")
	fs.DurationVar(&c.probeEvery, "probe-every", 5*time.Millisecond, "pause between two attempts of a failover probe")
	fs.IntVar(&c.catchup, "catchup", 5000, "contexts written while a follower is stopped")
	trailing := fs.Uint64("trailing-logs", 1024, "log entries the leader keeps after a snapshot (the snapshot cases)")
	fs.IntVar(&c.snapshotN, "snapshot-contexts", 20000, "contexts in the store when a wiped follower gets a snapshot (filled before the cluster forms)")
	fs.BoolVar(&c.search, "search", false, "run the nodes with their search indexes (off: the store and replication alone)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "longest wait for any one event")
	fs.StringVar(&c.dir, "dir", "", "work directory (default: a new temp dir)")
	fs.StringVar(&c.profile, "cpuprofile", "", "write CPU profiles of the single-node and cluster-leader throughput runs to `PREFIX`-single.pprof and PREFIX-leader.pprof")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory (the nodes' data and logs)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	c.trailing = *trailing
	c.parts = map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		if !slices.Contains(benchParts, p) {
			return usagef("unknown part %q: want some of %s", p, strings.Join(benchParts, ", "))
		}
		c.parts[p] = true
	}
	for _, t := range strings.Split(*timeouts, ",") {
		if benchTimeouts[t] == nil {
			return usagef("unknown timeouts %q: want default, fast or raft", t)
		}
		c.timeouts = append(c.timeouts, t)
	}
	if benchTimeouts[c.raft] == nil {
		return usagef("unknown --raft %q: want default, fast or raft", c.raft)
	}
	if c.size <= 0 || c.clients <= 0 || c.duration <= 0 || c.kills <= 0 || c.loadClients <= 0 || c.probeEvery <= 0 ||
		c.catchup <= 0 || c.trailing == 0 || c.snapshotN <= 0 || c.timeout <= 0 {
		return usagef("every size, count and duration must be positive")
	}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "nexus-bench-cluster-")
		if err != nil {
			return err
		}
		c.dir = d
	}
	if !c.keep {
		defer os.RemoveAll(c.dir)
	}
	b := &clusterBench{cfg: c, out: stdout, log: stderr}
	return b.run(ctx)
}

// clusterBench runs the parts of `nexus bench cluster`.
type clusterBench struct {
	cfg      clusterBenchConfig
	out, log io.Writer
}

func (b *clusterBench) say(format string, args ...any) { fmt.Fprintf(b.log, format+"\n", args...) }

func (b *clusterBench) run(ctx context.Context) error {
	search := "off"
	if b.cfg.search {
		search = "on"
	}
	fmt.Fprintf(b.out, "# nexus bench cluster — %s, %d B contexts, GOMAXPROCS %d, load average %s\n\n",
		time.Now().UTC().Format(time.RFC3339), b.cfg.size, runtime.GOMAXPROCS(0), loadAverage())
	fmt.Fprintf(b.out, "nodes: in-process (node.Open) in this one process, API and raft on loopback, search %s; every node of a cluster shares the same cores\n\n", search)
	if b.cfg.parts["throughput"] {
		if err := b.throughput(ctx); err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
	}
	if b.cfg.parts["failover"] {
		fmt.Fprintf(b.out, "leader failover: the leader is killed under a light load (%d writers, one write each every 10 ms, spread over the nodes): every connection it has is cut at once — raft and API listeners closed, every raft connection (both ways) and API connection closed, no dial out — as its peers see a killed process; no leave, no leadership transfer. A client on each remaining node retries a write every %s. Then the killed node is closed, opened again on its data and ports, and the cluster converges before the next kill.\n\n",
			b.cfg.loadClients, b.cfg.probeEvery)
		fmt.Fprintf(b.out, "| timeouts (heartbeat / election / lease) | kills | kill → new leader ready, p50 / p99 / max | kill → first write acknowledged, p50 / p99 / max | bar (p99) | killed node restarted → converged, p50 / max |\n|---|---:|---:|---:|---|---:|\n")
		for _, t := range b.cfg.timeouts {
			if err := b.failover(ctx, t); err != nil {
				return fmt.Errorf("failover (%s timeouts): %w", t, err)
			}
		}
		fmt.Fprintln(b.out)
	}
	if b.cfg.parts["catchup"] || b.cfg.parts["snapshot"] {
		if err := b.catchUp(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(b.out, "load average at the end: %s\n", loadAverage())
	return nil
}

// nodeConfig is the configuration of a bench node in dir serving on
// addr: no scheduled backup or scrub, no rate limit (the bench measures
// the node, not its limit), no memory governor.
func (b *clusterBench) nodeConfig(dir, addr string) node.Config {
	cfg := node.DefaultConfig()
	cfg.Dir, cfg.Addr = dir, addr
	cfg.BackupInterval, cfg.ScrubInterval = 0, 0
	cfg.MemoryBudget = -1
	cfg.Limits.RateLimit = 0
	cfg.NoSearch = !b.cfg.search
	cfg.ShutdownTimeout = 10 * time.Second
	return cfg
}

// benchCluster is three in-process nodes of one cluster.
type benchCluster struct {
	b       *clusterBench
	members []*benchMember
}

// openCluster opens a 3-node cluster in a new directory: the first node
// bootstraps it, the others join through its API. Afterwards a node that
// opens again (restarted or wiped) joins through the others. With a seed
// (a data directory), the first node starts from a copy of it: the others
// join empty and fetch that history (the cluster's base) before anything
// else.
func (b *clusterBench) openCluster(ctx context.Context, name string, cc node.ClusterConfig, seed string) (*benchCluster, error) {
	cl := &benchCluster{b: b}
	for i := range 3 {
		api, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			cl.close()
			return nil, err
		}
		raft, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			api.Close()
			cl.close()
			return nil, err
		}
		id := fmt.Sprintf("n%d", i+1)
		cfg := b.nodeConfig(filepath.Join(b.cfg.dir, name, id), api.Addr().String())
		cfg.Cluster = cc
		cfg.Cluster.NodeID, cfg.Cluster.RaftAddr = id, raft.Addr().String()
		cfg.Cluster.APIURL, cfg.Cluster.Bootstrap = "http://"+cfg.Addr, i == 0
		if i > 0 {
			cfg.Cluster.Join = []string{cl.members[0].url}
		}
		m := &benchMember{id: id, cfg: cfg}
		if seed != "" && i == 0 {
			if err := copyTree(seed, cfg.Dir); err != nil {
				api.Close()
				raft.Close()
				cl.close()
				return nil, fmt.Errorf("copy the store: %w", err)
			}
		}
		if err := openMember(ctx, m, api, raft); err != nil {
			cl.close()
			return nil, err
		}
		cl.members = append(cl.members, m)
		if i == 0 {
			if _, err := cl.leader(ctx); err != nil {
				cl.close()
				return nil, err
			}
		}
	}
	err := b.until(ctx, "every node to join", time.Millisecond*5, func() bool {
		for _, m := range cl.members {
			if len(m.n.Cluster().Status().Members) != len(cl.members) {
				return false
			}
		}
		return true
	})
	if err != nil {
		cl.close()
		return nil, err
	}
	for _, m := range cl.members {
		m.cfg.Cluster.Bootstrap, m.cfg.Cluster.Join = false, nil
		for _, o := range cl.members {
			if o != m {
				m.cfg.Cluster.Join = append(m.cfg.Cluster.Join, o.url)
			}
		}
	}
	return cl, nil
}

func (cl *benchCluster) close() {
	for _, m := range cl.members {
		m.close()
	}
}

// up is whether m runs and was not killed.
func (m *benchMember) up() bool { return m.n != nil && !m.sw.isDead() }

// leader waits for a running node to lead and take writes.
func (cl *benchCluster) leader(ctx context.Context) (*benchMember, error) {
	var l *benchMember
	err := cl.b.until(ctx, "a leader", time.Millisecond, func() bool {
		for _, m := range cl.members {
			if m.up() && m.n.Cluster().IsLeader() {
				l = m
				return true
			}
		}
		return false
	})
	return l, err
}

// followers are the running nodes other than l.
func (cl *benchCluster) followers(l *benchMember) []*benchMember {
	var out []*benchMember
	for _, m := range cl.members {
		if m != l && m.up() {
			out = append(out, m)
		}
	}
	return out
}

// caughtUp is whether m applied as far as l and has its head.
func caughtUp(m, l *benchMember) bool {
	return m.n.Cluster().AppliedIndex() >= l.n.Cluster().AppliedIndex() && m.n.Head() == l.n.Head()
}

// converge waits until every running node applied as far as the leader
// and has its head.
func (cl *benchCluster) converge(ctx context.Context) error {
	return cl.b.until(ctx, "the nodes to converge", 2*time.Millisecond, func() bool {
		var l *benchMember
		for _, m := range cl.members {
			if m.up() && m.n.Cluster().IsLeader() {
				l = m
			}
		}
		if l == nil {
			return false
		}
		for _, m := range cl.members {
			if m.up() && !caughtUp(m, l) {
				return false
			}
		}
		return true
	})
}

// until polls cond every poll until it holds, failing after the
// bench's --timeout.
func (b *clusterBench) until(ctx context.Context, what string, poll time.Duration, cond func() bool) error {
	deadline := time.Now().Add(b.cfg.timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s", what, b.cfg.timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
	return nil
}

// throughput measures HTTP writes against a single node, the leader of a
// 3-node cluster, and the cluster's two followers (which forward them).
func (b *clusterBench) throughput(ctx context.Context) error {
	c := b.cfg
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	single := &benchMember{id: "single", cfg: b.nodeConfig(filepath.Join(c.dir, "single", "single"), api.Addr().String())}
	if err := openMember(ctx, single, api, nil); err != nil {
		return err
	}
	b.say("throughput: single node, %d clients for %s", c.clients, c.duration)
	var one *loadResult
	if err := b.profiled("single", func() {
		one = load(ctx, c.clients, c.duration, 0, writeOp(benchClient(single.url, "", c.clients), c.size))
	}); err != nil {
		single.close()
		return err
	}
	single.close()
	if one.Ops == 0 {
		return fmt.Errorf("no write succeeded on the single node: %v", one)
	}
	cl, err := b.openCluster(ctx, "throughput", node.ClusterConfig{Timeouts: benchTimeouts[c.raft]()}, "")
	if err != nil {
		return err
	}
	defer cl.close()
	l, err := cl.leader(ctx)
	if err != nil {
		return err
	}
	b.say("throughput: 3-node cluster, %d clients on the leader for %s", c.clients, c.duration)
	var lead *loadResult
	if err := b.profiled("leader", func() { lead = load(ctx, c.clients, c.duration, 0, writeOp(benchClient(l.url, "", c.clients), c.size)) }); err != nil {
		return err
	}
	if err := cl.converge(ctx); err != nil {
		return err
	}
	var stores []nexus.Store
	for _, f := range cl.followers(l) {
		stores = append(stores, benchClient(f.url, "", c.clients))
	}
	b.say("throughput: 3-node cluster, %d clients on the followers for %s", c.clients, c.duration)
	fwd := load(ctx, c.clients, c.duration, 0, spreadWriteOp(stores, c.size))
	if err := cl.converge(ctx); err != nil {
		return err
	}
	for _, r := range []*loadResult{lead, fwd} {
		if r.Ops == 0 {
			return fmt.Errorf("no write succeeded on the cluster: %v", r)
		}
	}
	fmt.Fprintf(b.out, "write throughput: %d HTTP clients writing %d B contexts for %s each, every write acknowledged once durable (a quorum holds it and the leader committed it to git); raft: %s timeouts\n\n", c.clients, c.size, c.duration, c.raft)
	fmt.Fprintf(b.out, "| writes | writes/s | p50 | p99 | errors | vs single node | CPU per write | cores busy |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	row := func(what string, r *loadResult) {
		errs := fmt.Sprint(r.Errors)
		if r.firstErr != nil {
			errs += " (first: " + describe(r.firstErr) + ")"
		}
		fmt.Fprintf(b.out, "| %s | %.0f | %s | %s | %s | %.2f | %s | %.2f |\n", what, r.rate(), r.pct(0.5).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond), errs, r.rate()/one.rate(), r.cpuPerOp().Round(time.Microsecond), r.cores())
	}
	row("single node", one)
	row("3-node cluster, clients on the leader", lead)
	row("3-node cluster, clients on the two followers (forwarded to the leader)", fwd)
	ratio := lead.rate() / one.rate()
	fmt.Fprintf(b.out, "\n3-node cluster (leader) / single node: %.2f (bar ≥ 0.50): %s\n\n", ratio, met(ratio >= 0.5))
	return nil
}

// profiled runs f under the CPU profiler when --cpuprofile is set,
// writing PREFIX-name.pprof.
func (b *clusterBench) profiled(name string, f func()) error {
	if b.cfg.profile == "" {
		f()
		return nil
	}
	out, err := os.Create(b.cfg.profile + "-" + name + ".pprof")
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return err
	}
	f()
	pprof.StopCPUProfile()
	return out.Close()
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// spreadWriteOp stores contexts through the clients, worker w through
// clients[w % len].
func spreadWriteOp(clients []nexus.Store, size int) func(context.Context, int) error {
	return func(ctx context.Context, w int) error {
		_, err := clients[w%len(clients)].Put(ctx, nexus.Draft{Type: nexus.TypeObservation, Content: benchPayload(size), AgentID: fmt.Sprintf("bench-%d", w), Namespace: "bench"})
		return err
	}
}

// failoverRound is what one leader kill gave.
type failoverRound struct {
	ready, acked, rejoined time.Duration
}

// failover kills the leader of a cluster with the named timeouts
// --kills times.
func (b *clusterBench) failover(ctx context.Context, name string) error {
	t := benchTimeouts[name]()
	cl, err := b.openCluster(ctx, "failover-"+name, node.ClusterConfig{Timeouts: t}, "")
	if err != nil {
		return err
	}
	defer cl.close()
	var ready, acked, rejoined []time.Duration
	for i := range b.cfg.kills {
		if err := cl.converge(ctx); err != nil {
			return err
		}
		old, err := cl.leader(ctx)
		if err != nil {
			return err
		}
		r, err := cl.killLeader(ctx, old)
		if err != nil {
			return fmt.Errorf("kill %d: %w", i+1, err)
		}
		b.say("failover (%s): kill %d of %s: new leader ready after %s, first write acknowledged after %s", name, i+1, old.id, r.ready, r.acked)
		ready, acked, rejoined = append(ready, r.ready), append(acked, r.acked), append(rejoined, r.rejoined)
	}
	var each []string
	for _, d := range acked {
		each = append(each, fmt.Sprintf("%.3f", d.Seconds()))
	}
	b.say("failover (%s): kill → first write acknowledged, each kill in order (s): %s", name, strings.Join(each, " "))
	bar := 2 * time.Second
	if name == "fast" {
		bar = time.Second
	}
	p99 := pctOf(acked, 0.99)
	fmt.Fprintf(b.out, "| %s (%s / %s / %s) | %d | %s | %s | ≤ %s — %s | %s / %s |\n",
		name, t.Heartbeat, t.Election, t.LeaderLease, len(acked), spread3(ready), spread3(acked), bar, met(p99 <= bar),
		secs(pctOf(rejoined, 0.5)), secs(pctOf(rejoined, 1)))
	return nil
}

// killLeader kills old (the leader) under a light load, times the new
// leader and its first acknowledged write, then restarts old and waits
// for the cluster to converge.
func (cl *benchCluster) killLeader(ctx context.Context, old *benchMember) (failoverRound, error) {
	b := cl.b
	var r failoverRound
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var acks atomic.Int64
	body := benchPayload(b.cfg.size)
	for w := range b.cfg.loadClients {
		c := benchClient(cl.members[w%len(cl.members)].url, "", 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lctx.Err() == nil {
				if _, err := c.Put(lctx, nexus.Draft{Type: nexus.TypeObservation, Namespace: "bench", Content: body}); err == nil {
					acks.Add(1)
				}
				select {
				case <-lctx.Done():
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
	}
	defer func() { stopLoad(); wg.Wait() }()
	if err := b.until(ctx, "the light load to run", time.Millisecond, func() bool { return acks.Load() >= int64(2*b.cfg.loadClients) }); err != nil {
		return r, err
	}
	others := cl.followers(old)
	t0 := time.Now()
	old.kill()
	pctx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	first := make(chan time.Time, len(others))
	for _, m := range others {
		c := benchClient(m.url, "", 1)
		go func() {
			for pctx.Err() == nil {
				actx, cancel := context.WithTimeout(pctx, 2*time.Second)
				_, err := c.Put(actx, nexus.Draft{Type: nexus.TypeObservation, Namespace: "bench", Content: "failover probe"})
				cancel()
				if err == nil {
					first <- time.Now()
					return
				}
				select {
				case <-pctx.Done():
				case <-time.After(b.cfg.probeEvery):
				}
			}
		}()
	}
	var readyAt time.Time
	err := b.until(ctx, "a new leader", time.Millisecond, func() bool {
		for _, m := range others {
			if m.n.Cluster().IsLeader() {
				readyAt = time.Now()
				return true
			}
		}
		return false
	})
	if err != nil {
		return r, err
	}
	timer := time.NewTimer(b.cfg.timeout)
	defer timer.Stop()
	select {
	case ackAt := <-first:
		r.acked = ackAt.Sub(t0)
	case <-timer.C:
		return r, fmt.Errorf("no write acknowledged within %s of the kill", b.cfg.timeout)
	case <-ctx.Done():
		return r, ctx.Err()
	}
	r.ready = min(readyAt.Sub(t0), r.acked) // polled: an acknowledgement proves the leader was ready
	stopProbes()
	stopLoad()
	wg.Wait()
	if err := old.closeKilled(); err != nil {
		return r, fmt.Errorf("close the killed node: %w", err)
	}
	t1 := time.Now()
	if err := openMember(ctx, old, nil, nil); err != nil {
		return r, err
	}
	if err := cl.converge(ctx); err != nil {
		return r, err
	}
	r.rejoined = time.Since(t1)
	return r, nil
}

// pctOf is the p quantile of d (sorted in place): the value at index
// p×(len−1), rounded down.
func pctOf(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[int(p*float64(len(d)-1))]
}

func spread3(d []time.Duration) string {
	return fmt.Sprintf("%s / %s / %s", secs3(pctOf(d, 0.5)), secs3(pctOf(d, 0.99)), secs3(pctOf(d, 1)))
}

func secs3(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

// catchUp measures a follower's catch-up after it was stopped while the
// others took writes, from the log and then from a snapshot, and a
// wiped follower given the whole store as a snapshot.
func (b *clusterBench) catchUp(ctx context.Context) error {
	c := b.cfg
	fmt.Fprintf(b.out, "catch-up: a follower stopped, contexts written through the leader (in process, 256 writers), the follower opened again; timed from its open to its applied index and head equal to the leader's. Until the leader sends: the leader retries a follower it lost with a growing backoff (raft's, up to ≈ 10 s), so the first entry (from the log) or the making of the bundle (a snapshot) starts a while after the open; the rate counts from then. Raft: %s timeouts, no automatic snapshot; a forced snapshot keeps %d log entries.\n\n", c.raft, c.trailing)
	fmt.Fprintf(b.out, "| case | contexts behind | written at (contexts/s) | open | until the leader sends | caught up after | rate (after the leader sends) | snapshot |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
	// No automatic snapshot (the log is kept whole until one is forced);
	// a forced one keeps --trailing-logs entries.
	cc := node.ClusterConfig{Timeouts: benchTimeouts[c.raft](), SnapshotThreshold: 1 << 40, TrailingLogs: c.trailing}
	if c.parts["catchup"] {
		cl, err := b.openCluster(ctx, "catchup", cc, "")
		if err != nil {
			return err
		}
		for _, snap := range []bool{false, true} {
			if err := b.rejoin(ctx, cl, rejoinCase{n: c.catchup, snapshot: snap}); err != nil {
				cl.close()
				return fmt.Errorf("catch-up: %w", err)
			}
		}
		cl.close()
	}
	if c.parts["snapshot"] {
		// The store predates its cluster: filled in one place through
		// Store.Apply, the first node's (the others fetch it when they
		// join), then a few contexts more
		// through the log.
		seed := filepath.Join(c.dir, "snapshot", "seed")
		b.say("snapshot: filling a store with %d contexts (Store.Apply, batches of 1024)", c.snapshotN)
		t0 := time.Now()
		if err := fillTo(ctx, seed, c.snapshotN, c.size); err != nil {
			return fmt.Errorf("fill the store: %w", err)
		}
		fill := time.Since(t0)
		cl, err := b.openCluster(ctx, "snapshot", cc, seed)
		if err != nil {
			return err
		}
		defer cl.close()
		// More entries than the log keeps after a snapshot: the log no
		// longer reaches back to its start, and the wiped follower must
		// take the snapshot (replaying the log would not give it the
		// contexts filled before the cluster formed).
		logged := int(c.trailing) + 256
		if err := b.rejoin(ctx, cl, rejoinCase{n: logged, snapshot: true, wipe: true}); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		fmt.Fprintf(b.out, "\nThe wiped follower's case: %d contexts filled through Store.Apply in batches of 1024 (%s, %.0f contexts/s) before the cluster formed, on the node that bootstraps it (the two others fetch it as the cluster's base when they join), then %d written through the log (more than the %d entries kept after the snapshot); the snapshot's bundle holds the whole history of main.\n",
			c.snapshotN, secs(fill), float64(c.snapshotN)/fill.Seconds(), logged, c.trailing)
	}
	fmt.Fprintln(b.out)
	return nil
}

// rejoinCase is one catch-up of a follower: stopped while n contexts
// are written through the leader (with wipe: written first, then the
// follower stopped and its data deleted), a snapshot forced before it
// opens again if snapshot.
type rejoinCase struct {
	n              int
	snapshot, wipe bool
}

func (b *clusterBench) rejoin(ctx context.Context, cl *benchCluster, rc rejoinCase) error {
	if err := cl.converge(ctx); err != nil {
		return err
	}
	l, err := cl.leader(ctx)
	if err != nil {
		return err
	}
	f := cl.followers(l)[0]
	n := rc.n
	what := "from the log"
	switch {
	case rc.wipe:
		what = "wiped follower, from a snapshot"
	case rc.snapshot:
		what = "from a snapshot"
	}
	if !rc.wipe {
		if err := f.stop(); err != nil {
			return fmt.Errorf("stop %s: %w", f.id, err)
		}
		b.say("catch-up (%s): %s stopped; writing %d contexts", what, f.id, n)
	} else {
		b.say("catch-up (%s): writing %d contexts", what, n)
	}
	rate, retried, err := b.bulkPut(ctx, cl, n)
	if err != nil {
		return err
	}
	// The leader may have changed during the writes (not to f, stopped).
	if l, err = cl.leader(ctx); err != nil {
		return err
	}
	if rc.wipe {
		if err := cl.converge(ctx); err != nil {
			return err
		}
		f = cl.followers(l)[0]
	}
	if rc.snapshot {
		// On the node that leads when the follower returns: its log is
		// the one compacted.
		for {
			if err := l.n.Cluster().Snapshot(); err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			now, err := cl.leader(ctx)
			if err != nil {
				return err
			}
			if now == l {
				break
			}
			l = now
		}
		if rc.wipe && f == l {
			f = cl.followers(l)[0]
		}
	}
	if rc.wipe {
		if err := f.stop(); err != nil {
			return fmt.Errorf("stop %s: %w", f.id, err)
		}
		if err := os.RemoveAll(f.cfg.Dir); err != nil {
			return err
		}
		b.say("catch-up (%s): %s stopped and its data directory deleted", what, f.id)
	}
	sentBefore := l.n.Cluster().SnapshotStats().Sent
	snapDir := filepath.Join(node.RaftDir(f.cfg.Dir), "snapshots")
	had := dirNames(snapDir)
	b.say("catch-up (%s): opening %s again", what, f.id)
	t0 := time.Now()
	if err := openMember(ctx, f, nil, nil); err != nil {
		return err
	}
	opened := time.Since(t0)
	behind := l.n.Len() - f.n.Len()
	from := f.n.Cluster().AppliedIndex()
	// first: the first entry applied here; received: a snapshot's
	// transfer began (its directory appeared).
	var first, received time.Duration
	var diverged time.Time
	firstBatch := 0
	err = b.until(ctx, f.id+" to catch up", 2*time.Millisecond, func() bool {
		// Applied as far as the leader, with nothing being written, yet
		// another head: the replicas differ.
		if f.n.Cluster().AppliedIndex() >= l.n.Cluster().AppliedIndex() && f.n.Head() != l.n.Head() {
			if diverged.IsZero() {
				diverged = time.Now()
			} else if time.Since(diverged) > time.Second {
				return true
			}
		} else {
			diverged = time.Time{}
		}
		if first == 0 && f.n.Cluster().AppliedIndex() > from {
			first, firstBatch = time.Since(t0), behind-(l.n.Len()-f.n.Len())
		}
		if rc.snapshot && received == 0 && len(dirNames(snapDir)) > len(had) {
			received = time.Since(t0)
		}
		return caughtUp(f, l)
	})
	if err != nil {
		return err
	}
	took := time.Since(t0)
	if !caughtUp(f, l) {
		return fmt.Errorf("%s applied as far as the leader (index %d) but its head is %s (%d contexts), the leader's %s (%d contexts): the replicas differ",
			f.id, f.n.Cluster().AppliedIndex(), f.n.Head(), f.n.Len(), l.n.Head(), l.n.Len())
	}
	if f.n.Len() != l.n.Len() {
		return fmt.Errorf("%s caught up with %d contexts, the leader holds %d", f.id, f.n.Len(), l.n.Len())
	}
	fst, lst := f.n.Cluster().SnapshotStats(), l.n.Cluster().SnapshotStats()
	wait, snap := first, "—"
	counted := behind - firstBatch // the log's rate counts from the first batch applied
	switch {
	case rc.snapshot && fst.Installed == 0:
		return fmt.Errorf("%s caught up without installing a snapshot", f.id)
	case !rc.snapshot && fst.Installed > 0:
		return fmt.Errorf("%s installed a snapshot: the log did not reach back far enough", f.id)
	case rc.snapshot && lst.Sent == sentBefore:
		return fmt.Errorf("the leader %s made no bundle for this snapshot", l.id)
	case rc.snapshot:
		repo, err := dirBytes(filepath.Join(l.cfg.Dir, "repo.git"))
		if err != nil {
			return err
		}
		if received == 0 {
			received = took - fst.InstallTime // the transfer was quicker than a poll
		}
		// The leader began making the bundle when it decided to send it.
		wait, counted = max(received-lst.BundleTime, 0), behind
		transfer := max(took-received-fst.InstallTime, 0)
		snap = fmt.Sprintf("%.1f MB (leader's repository %.1f MB); bundle made in %s, sent and received in %s, installed in %s",
			float64(lst.BundleBytes)/1e6, float64(repo)/1e6, secs(lst.BundleTime), secs(transfer), secs(fst.InstallTime))
	}
	written := fmt.Sprintf("%.0f", rate)
	if retried > 0 {
		written += fmt.Sprintf(" (%d writes retried after a leader change)", retried)
	}
	rate2 := "— (one batch)"
	if counted > 0 && took > wait {
		rate2 = fmt.Sprintf("%.0f contexts/s", float64(counted)/(took-wait).Seconds())
	}
	fmt.Fprintf(b.out, "| %s (%d contexts in the store) | %d | %s | %s | %s | %s | %s | %s |\n",
		what, l.n.Len(), behind, written, secs(opened), secs(wait), secs(took), rate2, snap)
	return nil
}

// dirNames lists the names in dir (none if it does not exist).
func dirNames(dir string) []string {
	ents, _ := os.ReadDir(dir)
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// bulkPut writes n contexts through the cluster's log in process, from
// 256 writers, each on the node that leads; it returns the rate and how
// many writes were retried after a leader change (a retried write whose
// first try had an unknown outcome may be stored twice).
func (b *clusterBench) bulkPut(ctx context.Context, cl *benchCluster, n int) (float64, int, error) {
	if n <= 0 {
		return 0, 0, nil
	}
	var next, done, retried atomic.Int64
	errs := make(chan error, 256)
	start := time.Now()
	for range 256 {
		go func() {
			l, err := cl.leader(ctx)
			for err == nil && next.Add(1) <= int64(n) {
				d := nexus.Draft{Type: nexus.TypeObservation, Namespace: "bench", AgentID: "bulk", Content: benchPayload(b.cfg.size)}
				for {
					if _, err = l.n.Store().Put(ctx, d); err == nil {
						break
					}
					retried.Add(1)
					if time.Since(start) > b.cfg.timeout {
						break
					}
					if l, err = cl.leader(ctx); err != nil {
						break
					}
				}
				done.Add(1)
			}
			errs <- err
		}()
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	var first error
	for left := 256; left > 0; {
		select {
		case err := <-errs:
			left--
			if err != nil && first == nil {
				first = err
				next.Store(int64(n)) // the others stop at their next write
			}
		case <-tick.C:
			b.say("  %d/%d written", done.Load(), n)
		}
	}
	if first != nil {
		return 0, 0, fmt.Errorf("bulk write through the leader: %w", first)
	}
	return float64(n) / time.Since(start).Seconds(), int(retried.Load()), nil
}

// dirBytes is the size of the regular files under dir.
func dirBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}
