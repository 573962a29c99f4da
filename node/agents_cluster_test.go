package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
	"github.com/nexus-mem/nexus/tasks"
)

// leaderServices are the jobs a node of a cluster runs while it leads.
var leaderServices = []string{"agent monitor", "lease reaper", "supervisor"}

// runningLeaderServices lists which of leaderServices run on n; every one
// must be listed.
func runningLeaderServices(t *testing.T, n *nodetest.Node) []string {
	t.Helper()
	var listed, running []string
	for _, s := range n.Services() {
		if slices.Contains(leaderServices, s.Name) {
			listed = append(listed, s.Name)
			if s.Running {
				running = append(running, s.Name)
			}
		}
	}
	if len(listed) != len(leaderServices) {
		t.Fatalf("%s lists %v of the leader's jobs %v", n.Config.Cluster.NodeID, listed, leaderServices)
	}
	return running
}

// leadingWithProcess waits for a node of nodes (open, not one of not)
// that leads and runs its supervised process, and returns it with the
// process's pid.
func leadingWithProcess(t *testing.T, nodes []*nodetest.Node, not ...*nodetest.Node) (*nodetest.Node, int) {
	t.Helper()
	var l *nodetest.Node
	var pid int
	nodetest.Wait(t, eventWait, "a leader running its process", func() bool {
		for _, n := range nodes {
			if n.Closed() || slices.Contains(not, n) || !n.Cluster().IsLeader() {
				continue
			}
			if pid = processPIDs(t, n)["sleeper"]; pid != 0 {
				l = n
				return true
			}
		}
		return false
	})
	return l, pid
}

// processPIDs are the running supervised processes of n, by name.
func processPIDs(t *testing.T, n *nodetest.Node) map[string]int {
	t.Helper()
	var d byAgent
	b, _ := json.Marshal(n.Health(context.Background()).Components[nexus.ComponentAgents].Details)
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d.running()
}

