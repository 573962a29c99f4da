package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/internal/netfault"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// faultCluster is a cluster of in-process nodes whose raft traffic goes
// through a netfault mesh: node i reaches node j over the link i→j.
type faultCluster struct {
	nodes []*nodetest.Node
	mesh  *netfault.Mesh
}

// openFaultCluster opens size nodes (nodetest.OpenClusterOn) with their
// raft dials routed through a mesh built over their raft listeners.
func openFaultCluster(t *testing.T, size int) *faultCluster {
	t.Helper()
	rafts := nodetest.RaftListeners(t, size)
	addrs := make([]string, size)
	for i, ln := range rafts {
		addrs[i] = ln.Addr().String()
	}
	network := netfault.New(nil)
	t.Cleanup(func() { network.Close() }) // after the nodes: cleanups run last first
	mesh, err := network.Mesh("raft", addrs)
	if err != nil {
		t.Fatal(err)
	}
	nodes := nodetest.OpenClusterOn(t, rafts, func(i int, cfg *node.Config) { cfg.Cluster.Dial = mesh.Dialer(i) })
	return &faultCluster{nodes: nodes, mesh: mesh}
}

// index returns n's place in the cluster (its mesh node).
func (fc *faultCluster) index(n *nodetest.Node) int {
	for i, m := range fc.nodes {
		if m == n {
			return i
		}
	}
	panic("not a node of the cluster")
}

// others returns the nodes other than not.
func (fc *faultCluster) others(not *nodetest.Node) []*nodetest.Node {
	var out []*nodetest.Node
	for _, n := range fc.nodes {
		if n != not {
			out = append(out, n)
		}
	}
	return out
}

// linksOf pauses, slows or cuts (by fault) every link to and from node i.
func (fc *faultCluster) linksOf(t *testing.T, i int, fault func(l *netfault.Link) (*netfault.Fault, error)) []*netfault.Fault {
	t.Helper()
	var out []*netfault.Fault
	for j := range fc.nodes {
		if j == i {
			continue
		}
		for _, l := range []*netfault.Link{fc.mesh.Link(i, j), fc.mesh.Link(j, i)} {
			f, err := fault(l)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, f)
		}
	}
	return out
}

func remove(t *testing.T, faults ...*netfault.Fault) {
	t.Helper()
	for _, f := range faults {
		if err := f.Remove(); err != nil {
			t.Fatal(err)
		}
	}
}

// answer is what a node answered to one request.
type answer struct {
	status   int
	code     nexus.Code
	servedBy string
	stale    bool
	body     []byte
	err      error // the request got no answer (timeout, connection)
}

func (a answer) String() string {
	if a.err != nil {
		return a.err.Error()
	}
	return fmt.Sprintf("%d %s (served by %s, stale %v): %s", a.status, a.code, a.servedBy, a.stale, bytes.TrimSpace(a.body))
}

// call sends one request to base (a node's API URL) with hc, waiting at
// most timeout for the answer.
func call(hc *http.Client, method, base, path string, in any, timeout time.Duration) answer {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return answer{err: err}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return answer{err: err}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{err: err}
	}
	a := answer{status: resp.StatusCode, servedBy: resp.Header.Get(httpapi.HeaderServedBy),
		stale: resp.Header.Get(httpapi.HeaderStale) == "true", body: b}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Code nexus.Code `json:"code"`
			} `json:"error"`
		}
		json.Unmarshal(b, &e)
		a.code = e.Error.Code
	}
	return a
}

// write posts an observation with content into ns through n.
func write(n *nodetest.Node, ns, content string, timeout time.Duration) (answer, nexus.ID) {
	a := call(n.HTTP, http.MethodPost, n.URL, "/v1/contexts",
		nexus.Draft{Type: nexus.TypeObservation, Namespace: ns, Content: content}, timeout)
	if a.status != http.StatusCreated {
		return a, nexus.ZeroID
	}
	var c nexus.Context
	if err := json.Unmarshal(a.body, &c); err != nil {
		a.err = err
		return a, nexus.ZeroID
	}
	return a, c.ID
}

// acked is the writes a cluster acknowledged (201), by content.
type acked struct {
	mu  sync.Mutex
	ids map[string]nexus.ID
}

func newAcked() *acked { return &acked{ids: make(map[string]nexus.ID)} }

func (a *acked) add(content string, id nexus.ID) {
	a.mu.Lock()
	a.ids[content] = id
	a.mu.Unlock()
}

