package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/tlsconf"
)

// ClusterConfig is a node's part in a cluster. A node without a NodeID is
// a single node (no raft at all).
type ClusterConfig struct {
	// NodeID names the node in its cluster (letters, digits, . _ -).
	NodeID string
	// RaftAddr is where the node listens for its peers (host:port);
	// RaftAdvertise is the address peers dial, if not RaftAddr.
	RaftAddr, RaftAdvertise string
	// APIURL is the node's API as its peers reach it (followers forward
	// writes there); "" means http(s)://Addr.
	APIURL string
	// Bootstrap makes a new cluster of this node alone, when it has no
	// raft state yet.
	Bootstrap bool
	// Join lists API URLs of members: a node with no raft state asks
	// them (in turn, until one answers) to add it.
	Join []string
	// Timeouts are raft's failure detection; zero: cluster.DefaultTimeouts.
	Timeouts cluster.Timeouts
	// SnapshotThreshold and TrailingLogs: see cluster.Config; 0: defaults
	// (8192 and 10240 entries).
	SnapshotThreshold, TrailingLogs uint64
	// PeerTLS secures raft between nodes and the forwarding of requests
	// (the node's certificate serves both; peers must present one of
	// TLSClientCA). Needs TLSCert, TLSKey and TLSClientCA.
	PeerTLS bool
	// Dial, if set, dials peers' raft addresses (tests route it through
	// network faults).
	Dial func(addr string, timeout time.Duration) (net.Conn, error)
	// RaftListener, if set, is used instead of listening on RaftAddr.
	RaftListener net.Listener
}

// Enabled reports whether the node is part of a cluster.
func (c ClusterConfig) Enabled() bool { return c.NodeID != "" }

func (c *Config) validateCluster(bad func(field, format string, args ...any)) {
	cc := c.Cluster
	if !cc.Enabled() {
		if cc.RaftAddr != "" || cc.Bootstrap || len(cc.Join) > 0 {
			bad("Cluster.NodeID", "a raft address, --bootstrap or --join needs a node id")
		}
		return
	}
	if !validNodeID(cc.NodeID) {
		bad("Cluster.NodeID", "%q: want 1-64 of A-Z a-z 0-9 . _ -", cc.NodeID)
	}
	if cc.RaftAddr == "" && cc.RaftListener == nil {
		bad("Cluster.RaftAddr", "empty: a cluster node needs a raft address (host:port)")
	} else if cc.RaftListener == nil {
		if _, _, err := net.SplitHostPort(cc.RaftAddr); err != nil {
			bad("Cluster.RaftAddr", "%q: want host:port", cc.RaftAddr)
		}
	}
	if cc.Bootstrap && len(cc.Join) > 0 {
		bad("Cluster.Join", "a node either bootstraps a cluster or joins one, not both")
	}
	for _, j := range cc.Join {
		if u, err := url.Parse(j); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("Cluster.Join", "%q: want the http(s) URL of a member's API", j)
		}
	}
	if cc.APIURL != "" {
		if u, err := url.Parse(cc.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("Cluster.APIURL", "%q: want an http(s) URL", cc.APIURL)
		}
	}
	if cc.PeerTLS && (c.TLSCert == "" || c.TLSClientCA == "") {
		bad("Cluster.PeerTLS", "peer TLS needs the node's certificate (TLSCert, TLSKey) and the CA of its peers (TLSClientCA)")
	}
	if c.Encrypt {
		bad("Encrypt", "cluster mode does not support encryption at rest yet")
	}
}

func validNodeID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// apiURL is the node's API as peers reach it.
func (c *Config) apiURL() string {
	if c.Cluster.APIURL != "" {
		return c.Cluster.APIURL
	}
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + c.Addr
}

// RaftDir is where a cluster node keeps its raft log and snapshots.
func RaftDir(dir string) string { return filepath.Join(dir, "raft") }

