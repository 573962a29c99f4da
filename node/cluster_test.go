package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
	"github.com/nexus-mem/nexus/recovery"
)

func clusterStatus(t *testing.T, n *nodetest.Node) cluster.Status {
	t.Helper()
	resp, err := n.HTTP.Get(n.URL + "/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /v1/cluster: %s %s", resp.Status, b)
	}
	var st cluster.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCluster_WritesThroughAnyNode(t *testing.T) {
	nodes := nodetest.OpenCluster(t, 3, nil)
	leader := nodetest.Leader(t, nodes)
	var ids []nexus.ID
	for i, n := range nodes {
		for j := range 20 {
			// A follower forwards the write to the leader.
			c, err := putRetry(t, n, nexus.Draft{Type: nexus.TypeObservation, Namespace: "c", Content: fmt.Sprintf("via %d: %d", i, j)})
			if err != nil {
				t.Fatalf("put via %s: %v", n.Config.Cluster.NodeID, err)
			}
			ids = append(ids, c.ID)
		}
	}
	head := nodetest.Converge(t, nodes)
	for _, n := range nodes {
		if n.Head() != head || n.Len() != len(ids) {
			t.Fatalf("%s: head %s with %d contexts, want %s with %d", n.Config.Cluster.NodeID, n.Head(), n.Len(), head, len(ids))
		}
	}
	// Every read level answers on every node, saying which it was.
	for _, n := range nodes {
		for _, level := range []string{"none", "leader", "linearizable"} {
			resp, err := n.HTTP.Get(n.URL + "/v1/contexts/" + ids[0].String() + "?consistency=" + level)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get(httpapi.HeaderConsistency) != level {
				t.Fatalf("%s at %s: %s, consistency %q", n.Config.Cluster.NodeID, level, resp.Status, resp.Header.Get(httpapi.HeaderConsistency))
			}
			served := resp.Header.Get(httpapi.HeaderServedBy)
			if want := leader.Config.Cluster.NodeID; level != "none" && served != want {
				t.Fatalf("a %s read via %s was served by %s, want the leader %s", level, n.Config.Cluster.NodeID, served, want)
			}
		}
	}
	st := clusterStatus(t, nodes[1])
	if st.Leader != leader.Config.Cluster.NodeID || len(st.Members) != 3 {
		t.Fatalf("status: %+v", st)
	}
	for _, m := range st.Members {
		if m.Head != head || m.Error != "" {
			t.Fatalf("member %s: head %s (%s), want %s", m.ID, m.Head, m.Error, head)
		}
	}
	defer fsckClosed(t, nodes)
	resp, err := nodes[0].HTTP.Get(nodes[0].URL + "/v1/contexts?consistency=sometimes")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "want none, leader or linearizable") {
		t.Fatalf("bad consistency: %s %s", resp.Status, b)
	}
}

