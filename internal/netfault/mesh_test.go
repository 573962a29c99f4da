package netfault_test

import (
	"net"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/internal/netfault"
)

// cluster is n real TCP servers (the nodes) and a mesh between them.
type cluster struct {
	nodes []*server
	mesh  *netfault.Mesh
}

func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{}
	addrs := make([]string, n)
	for i := range n {
		c.nodes = append(c.nodes, startServer(t))
		addrs[i] = c.nodes[i].addr()
	}
	m, err := newNetwork(t).Mesh("m", addrs)
	if err != nil {
		t.Fatal(err)
	}
	c.mesh = m
	return c
}

// dial has node i dial node j's real address through node i's dialer, and returns both ends.
func (c *cluster) dial(t *testing.T, i, j int) (from, to net.Conn) {
	t.Helper()
	conn, err := c.mesh.Dialer(i)(c.nodes[j].addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if got, want := conn.RemoteAddr().String(), c.mesh.Addr(i, j); got != want {
		t.Fatalf("node %d dialed %s for node %d, want %s", i, got, j, want)
	}
	return conn, c.nodes[j].accept(t)
}

// check dials every ordered pair and finds that i reaches j (a request and its answer pass) exactly
// when reach(i, j).
func (c *cluster) check(t *testing.T, reach func(i, j int) bool) {
	t.Helper()
	for i := range c.nodes {
		for j := range c.nodes {
			if i == j {
				continue
			}
			from, to := c.dial(t, i, j)
			if reach(i, j) {
				passes(t, from, to, "request")
				passes(t, to, from, "answer")
			} else {
				blocked(t, from, to, "request")
			}
		}
	}
}

func in(i int, set ...int) bool {
	for _, s := range set {
		if i == s {
			return true
		}
	}
	return false
}

func all(int, int) bool { return true }

func TestMeshPartition(t *testing.T) {
	c := newCluster(t, 3)
	c.check(t, all)

	p, err := c.mesh.Partition([]int{0}, []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	c.check(t, func(i, j int) bool { return i != 0 && j != 0 })
	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	c.check(t, all)

	if _, err := c.mesh.Isolate(1); err != nil {
		t.Fatal(err)
	}
	c.check(t, func(i, j int) bool { return i != 1 && j != 1 })
	if err := c.mesh.Heal(); err != nil {
		t.Fatal(err)
	}
	c.check(t, all)

	// Node 1 in no group bridges the two others.
	if _, err := c.mesh.Partition([]int{0}, []int{2}); err != nil {
		t.Fatal(err)
	}
	c.check(t, func(i, j int) bool { return !(in(i, 0, 2) && in(j, 0, 2)) })
	if err := c.mesh.Heal(); err != nil {
		t.Fatal(err)
	}

	// One link cut: 0 no longer reaches 1, 1 still reaches 0.
	if _, err := c.mesh.Link(0, 1).Cut(); err != nil {
		t.Fatal(err)
	}
	c.check(t, func(i, j int) bool { return !(i == 0 && j == 1) })
	if err := c.mesh.Heal(); err != nil {
		t.Fatal(err)
	}
	c.check(t, all)
}

func TestMeshAddresses(t *testing.T) {
	c := newCluster(t, 3)
	m := c.mesh
	if m.Size() != 3 {
		t.Fatalf("size %d", m.Size())
	}
	seen := map[string]bool{}
	for i := range 3 {
		if m.NodeAddr(i) != c.nodes[i].addr() || m.Addr(i, i) != c.nodes[i].addr() {
			t.Fatalf("node %d: NodeAddr %s, Addr(i, i) %s, want %s", i, m.NodeAddr(i), m.Addr(i, i), c.nodes[i].addr())
		}
		for j := range 3 {
			if i == j {
				continue
			}
			l := m.Link(i, j)
			if m.Addr(i, j) != l.Addr() || l.Upstream() != c.nodes[j].addr() || seen[l.Addr()] {
				t.Fatalf("pair %d→%d: Addr %s, link %s → %s (each pair needs its own link to node %d)",
					i, j, m.Addr(i, j), l.Addr(), l.Upstream(), j)
			}
			seen[l.Addr()] = true
		}
	}

	// A node dials itself directly.
	conn, err := m.Dialer(1)(c.nodes[1].addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.RemoteAddr().String() != c.nodes[1].addr() {
		t.Fatalf("node 1 dialed %s to reach itself", conn.RemoteAddr())
	}
	c.nodes[1].accept(t)

	if _, err := m.Dialer(0)("127.0.0.1:1", time.Second); err == nil {
		t.Fatal("a dial to no node's address accepted")
	}
	if _, err := m.Partition([]int{0, 1}, []int{1, 2}); err == nil {
		t.Fatal("a node in two groups accepted")
	}
	if _, err := m.Partition([]int{0}, []int{3}); err == nil {
		t.Fatal("a node out of range accepted")
	}
	if _, err := m.Isolate(-1); err == nil {
		t.Fatal("isolating node -1 accepted")
	}
	n := newNetwork(t)
	if _, err := n.Mesh("one", []string{c.nodes[0].addr()}); err == nil {
		t.Fatal("a mesh of one node accepted")
	}
	if _, err := n.Mesh("dup", []string{c.nodes[0].addr(), c.nodes[0].addr()}); err == nil {
		t.Fatal("a mesh with two nodes at one address accepted")
	}
}