// openCluster starts the node's raft over its store.
func (n *Node) openCluster() error {
	cc := n.cfg.Cluster
	if _, ok := n.chaosConfig(); ok {
		n.raftGate = &raftGate{}
		ln, dial, err := n.raftGate.wrap(cc.RaftAddr, cc.RaftListener, cc.Dial)
		if err != nil {
			return err
		}
		cc.RaftListener, cc.Dial = ln, dial
	}
	cfg := cluster.Config{
		NodeID: cc.NodeID, RaftAddr: cc.RaftAddr, Advertise: cc.RaftAdvertise, APIURL: n.cfg.apiURL(),
		Dir: RaftDir(n.cfg.Dir), Bootstrap: cc.Bootstrap, Timeouts: cc.Timeouts,
		SnapshotThreshold: cc.SnapshotThreshold, TrailingLogs: cc.TrailingLogs,
		Listener: cc.RaftListener, Dial: cc.Dial, Logger: n.log,
		OnLeader:     n.leadershipChanged,
		OnEvent:      n.clusterEvent,
		FetchHistory: n.fetchHistory,
		Phase: func(_ context.Context, plan, phase string) error {
			n.log.Info("cluster recovery", "plan", plan, "phase", phase)
			return nil
		},
		OnFatal: func(err error) {
			n.log.Error("the store failed while applying the cluster's log: the node stops", "err", err)
			n.stop(&FatalError{Step: recovery.Step{Component: "cluster", Status: recovery.Failed, Reason: err.Error(), At: time.Now()}})
		},
	}
	if cc.PeerTLS {
		srv, cli, err := n.peerTLS()
		if err != nil {
			return err
		}
		cfg.ServerTLS, cfg.ClientTLS = srv, cli
	}
	c, err := cluster.Open(cfg, n.store)
	if err != nil {
		return err
	}
	n.cluster = c
	n.data = &replicated{Store: n.store, c: c}
	col := newClusterCollector(c)
	c.SetOnApply(func(d time.Duration) { col.apply.Observe(d.Seconds()) })
	n.mets.Registry().MustRegister(col)
	return nil
}

// peerTLS is the TLS between nodes (raft and forwarded requests): the
// node's own certificate on both ends (reloaded like the API's), peers
// verified against TLSClientCA.
func (n *Node) peerTLS() (server, client *tls.Config, err error) {
	client, err = tlsconf.Client(n.cfg.TLSClientCA, n.cfg.TLSCert, n.cfg.TLSKey)
	if err != nil {
		return nil, nil, err
	}
	return n.tls.Config(), client, nil
}

// replicated is the store as a cluster's node writes it: puts go through
// the log; reads are this node's.
type replicated struct {
	*gitstore.Store
	c *cluster.Node
}

// Put goes through the log, once this node's admission check (the search
// index's lag) lets it.
func (r *replicated) Put(ctx context.Context, d nexus.Draft) (*nexus.Context, error) {
	if err := r.Store.Admit(ctx); err != nil {
		return nil, err
	}
	return r.c.Put(ctx, d)
}

// PutRaw goes through the log as Put does (the embedded store's PutRaw
// would write this node only); the stored JSON is not handed back.
func (r *replicated) PutRaw(ctx context.Context, d nexus.Draft) (*nexus.Context, []byte, error) {
	c, err := r.Put(ctx, d)
	return c, nil, err
}

// leadershipChanged starts the jobs that must run once in a cluster on
// the node that leads, and stops them when it no longer does (the agent
// work: leaderWork).
func (n *Node) leadershipChanged(leading bool) {
	n.log.Info("leadership", "leading", leading)
	if leading {
		n.agents.lead.begin()
	} else {
		n.agents.lead.end()
	}
}

// clusterAPI serves the cluster's routes for this node.
type clusterAPI struct {
	n      *Node
	client *http.Client
}

func (a *clusterAPI) NodeID() string              { return a.n.cfg.Cluster.NodeID }
func (a *clusterAPI) Leader() (id, apiURL string) { return a.n.cluster.Leader() }
func (a *clusterAPI) IsLeader() bool              { return a.n.cluster.IsLeader() }
func (a *clusterAPI) ReadBarrier(ctx context.Context, level cluster.Consistency) error {
	return a.n.cluster.ReadBarrier(ctx, level)
}
func (a *clusterAPI) Join(ctx context.Context, m cluster.Member) error {
	return a.n.cluster.Join(ctx, m)
}
func (a *clusterAPI) Remove(ctx context.Context, id string) error {
	return a.n.cluster.Remove(ctx, id)
}
func (a *clusterAPI) TransferLeadership(ctx context.Context, to string) error {
	return a.n.cluster.TransferLeadership(ctx, to)
}