// mustWrite writes through n and fails unless n acknowledges the write
// (201) within a minute; it records the write. Raft may lose its leader
// for a moment on a loaded machine (its fast timeouts are tight), so a
// write refused with no_quorum (not made) is sent again, and one whose
// outcome is unknown — answered outcome_unknown, or not answered within
// its 10 s (a starved machine can take that long to commit) — is sent
// again with content of its own (the first may be stored).
func mustWrite(t *testing.T, ack *acked, n *nodetest.Node, ns, content string) nexus.ID {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for try := 0; ; try++ {
		a, id := write(n, ns, content, 10*time.Second)
		unanswered := errors.Is(a.err, context.DeadlineExceeded)
		switch {
		case a.status == http.StatusCreated:
			ack.add(content, id)
			return id
		case !(refused(a) || unanswered) || time.Now().After(deadline):
			t.Fatalf("write %q via %s: %s", content, n.Config.Cluster.NodeID, a)
		case a.code == nexus.EOutcomeUnknown || unanswered:
			content = fmt.Sprintf("%s (again %d)", content, try)
		}
	}
}

// listAll lists every context a node holds (at consistency none: its
// own copy), following the pages.
func listAll(t *testing.T, n *nodetest.Node, ns string) []*nexus.Context {
	t.Helper()
	var all []*nexus.Context
	q := url.Values{"consistency": {"none"}, "limit": {"1000"}}
	if ns != "" {
		q.Set("namespace", ns)
	}
	for {
		a := call(n.HTTP, http.MethodGet, n.URL, "/v1/contexts?"+q.Encode(), nil, 30*time.Second)
		if a.status != http.StatusOK {
			t.Fatalf("list on %s: %s", n.Config.Cluster.NodeID, a)
		}
		var page struct {
			Contexts   []*nexus.Context `json:"contexts"`
			NextCursor string           `json:"next_cursor"`
		}
		if err := json.Unmarshal(a.body, &page); err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Contexts...)
		if page.NextCursor == "" || len(page.Contexts) == 0 {
			return all
		}
		q.Set("cursor", page.NextCursor)
	}
}

// checkHealed waits for the open nodes to converge and checks each: the
// same head, every acknowledged write present under its id, no content
// stored twice, none of absent stored, and git fsck --strict clean. It
// returns the common head.
func checkHealed(t *testing.T, nodes []*nodetest.Node, ack *acked, absent ...string) string {
	t.Helper()
	head := nodetest.Converge(t, nodes)
	ack.mu.Lock()
	defer ack.mu.Unlock()
	for _, n := range nodes {
		if n.Closed() {
			continue
		}
		id := n.Config.Cluster.NodeID
		if n.Head() != head {
			t.Fatalf("%s: head %s, want %s", id, n.Head(), head)
		}
		stored := make(map[string]nexus.ID)
		for _, c := range listAll(t, n, "") {
			if prev, dup := stored[c.Content]; dup {
				t.Errorf("%s: content %q stored twice, as %s and %s", id, c.Content, prev, c.ID)
			}
			stored[c.Content] = c.ID
		}
		lost := 0
		for content, want := range ack.ids {
			if got, ok := stored[content]; !ok || got != want {
				lost++
				if lost <= 5 {
					t.Errorf("%s: acknowledged write %q (id %s) is missing (found %q)", id, content, want, got)
				}
			}
		}
		if lost > 0 {
			t.Fatalf("%s: %d of %d acknowledged writes lost", id, lost, len(ack.ids))
		}
		for _, content := range absent {
			if got, ok := stored[content]; ok {
				t.Fatalf("%s: %q, which was never committed, is stored as %s", id, content, got)
			}
		}
		// The node keeps running: its pack merges wait, or git fsck could
		// list a pack a merge then replaces ("index not opened").
		var out []byte
		if err := n.HoldMerges(func() (err error) {
			out, err = exec.Command("git", "--git-dir", n.Config.Dir+"/repo.git", "fsck", "--strict", "--no-dangling").CombinedOutput()
			return err
		}); err != nil {
			t.Fatalf("%s: git fsck: %v\n%s", id, err, out)
		}
	}
	return head
}

// refused reports whether a is a 503 that says the write was not made
// (no_quorum) or may not have been (outcome_unknown).
func refused(a answer) bool {
	return a.status == http.StatusServiceUnavailable && (a.code == nexus.ENoQuorum || a.code == nexus.EOutcomeUnknown)
}

