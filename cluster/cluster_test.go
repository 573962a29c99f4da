package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/gitstore"
)

// member is one in-process node: a store and its raft.
type member struct {
	id    string
	dir   string
	addr  string
	store *gitstore.Store
	node  *cluster.Node
}

type testCluster struct {
	t       *testing.T
	members []*member
	cfg     func(*cluster.Config)
}

func newCluster(t *testing.T, n int, cfg func(*cluster.Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, cfg: cfg}
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m := &member{id: fmt.Sprintf("n%d", i+1), dir: t.TempDir(), addr: ln.Addr().String()}
		tc.members = append(tc.members, m)
		tc.start(m, ln, i == 0)
	}
	t.Cleanup(func() {
		for _, m := range tc.members {
			tc.stop(m)
		}
	})
	leader := tc.leader(nil)
	for _, m := range tc.members[1:] {
		if err := leader.node.Join(context.Background(), cluster.Member{ID: m.id, RaftAddr: m.addr, APIURL: "http://" + m.id}); err != nil {
			t.Fatalf("join %s: %v", m.id, err)
		}
	}
	return tc
}

func (tc *testCluster) start(m *member, ln net.Listener, bootstrap bool) {
	tc.t.Helper()
	st, err := gitstore.Open(filepath.Join(m.dir, "data"), gitstore.Options{})
	if err != nil {
		tc.t.Fatal(err)
	}
	cfg := cluster.Config{
		NodeID: m.id, RaftAddr: m.addr, Listener: ln, APIURL: "http://" + m.id,
		Dir: filepath.Join(m.dir, "raft"), Bootstrap: bootstrap, Timeouts: cluster.RaftTimeouts(), // fast ones flap on a loaded machine
	}
	if tc.cfg != nil {
		tc.cfg(&cfg)
	}
	node, err := cluster.Open(cfg, st)
	if err != nil {
		st.Close()
		tc.t.Fatal(err)
	}
	m.store, m.node = st, node
}

func (tc *testCluster) stop(m *member) {
	if m.node != nil {
		m.node.Close()
		m.node = nil
	}
	if m.store != nil {
		m.store.Close()
		m.store = nil
	}
}

// restart starts a stopped member again on its address.
func (tc *testCluster) restart(m *member) {
	tc.t.Helper()
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", m.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old listener's port is being released
	}
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.start(m, ln, false)
}

