package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
)

// The cluster verbs refuse a bad command line with exit 2 before they
// ask a server; -h prints the usage and exits 0.
func TestRun_ClusterUsage(t *testing.T) {
	server := closedURL(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cluster"}, "nexus cluster: name a subcommand: status, join, remove or transfer-leadership\n"},
		{[]string{"cluster", "grow"}, `nexus cluster: unknown subcommand "grow": status, join, remove or transfer-leadership` + "\n"},
		{[]string{"cluster", "status", "extra", "--server", server}, `unexpected argument "extra": nexus cluster status takes only flags`},
		{[]string{"cluster", "remove", "--server", server}, "name the one member to remove: nexus cluster remove ID"},
		{[]string{"cluster", "remove", "a", "b", "--server", server}, "name the one member to remove: nexus cluster remove ID"},
		{[]string{"cluster", "transfer-leadership", "a", "b", "--server", server}, `unexpected argument "b": name at most one member`},
		{[]string{"cluster", "join", "--id", "n4", "--server", server}, "--id, --raft-addr and --api-url name the node to add; all three are required"},
		{[]string{"cluster", "join", "--id", "n4", "--raft-addr", "h", "--api-url", "http://h:1", "--server", server}, `--raft-addr "h": want host:port`},
		{[]string{"cluster", "join", "--id", "n4", "--raft-addr", "h:1", "--api-url", "h:2", "--server", server}, `--api-url "h:2": want the http(s) URL of the node's API`},
		{[]string{"get", "01M96ZECY3FFE1RH0470J6NNNM", "--consistency", "all", "--server", server}, `--consistency: invalid consistency "all": want none, leader or linearizable`},
		{[]string{"search", "q", "--consistency", "quorum", "--server", server}, `--consistency: invalid consistency "quorum"`},
	} {
		_, errs, code := runIn(t, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, want 2 and %q:\n%s", tc.args, code, tc.want, errs)
		}
	}
	out, errs, code := runIn(t, "cluster", "-h")
	if code != 0 || !strings.Contains(out, "nexus cluster transfer-leadership [ID]") || errs != "" {
		t.Errorf("cluster -h: exit %d:\n%s%s", code, out, errs)
	}
	_, errs, code = runIn(t, "cluster", "status", "-h")
	if code != 0 || !strings.Contains(errs, "Usage: nexus cluster status") || !strings.Contains(errs, "-local") {
		t.Errorf("cluster status -h: exit %d:\n%s", code, errs)
	}
}

// A single node answers the cluster verbs not_found, saying how to start
// a cluster's node (exit 1); its reads take --consistency and ignore it.
func TestRun_ClusterOnSingleNode(t *testing.T) {
	n := newTestNode(t)
	_, errs, code := runIn(t, "cluster", "status", "--server", n.url)
	if want := "nexus cluster: this node is not part of a cluster (start it with --node-id and --raft-addr) (not_found)\n"; code != 1 || errs != want {
		t.Errorf("cluster status of a single node: exit %d, %q; want 1, %q", code, errs, want)
	}
	c, err := n.store.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: "one node"})
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code := runIn(t, "get", c.ID.String(), "--consistency", "linearizable", "--server", n.url)
	if code != 0 || !strings.Contains(out, "one node") {
		t.Errorf("get --consistency linearizable on a single node: exit %d:\n%s%s", code, out, errs)
	}
}

func TestPrintClusterStatus(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	contact := now.Add(-40 * time.Millisecond)
	head := "52565a3eeeef0123456789abcdef0123456789ab"
	st := &cluster.Status{
		NodeID: "n2", State: "follower", Leader: "n1", LeaderAPI: "http://10.0.0.1:7411", Term: 3,
		CommitIndex: 42, AppliedIndex: 41, LastIndex: 42, Head: head, LastContact: &contact,
		Members: []cluster.MemberStatus{
			{Member: cluster.Member{ID: "n1", RaftAddr: "10.0.0.1:7412", APIURL: "http://10.0.0.1:7411"}, Voter: true, Leader: true, AppliedIndex: 42, Head: head},
			{Member: cluster.Member{ID: "n2", RaftAddr: "10.0.0.2:7412", APIURL: "http://10.0.0.2:7411"}, Voter: true, AppliedIndex: 41, Head: head},
			{Member: cluster.Member{ID: "n3", RaftAddr: "10.0.0.3:7412", APIURL: "http://10.0.0.3:7411"}, Voter: true,
				Error: `Get "http://10.0.0.3:7411/v1/cluster?local=true": dial tcp 10.0.0.3:7411: connect: connection refused`},
		},
	}
	var b strings.Builder
	printClusterStatus(&b, st, now)
	want := `MEMBER  RAFT ADDR      API                   VOTER  LEADER  APPLIED  HEAD          ERROR
n1      10.0.0.1:7412  http://10.0.0.1:7411  yes    yes     42       52565a3eeeef  -
n2      10.0.0.2:7412  http://10.0.0.2:7411  yes    no      41       52565a3eeeef  -
n3      10.0.0.3:7412  http://10.0.0.3:7411  yes    no      -        -             dial tcp 10.0.0.3:7411: connect: connection refused

node n2: follower, term 3, commit index 42, applied index 41, head 52565a3eeeef
leader: n1 (http://10.0.0.1:7411), last contact 40ms ago
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	st.Leader, st.LeaderAPI, st.LastContact, st.Stalled = "", "", nil, "disk full"
	printClusterStatus(&b, st, now)
	for _, line := range []string{
		"leader: none known: this node cannot reach a quorum; writes are refused (no_quorum), reads are served from its own data, marked stale\n",
		"applying committed entries is stalled and being retried: disk full\n",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("without a leader, missing %q:\n%s", line, b.String())
		}
	}
}