// In a cluster the agent work runs on the leader only: its heartbeats,
// lease reaper and supervised processes. An external agent registers and
// claims a task through followers (forwarded to the leader); the leader
// is closed; the new leader runs the agent work and still knows the agent
// and its claim, with whole leases from the takeover; the agent
// heartbeats and completes the task with the token it was given, through
// a follower; the task is done on every node, with one result. The work
// moves with leadership handed over and back.
func TestCluster_AgentWorkFollowsLeadership(t *testing.T) {
	const agentLease, taskLease = 30 * time.Second, 2 * time.Minute
	nodes := nodetest.OpenCluster(t, 3, func(i int, cfg *node.Config) {
		withFile(t, cfg, fmt.Sprintf(`
server:
  agent_lease: %s
  task_lease: %s
supervisor:
  processes:
    - name: sleeper
      command: sleep
      args: ["3600"]
      stop_timeout: 2s
`, agentLease, taskLease))
	})
	ctx := context.Background()
	leader, pid := leadingWithProcess(t, nodes)
	var followers []*nodetest.Node
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	if b, err := os.ReadFile(filepath.Join(leader.Config.Dir, "run", "sleeper.pid")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		t.Fatalf("the leader's pid file %q, %v; its process runs as %d", b, err, pid)
	}
	if got := runningLeaderServices(t, leader); !slices.Equal(got, leaderServices) {
		t.Fatalf("the leader runs %v, want %v", got, leaderServices)
	}
	for _, f := range followers {
		if got := runningLeaderServices(t, f); len(got) != 0 {
			t.Fatalf("follower %s runs %v, want none of the leader's jobs", f.Config.Cluster.NodeID, got)
		}
		if got := processPIDs(t, f); len(got) != 0 {
			t.Fatalf("follower %s runs processes %v", f.Config.Cluster.NodeID, got)
		}
		if _, err := os.Stat(filepath.Join(f.Config.Dir, "run", "sleeper.pid")); !os.IsNotExist(err) {
			t.Fatalf("follower %s has a pid file: %v", f.Config.Cluster.NodeID, err)
		}
	}

	// Through followers: the requests go to the leader's queue.
	var a tasks.Agent
	if code := callAPI(t, followers[0], "POST", "/v1/agents", map[string]any{"id": "assistant", "name": "Reviewer", "capabilities": []string{"review"}}, &a); code != 201 {
		t.Fatalf("register through a follower: %d", code)
	}
	var task tasks.Task
	if code := callAPI(t, followers[1], "POST", "/v1/tasks", map[string]any{"content": "Review the parser change.", "capability": "review", "namespace": "team-a"}, &task); code != 201 {
		t.Fatalf("create a task through a follower: %d", code)
	}
	var claim tasks.Task
	if code := callAPI(t, followers[0], "POST", "/v1/tasks/claim", map[string]any{"agent_id": "assistant"}, &claim); code != 200 || claim.ID != task.ID || claim.Claim == "" || claim.Attempt != 1 {
		t.Fatalf("claim through a follower: %d %+v", code, claim)
	}

	subs := map[*nodetest.Node]nexus.Subscription{}
	for _, f := range followers {
		sub, err := f.Events().Subscribe(ctx, nexus.EventFilter{AgentID: "assistant"}, "")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		subs[f] = sub
	}
	failover := time.Now()
	leader.Close()
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("the old leader's process %d survived its close", pid)
	}
	next, _ := leadingWithProcess(t, nodes, leader)
	other := followers[0]
	if other == next {
		other = followers[1]
	}
	// The new leader took the queue over, the agent's claim with it.
	ev := nodetest.AwaitEvent(t, subs[next], eventWait, "the agent taken over by the new leader", func(typ string, d map[string]any) bool {
		return typ == "agent" && d["agent"] == "assistant" && d["status"] == tasks.Active
	})
	if ev["source"] != "external" || ev["reason"] != "taken over with its claims" {
		t.Fatalf("takeover event: %v", ev)
	}
	if got := runningLeaderServices(t, next); !slices.Equal(got, leaderServices) {
		t.Fatalf("the new leader runs %v, want %v", got, leaderServices)
	}
	if got := runningLeaderServices(t, other); len(got) != 0 {
		t.Fatalf("the remaining follower runs %v", got)
	}

	var held tasks.Task
	if code := callAPI(t, other, "GET", "/v1/tasks/"+task.ID.String(), nil, &held); code != 200 {
		t.Fatalf("get the task: %d", code)
	}
	took := time.Now()
	if held.Status != tasks.Claimed || held.ClaimedBy != "assistant" || held.Attempt != 1 || held.Claim != "" ||
		held.LeaseExpires.Before(failover.Add(taskLease)) || held.LeaseExpires.After(took.Add(taskLease)) {
		t.Fatalf("the task after the failover: %+v, want claimed by assistant (claim 1) with a lease of %v from the failover", held, taskLease)
	}
	if code := callAPI(t, other, "GET", "/v1/agents/assistant", nil, &a); code != 200 || a.Status != tasks.Active || a.Name != "Reviewer" ||
		!slices.Equal(a.Capabilities, []string{"review"}) || !slices.Equal(a.Claims, []nexus.ID{task.ID}) ||
		a.LeaseExpires.Before(failover.Add(agentLease)) || a.LeaseExpires.After(took.Add(agentLease)) {
		t.Fatalf("the agent after the failover: %d %+v, want active with its claim and a lease of %v from the failover", code, a, agentLease)
	}
	if code := callAPI(t, other, "POST", "/v1/agents/assistant/heartbeat", nil, nil); code != 200 {
		t.Fatalf("heartbeat after the failover: %d", code)
	}
	var done struct {
		Task   tasks.Task     `json:"task"`
		Result *nexus.Context `json:"result"`
	}
	if code := callAPI(t, other, "POST", "/v1/tasks/"+task.ID.String()+"/complete",
		map[string]any{"agent_id": "assistant", "claim": claim.Claim, "content": "LGTM."}, &done); code != 200 || done.Task.Status != tasks.Done {
		t.Fatalf("complete with the claim given by the old leader: %d %+v", code, done)
	}

	nodetest.Converge(t, nodes)
	for _, n := range []*nodetest.Node{next, other} {
		var got tasks.Task
		if code := callAPI(t, n, "GET", "/v1/tasks/"+task.ID.String(), nil, &got); code != 200 || got.Status != tasks.Done || got.Result != done.Result.ID {
			t.Fatalf("the task via %s: %d %+v", n.Config.Cluster.NodeID, code, got)
		}
		kids, err := n.Store().Children(ctx, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		var results []string
		for _, k := range kids {
			if k.Type == nexus.TypeResult {
				results = append(results, k.ID.String()+" "+k.AgentID+": "+k.Content)
			}
		}
		if want := done.Result.ID.String() + " assistant: LGTM."; len(results) != 1 || results[0] != want {
			t.Fatalf("results of the task in the store of %s: %q, want %q", n.Config.Cluster.NodeID, results, want)
		}
	}

	// Leadership handed over and back: the work follows it each time.
	handOver(t, nodes, next, other)
	handOver(t, nodes, other, next)
	var got tasks.Task
	if code := callAPI(t, other, "GET", "/v1/tasks/"+task.ID.String(), nil, &got); code != 200 || got.Status != tasks.Done {
		t.Fatalf("the task after two changes of leader: %d %+v", code, got)
	}
}

// handOver moves leadership from one node to another and waits until the
// work runs there and stopped on from (its process gone).
func handOver(t *testing.T, nodes []*nodetest.Node, from, to *nodetest.Node) {
	t.Helper()
	pid := processPIDs(t, from)["sleeper"]
	if err := from.Cluster().TransferLeadership(context.Background(), to.Config.Cluster.NodeID); err != nil {
		t.Fatalf("transfer leadership from %s to %s: %v", from.Config.Cluster.NodeID, to.Config.Cluster.NodeID, err)
	}
	// Raft does not promise a transfer: on a loaded machine another
	// member may win the election that follows it. Then whoever leads is
	// asked again.
	nodetest.Wait(t, eventWait, "the leadership to move to "+to.Config.Cluster.NodeID, func() bool {
		if to.Cluster().IsLeader() {
			return true
		}
		for _, n := range nodes {
			if n != to && !n.Closed() && n.Cluster().IsLeader() {
				n.Cluster().TransferLeadership(context.Background(), to.Config.Cluster.NodeID)
			}
		}
		return false
	})
	if l, _ := leadingWithProcess(t, nodes, from); l != to {
		t.Fatalf("%s leads, want %s", l.Config.Cluster.NodeID, to.Config.Cluster.NodeID)
	}
	nodetest.Wait(t, eventWait, "the former leader's work to stop", func() bool {
		return len(runningLeaderServices(t, from)) == 0
	})
	if got := processPIDs(t, from); len(got) != 0 || syscall.Kill(pid, 0) == nil {
		t.Fatalf("%s still runs processes %v (the last one %d) after handing leadership over", from.Config.Cluster.NodeID, got, pid)
	}
	if got := runningLeaderServices(t, to); !slices.Equal(got, leaderServices) {
		t.Fatalf("%s leads and runs %v, want %v", to.Config.Cluster.NodeID, got, leaderServices)
	}
}