func TestCluster_LeaderFailover(t *testing.T) {
	nodes := nodetest.OpenCluster(t, 3, nil)
	ctx := context.Background()
	leader := nodetest.Leader(t, nodes)
	for i := range 30 {
		if _, err := putRetry(t, leader, nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprint("before ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := leader.HTTP.Get(leader.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"nexus_cluster_leader 1", "nexus_cluster_members 3", "nexus_cluster_apply_seconds_count ", `nexus_cluster_state{state="leader"} 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var follower *nodetest.Node
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	sub, err := follower.Events().Subscribe(ctx, nexus.EventFilter{}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	leader.Close()
	next := nodetest.Leader(t, nodes, leader)
	nodetest.AwaitEvent(t, sub, 20*time.Second, "a leader change", func(typ string, data map[string]any) bool {
		return typ == "cluster.leader" && data["leader"] == next.Config.Cluster.NodeID
	})
	for i := range 30 {
		if _, err := putRetry(t, next, nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprint("after ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	leader.Restart(nil)
	head := nodetest.Converge(t, nodes)
	for _, n := range nodes {
		if n.Len() != 60 || n.Head() != head {
			t.Fatalf("%s: %d contexts at %s, want 60 at %s", n.Config.Cluster.NodeID, n.Len(), n.Head(), head)
		}
		h := n.Health(ctx).Components[nexus.ComponentCluster]
		if h.Status != nexus.StatusHealthy {
			t.Fatalf("%s: cluster health %+v", n.Config.Cluster.NodeID, h)
		}
	}
}

func recoverCluster(t *testing.T, via *nodetest.Node) cluster.RecoveryReport {
	t.Helper()
	resp, err := via.HTTP.Post(via.URL+"/v1/admin/recover?scope=cluster", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cluster recovery: %s %s", resp.Status, b)
	}
	var rep cluster.RecoveryReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestCluster_CoordinatedRecovery(t *testing.T) {
	nodes := nodetest.OpenCluster(t, 3, nil)
	for i := range 40 {
		if _, err := putRetry(t, nodes[1], nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprint("c ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	head := nodetest.Converge(t, nodes)
	leader := nodetest.Leader(t, nodes)
	var follower *nodetest.Node
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	// Asked of a follower, the leader coordinates it.
	rep := recoverCluster(t, follower)
	if rep.Stopped != "" || !rep.Consistent || rep.Head != head || len(rep.Phases) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	for _, p := range rep.Phases {
		if len(p.Nodes) != 3 {
			t.Fatalf("phase %s ran on %d members, want 3", p.Name, len(p.Nodes))
		}
		for _, r := range p.Nodes {
			if !r.OK {
				t.Fatalf("phase %s on %s: %s", p.Name, r.ID, r.Error)
			}
		}
	}
	// A member that cannot finish a phase stops the plan, named.
	follower.Close()
	rep = recoverCluster(t, leader)
	want := "member " + follower.Config.Cluster.NodeID + ", phase recover: "
	if !strings.HasPrefix(rep.Stopped, want) || len(rep.Phases) != 1 || rep.Consistent {
		t.Fatalf("report with a member down: stopped %q (want %q...), %d phases, consistent %v", rep.Stopped, want, len(rep.Phases), rep.Consistent)
	}
}

// A follower's damaged objects are repaired from a peer's history first
// (no mirror or backup is configured here at all).
func TestCluster_RepairsFromPeer(t *testing.T) {
	nodes := nodetest.OpenCluster(t, 3, func(_ int, cfg *node.Config) {
		cfg.NoSearch = true
		cfg.RecoverInterval = time.Hour // only the deep check triggers the cascade
	})
	ctx := context.Background()
	leader := nodetest.Leader(t, nodes)
	written := map[nexus.ID]string{}
	for i := range 30 {
		c, err := putRetry(t, leader, nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprintf("context %d %s", i, strings.Repeat("x", 2000))})
		if err != nil {
			t.Fatal(err)
		}
		written[c.ID] = c.Content
	}
	head := nodetest.Converge(t, nodes)
	var f *nodetest.Node
	for _, n := range nodes {
		if n != leader {
			f = n
		}
	}
	flipMiddle(t, f.Config.Dir)
	if _, err := f.Fsck(ctx, true); err != nil {
		t.Fatal(err)
	}
	nodetest.Wait(t, time.Minute, "the follower's repair", func() bool {
		_, r := recovered(f, nexus.ComponentGit)
		return r == 1
	})
	git := f.Health(ctx).Components[nexus.ComponentGit]
	if last := fmt.Sprint(git.Details["recoveries"]); git.Status != nexus.StatusHealthy || !strings.Contains(last, "peer.bundle") {
		t.Fatalf("git after recovery: %+v", git)
	}
	for id, content := range written {
		c, err := f.Store().Get(ctx, id)
		if err != nil || c.Content != content {
			t.Fatalf("%s on the repaired follower: %v", id, err)
		}
	}
	if f.Head() != head {
		t.Fatalf("head %s, want %s", f.Head(), head)
	}
	fsckClosed(t, nodes)
}

// fsckClosed closes the nodes (no pack merge may run while git reads)
// and checks each repository with stock git.
func fsckClosed(t *testing.T, nodes []*nodetest.Node) {
	t.Helper()
	for _, n := range nodes {
		n.Close()
		gitFsck(t, n.Config.Dir)
	}
}

// A point-in-time restore goes through the log: every node rewinds to the
// same commit, and a node restarted afterwards does not apply again the
// entries the restore undid.
func TestCluster_RestoreThroughTheLog(t *testing.T) {
	nodes := nodetest.OpenCluster(t, 3, nil)
	ctx := context.Background()
	leader := nodetest.Leader(t, nodes)
	var kept []nexus.ID
	for i := range 20 {
		c, err := putRetry(t, leader, nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprint("kept ", i)})
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, c.ID)
	}
	keptHead := nodetest.Converge(t, nodes)
	at := time.Now()
	for i := range 20 {
		if _, err := putRetry(t, leader, nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprint("undone ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var follower *nodetest.Node
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	plan, err := follower.Client.Restore(ctx, at, false)
	if err != nil {
		t.Fatal(err)
	}
	if plan.RolledBack != 20 || plan.To != keptHead {
		t.Fatalf("plan: %+v, want 20 rolled back to %s", plan, keptHead)
	}
	// The restore is recorded after it as an incident: its two records
	// follow the kept head.
	nodetest.Wait(t, time.Minute, "the restore's incident", func() bool {
		page, err := leader.Client.Incidents(ctx, recovery.IncidentQuery{})
		return err == nil && len(page.Incidents) == 1 && page.Incidents[0].Status == recovery.IncidentRestored
	})
	restored := nodetest.Converge(t, nodes)
	for _, n := range nodes {
		if n.Len() != 22 || !isAncestor(t, n, keptHead, restored) {
			t.Fatalf("%s holds %d contexts after the restore, want 20 and the 2 records of the restore, after %s", n.Config.Cluster.NodeID, n.Len(), keptHead)
		}
	}
	// A restart replays the log after its last snapshot: the entries the
	// restore undid must stay undone.
	follower.Restart(nil)
	if h := nodetest.Converge(t, nodes); h != restored || follower.Len() != 22 {
		t.Fatalf("after a restart: %s with %d contexts, want %s with 22", h, follower.Len(), restored)
	}
	if _, err := putRetry(t, leader, nexus.Draft{Type: nexus.TypeObservation, Content: "after the restore"}); err != nil {
		t.Fatal(err)
	}
	head := nodetest.Converge(t, nodes)
	for _, n := range nodes {
		if n.Len() != 23 || n.Head() != head {
			t.Fatalf("%s: %d contexts at %s", n.Config.Cluster.NodeID, n.Len(), n.Head())
		}
		for _, id := range kept {
			if _, err := n.Store().Get(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// putRetry writes through n, again while the cluster answers that nothing
// was done (no quorum, unavailable: an election takes about a second).
// A write whose outcome is unknown (the leader lost its leadership before
// it was confirmed: a loaded machine can starve a leader's heartbeats) is
// settled before anything else: a linearizable read, which a leader serves
// only once it has committed an entry of its own term, says whether it was
// stored, and only a write that was not is sent again. So a test counts
// its contexts exactly whatever elections happen meanwhile (contents are
// unique in these tests).
func putRetry(t *testing.T, n *nodetest.Node, d nexus.Draft) (*nexus.Context, error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := n.Client.Put(context.Background(), d)
		switch nexus.ErrorCode(err) {
		case nexus.ENoQuorum, nexus.EUnavailable:
			if time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
		case nexus.EOutcomeUnknown:
			stored, serr := settle(n, d, deadline)
			if serr != nil {
				return nil, fmt.Errorf("%v; then, settling it: %v", err, serr)
			}
			if stored != nil {
				return stored, nil
			}
			continue
		}
		return c, err
	}
}

// settle finds the context a write of d whose outcome was unknown stored,
// nil if it stored none, by a linearizable listing of d's namespace
// through n (forwarded to the leader), again while there is no leader.
func settle(n *nodetest.Node, d nexus.Draft, deadline time.Time) (*nexus.Context, error) {
	lin := n.Client.AtConsistency(cluster.Linearizable)
	ns := d.Namespace
	if ns == "" {
		ns = nexus.DefaultNamespace
	}
	for {
		found, err := findContent(lin, ns, d.Content)
		switch nexus.ErrorCode(err) {
		case nexus.ENoQuorum, nexus.EUnavailable:
			if time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
		}
		return found, err
	}
}

// findContent lists namespace ns through c and returns its context of
// that content, nil if there is none.
func findContent(c *httpapi.Client, ns, content string) (*nexus.Context, error) {
	f := nexus.Filter{Namespace: ns, Limit: 1000}
	for {
		page, err := c.List(context.Background(), f)
		if err != nil {
			return nil, err
		}
		for _, x := range page.Contexts {
			if x.Content == content {
				return x, nil
			}
		}
		if page.NextCursor == "" {
			return nil, nil
		}
		f.Cursor = page.NextCursor
	}
}

// A single node with contexts grows into a cluster: it bootstraps over its
// store, and the nodes that join empty get its history before anything
// else (the log's first entry names it), so every node ends at one head.
func TestCluster_GrowsFromASingleNode(t *testing.T) {
	single := nodetest.Open(t, nodetest.Config(t))
	ctx := context.Background()
	var ids []nexus.ID
	for i := range 30 {
		c, err := single.Client.Put(ctx, nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprint("alone ", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	dir, before := single.Config.Dir, single.Head()
	single.Close()
	nodes := nodetest.OpenCluster(t, 3, func(i int, cfg *node.Config) {
		if i == 0 {
			cfg.Dir = dir
		}
	})
	leader := nodetest.Leader(t, nodes)
	for i := range 10 {
		c, err := putRetry(t, leader, nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprint("together ", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	head := nodetest.Converge(t, nodes)
	if head == before {
		t.Fatal("the head did not move")
	}
	for _, n := range nodes {
		if n.Len() != 40 || n.Head() != head {
			t.Fatalf("%s: %d contexts at %s, want 40 at %s", n.Config.Cluster.NodeID, n.Len(), n.Head(), head)
		}
		for _, id := range ids {
			if _, err := n.Store().Get(ctx, id); err != nil {
				t.Fatalf("%s: %v", n.Config.Cluster.NodeID, err)
			}
		}
	}
	fsckClosed(t, nodes)
}
