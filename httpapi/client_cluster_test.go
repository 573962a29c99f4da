package httpapi_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

func memberIDs(st *cluster.Status) []string {
	var ids []string
	for _, m := range st.Members {
		ids = append(ids, m.ID)
	}
	return ids
}

// The cluster's client methods on real nodes: status (every member's head
// asked of it, or only the node's own), join of a node started without
// --join, removal, leadership transfer through a follower, errors as
// codes; and reads at a consistency level: once no leader is left, a
// linearizable get or search fails no_quorum while the default and none
// are served.
func TestClient_Cluster(t *testing.T) {
	ctx := context.Background()
	nodes := nodetest.OpenCluster(t, 3, nil)
	leader := nodetest.Leader(t, nodes)
	var f *nodetest.Node // a follower
	for _, n := range nodes {
		if n != leader {
			f = n
			break
		}
	}
	c, err := f.Client.Put(ctx, nexus.Draft{Type: nexus.TypeObservation, Namespace: "c", Content: "written through a follower"})
	if err != nil {
		t.Fatal(err)
	}
	head := nodetest.Converge(t, nodes)

	st, err := f.Client.ClusterStatus(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeID != f.Config.Cluster.NodeID || st.Leader != leader.Config.Cluster.NodeID || st.State != "follower" {
		t.Fatalf("status of %s: node %q, state %q, leader %q; want follower of %s", f.Config.Cluster.NodeID, st.NodeID, st.State, st.Leader, leader.Config.Cluster.NodeID)
	}
	if got := memberIDs(st); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("members %v", got)
	}
	for _, m := range st.Members {
		if m.Head != head || m.AppliedIndex == 0 || m.Error != "" || !m.Voter || m.Leader != (m.ID == st.Leader) {
			t.Fatalf("member %+v; want head %s, an applied index, no error", m, head)
		}
	}
	local, err := f.Client.ClusterStatus(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range local.Members {
		if mine := m.ID == f.Config.Cluster.NodeID; (m.Head != "") != mine {
			t.Fatalf("local status: member %s has head %q; only the node's own is known", m.ID, m.Head)
		}
	}

	// Errors keep the server's code.
	if _, err := f.Client.ClusterRemove(ctx, "nope"); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("removing an unknown member: %v, want not_found", err)
	}
	if _, err := f.Client.ClusterJoin(ctx, cluster.Member{RaftAddr: "127.0.0.1:1"}); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Fatalf("joining without an id: %v, want invalid", err)
	}
	if _, err := f.Client.ClusterTransfer(ctx, "nope"); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("transfer to an unknown member: %v, want not_found", err)
	}
	single := nodetest.Open(t, nodetest.Config(t))
	if _, err := single.Client.ClusterStatus(ctx, false); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("status of a single node: %v, want not_found", err)
	}

	// A node started without --bootstrap or --join waits until asked for.
	cfg := nodetest.Config(t)
	cfg.Cluster = node.ClusterConfig{NodeID: "n4", RaftAddr: "127.0.0.1:0", Timeouts: cluster.FastTimeouts()}
	n4 := nodetest.Open(t, cfg)
	st, err = f.Client.ClusterJoin(ctx, cluster.Member{ID: "n4", RaftAddr: n4.Cluster().RaftAddr(), APIURL: n4.URL})
	if err != nil {
		t.Fatal(err)
	}
	if got := memberIDs(st); !slices.Equal(got, []string{"n1", "n2", "n3", "n4"}) {
		t.Fatalf("members after the join: %v", got)
	}
	all := append(slices.Clone(nodes), n4)
	if got := nodetest.Converge(t, all); got != head {
		t.Fatalf("after the join the head is %s, want %s", got, head)
	}
	if got, err := n4.Client.AtConsistency(cluster.None).Get(ctx, c.ID); err != nil || got.Content != c.Content {
		t.Fatalf("the joined node's own copy: %v %v", got, err)
	}
	if st, err = f.Client.ClusterRemove(ctx, "n4"); err != nil {
		t.Fatal(err)
	}
	if got := memberIDs(st); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("members after the removal: %v", got)
	}
	n4.Close()

	// A transfer asked of a follower is forwarded to the leader.
	if _, err := f.Client.ClusterTransfer(ctx, f.Config.Cluster.NodeID); err != nil {
		t.Fatal(err)
	}
	// Raft does not promise a transfer: on a loaded machine the old
	// leader may win the election that follows it. Then it is asked again
	// (through the follower, forwarded) until the follower leads.
	nodetest.Wait(t, 30*time.Second, "the leadership to move to "+f.Config.Cluster.NodeID, func() bool {
		if f.Cluster().IsLeader() {
			return true
		}
		for _, n := range nodes {
			if n != f && n.Cluster().IsLeader() {
				f.Client.ClusterTransfer(ctx, f.Config.Cluster.NodeID)
			}
		}
		return false
	})

	// Reads at a level.
	for _, level := range []cluster.Consistency{cluster.None, cluster.Leader, cluster.Linearizable} {
		if got, err := nodes[0].Client.AtConsistency(level).Get(ctx, c.ID); err != nil || got.Content != c.Content {
			t.Fatalf("get at %s: %v %v", level, got, err)
		}
	}
	if _, err := f.Client.AtConsistency("strong").Get(ctx, c.ID); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Fatalf("an unknown level: %v, want invalid", err)
	}
	var last *nodetest.Node
	for _, n := range nodes {
		if n != f {
			last = n
		}
	}
	for _, n := range nodes {
		if n != last {
			n.Close()
		}
	}
	nodetest.Wait(t, 20*time.Second, "the last node to lose its leader", func() bool {
		id, _ := last.Cluster().Leader()
		return id == ""
	})
	lin := last.Client.AtConsistency(cluster.Linearizable)
	if _, err := lin.Get(ctx, c.ID); nexus.ErrorCode(err) != nexus.ENoQuorum {
		t.Fatalf("linearizable get without a quorum: %v, want no_quorum", err)
	}
	if _, err := lin.Search(ctx, nexus.SearchRequest{Query: "follower", Mode: nexus.Keyword}); nexus.ErrorCode(err) != nexus.ENoQuorum {
		t.Fatalf("linearizable search without a quorum: %v, want no_quorum", err)
	}
	for _, cl := range []interface {
		Get(context.Context, nexus.ID) (*nexus.Context, error)
	}{last.Client, last.Client.AtConsistency(cluster.None)} {
		if got, err := cl.Get(ctx, c.ID); err != nil || got.Content != c.Content {
			t.Fatalf("a stale read without a quorum: %v %v", got, err)
		}
	}
}
