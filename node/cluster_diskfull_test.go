package node_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/crashfs"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// A follower whose disk fills (a real tmpfs of 6 MiB) falls behind while
// the other two keep acknowledging writes; once it has room again it
// catches up by itself, and every node ends at the same head with every
// acknowledged write.
func TestCluster_FollowerDiskFull(t *testing.T) {
	mnt := crashfs.Tmpfs(t, "6m")
	nodes := nodetest.OpenCluster(t, 3, func(i int, cfg *node.Config) {
		cfg.NoSearch = true
		if i == 2 {
			cfg.Dir = filepath.Join(mnt, "data")
		}
	})
	full := nodes[2]
	ctx := context.Background()
	// leaderNotFull returns the leader, first moving the leadership off the
	// follower whose disk fills if an election gave it to it (on a loaded
	// machine a leader that misses its heartbeats steps down, and any node
	// with the whole log may win the next election).
	leaderNotFull := func() *nodetest.Node {
		for range 10 {
			l := nodetest.Leader(t, nodes)
			if l != full {
				return l
			}
			if err := full.Cluster().TransferLeadership(ctx, "n1"); err != nil {
				t.Logf("moving the leadership off %s: %v", full.Config.Cluster.NodeID, err)
			}
			// A transfer refused at once (one under way, n1 behind) must
			// not use up the tries: wait for the leadership to move, or
			// for the next try.
			for deadline := time.Now().Add(5 * time.Second); full.Cluster().IsLeader() && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
		}
		t.Fatalf("%s kept the leadership through 10 transfers", full.Config.Cluster.NodeID)
		return nil
	}
	leader := leaderNotFull()
	big := strings.Repeat("incompressible? no, but large: ", 2000) // ~60 KB
	acked := map[nexus.ID]bool{}
	unknown := 0 // writes whose leader lost its leadership before confirming them
	stalled := false
	for i := 0; i < 400 && !stalled; i++ {
		c, err := leader.Client.Put(ctx, nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprintf("%d %s", i, big)})
		switch nexus.ErrorCode(err) {
		case nexus.ENoQuorum:
			// An election on a loaded machine: nothing was written.
			leader = leaderNotFull()
			continue
		case nexus.EOutcomeUnknown:
			unknown++
			leader = leaderNotFull()
			continue
		}
		if err != nil {
			t.Fatalf("write %d on the leader while a follower's disk fills: %v", i, err)
		}
		acked[c.ID] = true
		st := full.Cluster().Status()
		stalled = st.Stalled != "" || st.AppliedIndex+20 < leader.Cluster().AppliedIndex()
	}
	if !stalled {
		t.Fatal("the follower's 6 MiB disk never filled: the test did not set up its fault")
	}
	h := full.Health(ctx).Components[nexus.ComponentCluster]
	t.Logf("full follower: %+v", h)
	// Room again: the follower catches up without an operator.
	if out, err := exec.Command("mount", "-o", "remount,size=256m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	for i := range 5 {
		c, err := putRetry(t, leader, nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprint("after ", i)})
		if err != nil {
			t.Fatal(err)
		}
		acked[c.ID] = true
	}
	// The writes after the remount go through the leader of the moment.
	head := nodetest.Converge(t, nodes)
	for _, n := range nodes {
		if n.Head() != head || n.Len() < len(acked) || n.Len() > len(acked)+unknown {
			t.Fatalf("%s: %d contexts at %s, want %d (+ up to %d of unknown outcome) at %s", n.Config.Cluster.NodeID, n.Len(), n.Head(), len(acked), unknown, head)
		}
		for id := range acked {
			if _, err := n.Store().Get(ctx, id); err != nil {
				t.Fatalf("%s lost %s: %v", n.Config.Cluster.NodeID, id, err)
			}
		}
	}
	nodetest.Wait(t, 10*time.Second, "the follower's cluster health", func() bool {
		return full.Health(ctx).Components[nexus.ComponentCluster].Status == nexus.StatusHealthy
	})
	fsckClosed(t, nodes)
}