func TestCluster_LeaderIsolatedInMinority(t *testing.T) {
	fc := openFaultCluster(t, 3)
	ack := newAcked()
	old := nodetest.Leader(t, fc.nodes)
	var first nexus.ID
	for i := range 10 {
		id := mustWrite(t, ack, old, "iso", fmt.Sprint("before ", i))
		if i == 0 {
			first = id
		}
	}
	iso, err := fc.mesh.Isolate(fc.index(old))
	if err != nil {
		t.Fatal(err)
	}
	// The isolated leader answers every write 503 within a few seconds:
	// outcome_unknown while it still believes it leads, then no_quorum.
	var unknown []string
	for k := 0; ; k++ {
		content := fmt.Sprint("to the isolated leader ", k)
		start := time.Now()
		a, _ := write(old, "iso", content, 5*time.Second)
		if !refused(a) {
			t.Fatalf("write %d to the isolated leader: %s, want 503 no_quorum or outcome_unknown", k, a)
		}
		if took := time.Since(start); took > 4*time.Second {
			t.Fatalf("write %d to the isolated leader answered after %v", k, took)
		}
		if a.code == nexus.ENoQuorum {
			break
		}
		unknown = append(unknown, content)
		if k == 3 {
			t.Fatalf("the isolated leader answered outcome_unknown %d times, never no_quorum", k+1)
		}
	}
	// The majority elects a leader of its own and takes writes, through
	// either of its nodes.
	next := nodetest.Leader(t, fc.nodes, old)
	for _, n := range fc.others(old) {
		for i := range 10 {
			mustWrite(t, ack, n, "iso", fmt.Sprintf("majority via %s: %d", n.Config.Cluster.NodeID, i))
		}
	}
	// The isolated node knows no leader: it serves reads at none, and at
	// the default level, marked stale; linearizable reads are refused;
	// its health is degraded.
	nodetest.Wait(t, 10*time.Second, "the isolated node to lose its leader", func() bool {
		id, _ := old.Cluster().Leader()
		return id == "" && !old.Cluster().IsLeader()
	})
	for _, level := range []string{"none", ""} {
		a := call(old.HTTP, http.MethodGet, old.URL, "/v1/contexts/"+first.String()+"?consistency="+level, nil, 5*time.Second)
		if a.status != http.StatusOK || !a.stale || !strings.Contains(string(a.body), "before 0") {
			t.Fatalf("read at %q on the isolated node: %s, want 200 stale", level, a)
		}
	}
	if a := call(old.HTTP, http.MethodGet, old.URL, "/v1/contexts/"+first.String()+"?consistency=linearizable", nil, 5*time.Second); a.status != http.StatusServiceUnavailable || a.code != nexus.ENoQuorum {
		t.Fatalf("linearizable read on the isolated node: %s, want 503 no_quorum", a)
	}
	if h := old.Health(context.Background()).Components[nexus.ComponentCluster]; h.Status != nexus.StatusDegraded {
		t.Fatalf("cluster health of the isolated node: %+v, want degraded", h)
	}
	remove(t, iso)
	// It catches up: same head; the writes it never committed are nowhere.
	checkHealed(t, fc.nodes, ack, unknown...)
	t.Logf("leader after the heal: %s (%s led the majority)", nodetest.Leader(t, fc.nodes).Config.Cluster.NodeID, next.Config.Cluster.NodeID)
}