// Status is this node's view, with each other member's applied index and
// head asked of the member itself (in parallel, 2 s each).
func (a *clusterAPI) Status(ctx context.Context, local bool) cluster.Status {
	st := a.n.cluster.Status()
	for i := range st.Members {
		m := &st.Members[i]
		if m.ID == st.NodeID {
			m.AppliedIndex, m.Head = st.AppliedIndex, st.Head
		}
	}
	if local {
		return st
	}
	var wg sync.WaitGroup
	for i := range st.Members {
		m := &st.Members[i]
		if m.ID == st.NodeID {
			continue
		}
		if m.APIURL == "" {
			m.Error = "its API address is not known yet"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms, err := a.ask(ctx, m.APIURL)
			if err != nil {
				m.Error = a.n.redact.Redact(err.Error())
				return
			}
			m.AppliedIndex, m.Head = ms.AppliedIndex, ms.Head
		}()
	}
	wg.Wait()
	return st
}

// ask gets a member's own status.
func (a *clusterAPI) ask(ctx context.Context, api string) (*cluster.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/v1/cluster?local=true", nil)
	if err != nil {
		return nil, err
	}
	if a.n.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.n.cfg.Token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", api, resp.Status)
	}
	var st cluster.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// peerTransport is how this node reaches its peers' APIs (forwarding,
// status, join).
func (n *Node) peerTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// A peer that accepts connections but answers nothing (a frozen
	// process) must not hold a forwarded request for ever: a write's own
	// wait for the log is bounded by 30 s.
	t.ResponseHeaderTimeout = 40 * time.Second
	if n.cfg.Cluster.PeerTLS {
		if _, cli, err := n.peerTLS(); err == nil {
			t.TLSClientConfig = cli
		}
	}
	return t
}

func (n *Node) clusterHandlerOptions(o *httpapi.Options) {
	if n.cluster == nil {
		return
	}
	tr := n.peerTransport()
	o.Cluster = &clusterAPI{n: n, client: &http.Client{Transport: tr}}
	o.ForwardTransport = tr
}

