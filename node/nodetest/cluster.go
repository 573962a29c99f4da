package nodetest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/node"
)

// OpenCluster opens a cluster of size nodes on loopback: the first
// bootstraps it, the others join it through its API. Each node's Config
// is changed by set (if not nil) before it opens; raft runs with
// cluster.RaftTimeouts (shorter ones flap on a loaded machine). It
// returns once every node is a member and one
// leads.
func OpenCluster(tb testing.TB, size int, set func(i int, cfg *node.Config)) []*Node {
	tb.Helper()
	return OpenClusterOn(tb, RaftListeners(tb, size), set)
}

// RaftListeners listens on n loopback ports for the raft traffic of n
// nodes, so that a test knows every node's raft address before any node
// opens (to build a netfault mesh over them, say). The listeners not
// handed to a node are closed when the test ends.
func RaftListeners(tb testing.TB, n int) []net.Listener {
	tb.Helper()
	out := make([]net.Listener, n)
	for i := range out {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { ln.Close() }) // the node closed it already, or it was never used
		out[i] = ln
	}
	return out
}

// OpenClusterOn is OpenCluster with node i's raft traffic on rafts[i]
// (its RaftListener and RaftAddr): it opens len(rafts) nodes.
func OpenClusterOn(tb testing.TB, rafts []net.Listener, set func(i int, cfg *node.Config)) []*Node {
	tb.Helper()
	size := len(rafts)
	out := make([]*Node, size)
	for i := range out {
		api, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		raft := rafts[i]
		cfg := Config(tb)
		cfg.Addr = api.Addr().String()
		cfg.Cluster = node.ClusterConfig{
			NodeID: fmt.Sprintf("n%d", i+1), RaftAddr: raft.Addr().String(), RaftListener: raft,
			APIURL: "http://" + cfg.Addr, Bootstrap: i == 0, Timeouts: cluster.RaftTimeouts(),
		}
		if i > 0 {
			cfg.Cluster.Join = []string{out[0].URL}
		}
		if set != nil {
			set(i, &cfg)
		}
		out[i] = openOn(tb, cfg, api)
		if i == 0 {
			Wait(tb, 20*time.Second, "the first node to lead", func() bool { return out[0].Cluster().IsLeader() })
		}
	}
	Wait(tb, 30*time.Second, "every node to join", func() bool {
		for _, n := range out {
			if len(n.Cluster().Status().Members) != size {
				return false
			}
		}
		return true
	})
	return out
}

// Leader waits for a node of nodes (open, and not one of not) to lead,
// and returns it.
func Leader(tb testing.TB, nodes []*Node, not ...*Node) *Node {
	tb.Helper()
	var l *Node
	Wait(tb, 20*time.Second, "a leader", func() bool {
		for _, n := range nodes {
			if n.closed || contains(not, n) {
				continue
			}
			if n.Cluster().IsLeader() {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// Converge waits until every open node applied as far as the leader and
// has its head, and returns the head.
func Converge(tb testing.TB, nodes []*Node) string {
	tb.Helper()
	var head string
	Wait(tb, 30*time.Second, "the nodes to converge", func() bool {
		var l *Node
		for _, n := range nodes {
			if !n.closed && n.Cluster().IsLeader() {
				l = n
			}
		}
		if l == nil {
			return false
		}
		head = l.Head()
		want := l.Cluster().AppliedIndex()
		for _, n := range nodes {
			if n.closed {
				continue
			}
			if n.Head() != head || n.Cluster().AppliedIndex() < want {
				return false
			}
		}
		return true
	})
	return head
}

// Closed reports whether the node was closed (and not restarted).
func (n *Node) Closed() bool { return n.closed }

func contains(list []*Node, n *Node) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}