func TestCluster_SymmetricPartition(t *testing.T) {
	fc := openFaultCluster(t, 3)
	ack := newAcked()
	for i := range 5 {
		mustWrite(t, ack, fc.nodes[i%3], "sym", fmt.Sprint("before ", i))
	}
	lone := fc.nodes[0]
	p, err := fc.mesh.Partition([]int{0}, []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	leader := nodetest.Leader(t, fc.nodes, lone)
	// Whoever led before, only the majority's leader takes writes now:
	// every 201 comes from it, and n1 never acknowledges one.
	var refusedByLone []string
	for i := range 20 {
		for _, n := range fc.nodes {
			content := fmt.Sprintf("during via %s: %d", n.Config.Cluster.NodeID, i)
			a, id := write(n, "sym", content, 5*time.Second)
			switch {
			case n == lone:
				if !refused(a) {
					t.Fatalf("write via the minority node: %s, want 503", a)
				}
				refusedByLone = append(refusedByLone, content)
			case a.status == http.StatusCreated:
				if a.servedBy == lone.Config.Cluster.NodeID || a.servedBy == "" {
					t.Fatalf("write via %s acknowledged by %q, want a node of the majority (led by %s)", n.Config.Cluster.NodeID, a.servedBy, leader.Config.Cluster.NodeID)
				}
				ack.add(content, id)
			case refused(a):
				// The majority lost its leader for a moment (a loaded
				// machine); the write may or may not be stored.
			default:
				t.Fatalf("write via %s in the majority: %s", n.Config.Cluster.NodeID, a)
			}
		}
	}
	if l := nodetest.Leader(t, fc.nodes, lone); l != leader {
		t.Logf("the majority's leader changed to %s during the partition", l.Config.Cluster.NodeID)
	}
	remove(t, p)
	// A write refused by the lone node was at most in its own log: gone.
	checkHealed(t, fc.nodes, ack, refusedByLone...)
}

func TestCluster_AsymmetricPartition(t *testing.T) {
	fc := openFaultCluster(t, 3)
	ack := newAcked()
	leader := nodetest.Leader(t, fc.nodes)
	li := fc.index(leader)
	var f *nodetest.Node
	for _, n := range fc.others(leader) {
		f = n
	}
	fi := fc.index(f)
	// The leader's requests to f are lost; f's requests to the leader
	// (and their answers) pass. f hears no heartbeat and campaigns; the
	// third node, which still hears the leader, keeps the quorum.
	cut, err := fc.mesh.Link(li, fi).CutOneWay(netfault.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	// The leader and the third node keep the quorum: every write through
	// them is acknowledged. f forwards to the leader while it knows it,
	// then campaigns (pre-votes, which the others refuse: they have a
	// leader) and refuses writes with no_quorum; it never acknowledges one
	// on its own.
	var viaF, refusedByF int
	for i := range 30 {
		for _, n := range fc.nodes {
			content := fmt.Sprintf("during via %s: %d", n.Config.Cluster.NodeID, i)
			if n != f {
				mustWrite(t, ack, n, "asym", content)
				continue
			}
			viaF++
			a, id := write(n, "asym", content, 5*time.Second)
			switch {
			case a.status == http.StatusCreated && a.servedBy != f.Config.Cluster.NodeID:
				ack.add(content, id)
			case refused(a):
				refusedByF++
			default:
				t.Fatalf("write %d via the cut follower: %s", i, a)
			}
		}
	}
	t.Logf("the follower cut one way refused %d of %d writes", refusedByF, viaF)
	remove(t, cut)
	checkHealed(t, fc.nodes, ack)
}

func TestCluster_SlowFollower(t *testing.T) {
	fc := openFaultCluster(t, 3)
	ack := newAcked()
	leader := nodetest.Leader(t, fc.nodes)
	slow := fc.others(leader)[0]
	faults := fc.linksOf(t, fc.index(slow), func(l *netfault.Link) (*netfault.Fault, error) {
		return l.Latency(200*time.Millisecond, 0)
	})
	// The leader and the fast follower make the quorum: every write is
	// acknowledged, through any node, the slow one included.
	for i := range 30 {
		n := fc.nodes[i%3]
		mustWrite(t, ack, n, "slow", fmt.Sprintf("via %s: %d", n.Config.Cluster.NodeID, i))
	}
	// It converges with the latency still on.
	checkHealed(t, fc.nodes, ack)
	remove(t, faults...)
	checkHealed(t, fc.nodes, ack)
}

func TestCluster_LeaderPaused(t *testing.T) {
	fc := openFaultCluster(t, 3)
	ack := newAcked()
	old := nodetest.Leader(t, fc.nodes)
	for i := range 10 {
		mustWrite(t, ack, old, "pause", fmt.Sprint("before ", i))
	}
	// Every link of the leader stalls, as if the process were stopped:
	// nothing is lost, everything is late.
	pause := fc.linksOf(t, fc.index(old), (*netfault.Link).Pause)
	next := nodetest.Leader(t, fc.nodes, old)
	nodetest.Wait(t, 10*time.Second, "the paused leader to step down", func() bool { return !old.Cluster().IsLeader() })
	var maybe []string
	for i := range 10 {
		mustWrite(t, ack, next, "pause", fmt.Sprint("new leader ", i))
		content := fmt.Sprint("via the paused node ", i)
		a, id := write(old, "pause", content, 5*time.Second)
		switch {
		case a.status == http.StatusCreated:
			// It knows the new leader and forwarded the write (the API is
			// not paused, only raft).
			if a.servedBy != next.Config.Cluster.NodeID {
				t.Fatalf("write via the paused node acknowledged by %s, want %s", a.servedBy, next.Config.Cluster.NodeID)
			}
			ack.add(content, id)
		case refused(a):
			maybe = append(maybe, content)
		default:
			t.Fatalf("write via the paused node: %s", a)
		}
	}
	remove(t, pause...)
	checkHealed(t, fc.nodes, ack)
	if old.Cluster().IsLeader() && nodetest.Leader(t, fc.nodes) == old {
		t.Logf("%s leads again after the pause", old.Config.Cluster.NodeID)
	}
	t.Logf("%d writes via the paused node refused", len(maybe))
}