// joinService asks the members listed in Join to add this node, until
// one does (the node then gets the log from the leader).
func (n *Node) joinService() *service {
	cc := n.cfg.Cluster
	return newService("cluster join", func(ctx context.Context) {
		st := n.cluster.Status()
		for _, m := range st.Members {
			if m.ID == cc.NodeID {
				return // already a member
			}
		}
		client := &http.Client{Transport: n.peerTransport(), Timeout: 10 * time.Second}
		me := cluster.Member{ID: cc.NodeID, RaftAddr: n.cluster.RaftAddr(), APIURL: n.cfg.apiURL()}
		body, _ := json.Marshal(me)
		wait := 200 * time.Millisecond
		for {
			var errs []error
			for _, u := range cc.Join {
				err := n.askToJoin(ctx, client, u, body)
				if err == nil {
					n.log.Info("joined the cluster", "via", u)
					return
				}
				errs = append(errs, fmt.Errorf("%s: %w", u, err))
			}
			n.log.Warn("cannot join the cluster yet; retrying", "err", errors.Join(errs...), "in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 5*time.Second)
		}
	})
}

func (n *Node) askToJoin(ctx context.Context, client *http.Client, u string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+"/v1/cluster/join", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if n.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+n.cfg.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var eb nexus.ErrorBody
	if json.NewDecoder(resp.Body).Decode(&eb) == nil && eb.Error.Message != "" {
		return fmt.Errorf("%s: %s", eb.Error.Code, eb.Error.Message)
	}
	return fmt.Errorf("answered %s", resp.Status)
}

// clusterHealth is the cluster component of /health.
func (n *Node) clusterHealth(context.Context) nexus.ComponentHealth {
	if n.cluster == nil {
		return nexus.ComponentHealth{Status: nexus.StatusDisabled, Timestamp: time.Now()}
	}
	st := n.cluster.Status()
	h := nexus.ComponentHealth{Status: nexus.StatusHealthy, Details: map[string]any{
		"role": st.State, "leader": st.Leader, "term": st.Term, "commit_index": st.CommitIndex,
		"applied_index": st.AppliedIndex, "members": len(st.Members),
	}}
	if st.LastContact != nil {
		h.Details["last_contact"] = st.LastContact.UTC().Format(time.RFC3339Nano)
	}
	switch {
	case st.Stalled != "":
		h.Status, h.Error = nexus.StatusDegraded, "committed entries cannot be applied here: "+st.Stalled
	case st.Leader == "":
		h.Status, h.Error = nexus.StatusDegraded, "no leader: this node cannot reach a quorum; writes are refused, reads are served stale"
	}
	return h
}

// clusterCollector exports the node's raft figures at scrape time.
type clusterCollector struct {
	c     *cluster.Node
	apply prometheus.Histogram
	descs map[string]*prometheus.Desc
}

func newClusterCollector(c *cluster.Node) *clusterCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("nexus_cluster_"+name, help, labels, nil)
	}
	return &clusterCollector{c: c,
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nexus_cluster_apply_seconds", Help: "Time of this node's writes from their proposal to the raft log to their application here (quorum commit and fsynced git commit).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		descs: map[string]*prometheus.Desc{
			"leader":         d("leader", "1 if this node leads the cluster and takes writes."),
			"state":          d("state", "The node's raft state: 1 for the state it is in.", "state"),
			"term":           d("term", "The current raft term."),
			"commit_index":   d("commit_index", "The index of the last log entry known committed."),
			"applied_index":  d("applied_index", "The index of the last log entry applied to the store here."),
			"applied_lag":    d("applied_lag", "Committed log entries not yet applied here."),
			"leader_changes": d("leader_changes_total", "Leader changes this node observed since it started."),
			"members":        d("members", "Members of the cluster's configuration."),
			"stalled":        d("apply_stalled", "1 while committed entries cannot be applied here (storage failing)."),
			"snapshots":      d("snapshots_total", "Snapshots taken here, sent to followers, installed from the leader.", "kind"),
			"snapshot_bytes": d("snapshot_bytes", "Size of the last snapshot history sent or installed.", "kind"),
			"snapshot_secs":  d("snapshot_seconds", "Time to make the last snapshot history sent, or to install the last one received.", "kind"),
		},
	}
}

func (cc *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range cc.descs {
		ch <- d
	}
	cc.apply.Describe(ch)
}

func (cc *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	f := cc.c.Figures()
	g := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(cc.descs[name], prometheus.GaugeValue, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	g("leader", b(f.Leader))
	for _, s := range []string{"leader", "follower", "candidate", "shutdown"} {
		g("state", b(f.State == s), s)
	}
	g("term", float64(f.Term))
	g("commit_index", float64(f.CommitIndex))
	g("applied_index", float64(f.AppliedIndex))
	g("applied_lag", float64(f.CommitIndex-min(f.CommitIndex, f.AppliedIndex)))
	ch <- prometheus.MustNewConstMetric(cc.descs["leader_changes"], prometheus.CounterValue, float64(f.LeaderChanges))
	g("members", float64(f.Members))
	g("stalled", b(f.Stalled))
	for kind, v := range map[string]uint64{"taken": f.SnapshotsTaken, "sent": f.SnapshotsSent, "installed": f.SnapshotsInstalled} {
		ch <- prometheus.MustNewConstMetric(cc.descs["snapshots"], prometheus.CounterValue, float64(v), kind)
	}
	g("snapshot_bytes", float64(f.LastSentBytes), "sent")
	g("snapshot_bytes", float64(f.LastInstalledBytes), "installed")
	g("snapshot_secs", f.LastSentTime.Seconds(), "sent")
	g("snapshot_secs", f.LastInstallTime.Seconds(), "installed")
	cc.apply.Collect(ch)
}

// clusterEvent publishes a leader or membership change on the event
// stream.
func (n *Node) clusterEvent(typ string, data map[string]any) {
	if n.bus == nil {
		return
	}
	b, err := json.Marshal(data)
	if err == nil {
		_, err = n.bus.Publish(nexus.Event{Type: typ, Data: b}, nexus.EventFilter{})
	}
	if err != nil && nexus.ErrorCode(err) != nexus.EUnavailable {
		n.log.Warn("event not published", "type", typ, "err", err)
	}
}