// leader waits for a member (other than not) to lead and take writes.
func (tc *testCluster) leader(not *member) *member {
	tc.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range tc.members {
			if m != not && m.node != nil && m.node.IsLeader() {
				return m
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tc.t.Fatal("no leader within 20 s")
	return nil
}

// converge waits until every running member applied as far as the
// leader and has its head, and returns the head.
func (tc *testCluster) converge() string {
	tc.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := tc.leader(nil)
		want, head := l.node.AppliedIndex(), l.store.Head().String()
		same := true
		for _, m := range tc.members {
			if m.node == nil {
				continue
			}
			if m.node.AppliedIndex() < want || m.store.Head().String() != head {
				same = false
			}
		}
		if same {
			return head
		}
		if time.Now().After(deadline) {
			for _, m := range tc.members {
				if m.node != nil {
					tc.t.Logf("%s: %+v", m.id, m.node.Status())
				}
			}
			tc.t.Fatal("members did not converge within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// put writes through m, again while the cluster answers that nothing was
// written (a moment without a leader on a loaded machine).
func put(t *testing.T, m *member, content string) *nexus.Context {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := m.node.Put(context.Background(), nexus.Draft{Type: nexus.TypeObservation, Namespace: "t", Content: content})
		var nl *cluster.NotLeaderError
		code := nexus.ErrorCode(err)
		if (code == nexus.EUnavailable || (code == nexus.ENoQuorum && !errors.As(err, &nl))) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // an election takes about a second
			continue
		}
		if err != nil {
			t.Fatalf("put on %s: %v", m.id, err)
		}
		return c
	}
}

func gitFsck(t *testing.T, m *member) {
	t.Helper()
	out, err := exec.Command("git", "--git-dir", filepath.Join(m.dir, "data", "repo.git"), "fsck", "--strict", "--no-dangling").CombinedOutput()
	if err != nil {
		t.Fatalf("git fsck on %s: %v\n%s", m.id, err, out)
	}
}

func TestCluster_ReplicatesIdenticalCommits(t *testing.T) {
	tc := newCluster(t, 3, nil)
	l := tc.leader(nil)
	var wg sync.WaitGroup
	ids := make([]nexus.ID, 200)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(ids); i += 8 {
				ids[i] = put(t, l, fmt.Sprintf("context %d", i)).ID
			}
		}()
	}
	wg.Wait()
	head := tc.converge()
	for _, m := range tc.members {
		if m.store.Len() != len(ids) {
			t.Errorf("%s holds %d contexts, want %d", m.id, m.store.Len(), len(ids))
		}
		for _, id := range ids {
			if _, err := m.store.Get(context.Background(), id); err != nil {
				t.Fatalf("%s: %v", m.id, err)
			}
		}
		if got := m.store.LogIndex(); got == 0 {
			t.Errorf("%s: log index %d", m.id, got)
		}
	}
	t.Logf("head %s on 3 members", head)
	// A follower refuses writes and names the leader.
	f := tc.members[1]
	if f == l {
		f = tc.members[2]
	}
	_, err := f.node.Put(context.Background(), nexus.Draft{Type: nexus.TypeObservation, Content: "x"})
	var nl *cluster.NotLeaderError
	if !errors.As(err, &nl) || nl.Leader != l.id || nexus.ErrorCode(err) != nexus.ENoQuorum {
		t.Fatalf("put on a follower: %v, want a NotLeaderError naming %s", err, l.id)
	}
	tc.fsckAll()
}

// fsckAll stops every member (so that no pack merge runs meanwhile) and
// checks each repository with stock git.
func (tc *testCluster) fsckAll() {
	tc.t.Helper()
	for _, m := range tc.members {
		tc.stop(m)
		gitFsck(tc.t, m)
	}
}

func TestCluster_LeaderKilledAndRestarted(t *testing.T) {
	tc := newCluster(t, 3, nil)
	l := tc.leader(nil)
	for i := range 50 {
		put(t, l, fmt.Sprintf("before %d", i))
	}
	tc.stop(l)
	nl := tc.leader(l)
	for i := range 50 {
		put(t, nl, fmt.Sprintf("after %d", i))
	}
	tc.restart(l)
	head := tc.converge()
	for _, m := range tc.members {
		if m.store.Len() != 100 {
			t.Errorf("%s holds %d contexts, want 100", m.id, m.store.Len())
		}
	}
	tc.fsckAll()
	t.Logf("converged at %s", head)
}

func TestCluster_WipedNodeRejoinsFromSnapshot(t *testing.T) {
	tc := newCluster(t, 3, func(c *cluster.Config) { c.SnapshotThreshold = 64; c.TrailingLogs = 16 })
	l := tc.leader(nil)
	for i := range 300 {
		put(t, l, fmt.Sprintf("context %d", i))
	}
	tc.converge()
	if err := l.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	var w *member
	for _, m := range tc.members {
		if m != l {
			w = m
			break
		}
	}
	tc.stop(w)
	if err := os.RemoveAll(w.dir); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(w.dir, 0o700)
	for i := range 100 {
		put(t, l, fmt.Sprintf("while away %d", i))
	}
	if err := l.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	tc.restart(w)
	head := tc.converge()
	if w.store.Len() != 400 {
		t.Fatalf("wiped node holds %d contexts, want 400", w.store.Len())
	}
	put(t, l, "after the rejoin")
	if h := tc.converge(); h == head {
		t.Fatal("head did not move")
	}
	tc.fsckAll()
}

// A linearizable read confirms the leadership with a quorum, but when
// every state-changing entry is applied it writes nothing to the log.
func TestCluster_LinearizableReadsWriteNothing(t *testing.T) {
	tc := newCluster(t, 3, nil)
	old := tc.leader(nil)
	put(t, old, "one")
	tc.converge()
	// A new term begins with raft's own no-op entry, which the state
	// machine never sees.
	if err := old.node.TransferLeadership(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	l := tc.leader(old)
	before := l.node.Status().LastIndex
	for range 10 {
		if err := l.node.ReadBarrier(context.Background(), cluster.Linearizable); err != nil {
			t.Fatal(err)
		}
	}
	if after := l.node.Status().LastIndex; after != before {
		t.Fatalf("10 linearizable reads appended %d entries to the log", after-before)
	}
	// A follower does not serve them: it names the leader.
	for _, m := range tc.members {
		if m == l {
			continue
		}
		var nl *cluster.NotLeaderError
		if err := m.node.ReadBarrier(context.Background(), cluster.Linearizable); !errors.As(err, &nl) || nl.Leader != l.id {
			t.Fatalf("linearizable read on a follower: %v", err)
		}
	}
}

// A store whose commits carry the Log-Index of an earlier log (its raft
// directory removed, or restored from a cluster's backup) bootstraps a new
// cluster: the new log's entries are all applied, none mistaken for ones
// the store already holds, and a restart keeps them.
func TestCluster_NewLogOverAnOldStore(t *testing.T) {
	tc := newCluster(t, 1, nil)
	m := tc.members[0]
	for i := range 50 {
		put(t, m, fmt.Sprint("first life ", i))
	}
	if m.store.LogIndex() < 50 {
		t.Fatalf("log index %d after 50 writes", m.store.LogIndex())
	}
	tc.stop(m)
	if err := os.RemoveAll(filepath.Join(m.dir, "raft")); err != nil {
		t.Fatal(err)
	}
	relisten := func(bootstrap bool) {
		t.Helper()
		var ln net.Listener
		var err error
		for range 100 {
			if ln, err = net.Listen("tcp", m.addr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond) // the old listener's port is being released
		}
		if err != nil {
			t.Fatal(err)
		}
		tc.start(m, ln, bootstrap)
	}
	relisten(true)
	l := tc.leader(nil)
	var ids []nexus.ID
	for i := range 10 {
		ids = append(ids, put(t, l, fmt.Sprint("second life ", i)).ID)
	}
	check := func(want int) {
		t.Helper()
		if m.store.Len() != want {
			t.Fatalf("%d contexts, want %d", m.store.Len(), want)
		}
		for _, id := range ids {
			if _, err := m.store.Get(context.Background(), id); err != nil {
				t.Fatalf("an acknowledged write of the new log: %v", err)
			}
		}
	}
	check(60)
	tc.stop(m)
	relisten(false)
	tc.leader(nil)
	check(60)
	ids = append(ids, put(t, m, "after a restart").ID)
	check(61)
	tc.fsckAll()
}

// A node that would join a cluster with contexts of its own is refused:
// the leader's log would be applied over a different history.
func TestCluster_JoinNeedsAnEmptyStore(t *testing.T) {
	dir := t.TempDir()
	st, err := gitstore.Open(filepath.Join(dir, "data"), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Put(context.Background(), nexus.Draft{Type: nexus.TypeObservation, Content: "mine"}); err != nil {
		t.Fatal(err)
	}
	_, err = cluster.Open(cluster.Config{NodeID: "j", RaftAddr: "127.0.0.1:0", Dir: filepath.Join(dir, "raft")}, st)
	if nexus.ErrorCode(err) != nexus.EInvalid || !strings.Contains(err.Error(), "starts with an empty data directory") {
		t.Fatalf("joining with a non-empty store: %v", err)
	}
}
