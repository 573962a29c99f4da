package netfault

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Mesh connects N nodes pairwise through links: for each ordered pair (i, j), i ≠ j, the link i→j
// forwards to node j's address and is the way node i reaches node j. Its methods are safe for
// concurrent use.
type Mesh struct {
	name  string
	addrs []string
	index map[string]int // node address → node
	links [][]*Link      // links[i][j]: i→j; nil on the diagonal
}

// Mesh starts a link for every ordered pair of the nodes whose real addresses are addrs (node i is
// addrs[i]); the links are named "name/i->j". The addresses must be distinct host:port pairs.
func (n *Network) Mesh(name string, addrs []string) (*Mesh, error) {
	if len(addrs) < 2 {
		return nil, fmt.Errorf("netfault: mesh %q: %d nodes, need at least 2", name, len(addrs))
	}
	m := &Mesh{name: name, addrs: append([]string(nil), addrs...), index: make(map[string]int, len(addrs))}
	for i, a := range addrs {
		if j, dup := m.index[a]; dup {
			return nil, fmt.Errorf("netfault: mesh %q: nodes %d and %d have the same address %s", name, j, i, a)
		}
		m.index[a] = i
	}
	m.links = make([][]*Link, len(addrs))
	for i := range addrs {
		m.links[i] = make([]*Link, len(addrs))
		for j := range addrs {
			if i == j {
				continue
			}
			l, err := n.Link(fmt.Sprintf("%s/%d->%d", name, i, j), addrs[j])
			if err != nil {
				return nil, fmt.Errorf("netfault: mesh %q: %w", name, err)
			}
			m.links[i][j] = l
		}
	}
	return m, nil
}

// Size returns the number of nodes.
func (m *Mesh) Size() int { return len(m.addrs) }

// NodeAddr returns node i's real address, as given to Network.Mesh.
func (m *Mesh) NodeAddr(i int) string { return m.addrs[i] }

// Link returns the link i→j, through which node i reaches node j. It panics if i or j is out of
// range or i == j (a node reaches itself directly).
func (m *Mesh) Link(i, j int) *Link {
	if i == j {
		panic(fmt.Sprintf("netfault: mesh %q: no link from node %d to itself", m.name, i))
	}
	return m.links[i][j]
}

// Addr returns the address node i dials to reach node j: the listen address of the link i→j, or
// node i's own address when j == i. It panics if i or j is out of range.
func (m *Mesh) Addr(i, j int) string {
	if i == j {
		return m.addrs[i]
	}
	return m.links[i][j].Addr()
}

// Dialer returns node i's dial: given the real address of a node j it dials the link i→j (node i's
// own address is dialed directly), with timeout as net.DialTimeout has it; an address that is no
// node's is an error and is not dialed. Its signature is that of a raft.StreamLayer's Dial once the
// raft.ServerAddress is converted to a string. It panics if i is out of range.
func (m *Mesh) Dialer(i int) func(addr string, timeout time.Duration) (net.Conn, error) {
	_ = m.addrs[i]
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		j, ok := m.index[addr]
		if !ok {
			return nil, fmt.Errorf("netfault: mesh %q: node %d dials %s, which is no node's address", m.name, i, addr)
		}
		return net.DialTimeout("tcp", m.Addr(i, j), timeout)
	}
}

// Partition cuts (see Link.Cut) every link between two nodes of different groups, in both
// directions: no node of one group reaches a node of another, and the nodes of one group still
// reach each other. Nodes in no group keep all their links (a node that bridges two groups, for
// example). A node may be in one group only. It returns the cuts as one Fault.
func (m *Mesh) Partition(groups ...[]int) (*Fault, error) {
	group := make(map[int]int)
	for g, nodes := range groups {
		for _, i := range nodes {
			if i < 0 || i >= len(m.addrs) {
				return nil, fmt.Errorf("netfault: mesh %q: partition: no node %d (%d nodes)", m.name, i, len(m.addrs))
			}
			if h, dup := group[i]; dup {
				return nil, fmt.Errorf("netfault: mesh %q: partition: node %d is in groups %d and %d", m.name, i, h, g)
			}
			group[i] = g
		}
	}
	var cuts []*Fault
	for i := range m.addrs {
		for j := range m.addrs {
			gi, iok := group[i]
			gj, jok := group[j]
			if !iok || !jok || gi == gj {
				continue
			}
			f, err := m.links[i][j].Cut()
			if err != nil {
				return nil, errors.Join(err, joinFaults("", cuts).Remove())
			}
			cuts = append(cuts, f)
		}
	}
	return joinFaults(fmt.Sprintf("partition %s %s", m.name, groupsString(groups)), cuts), nil
}

// Isolate cuts every link to and from node i: it reaches no node and no node reaches it.
func (m *Mesh) Isolate(i int) (*Fault, error) {
	if i < 0 || i >= len(m.addrs) {
		return nil, fmt.Errorf("netfault: mesh %q: isolate: no node %d (%d nodes)", m.name, i, len(m.addrs))
	}
	others := make([]int, 0, len(m.addrs)-1)
	for j := range m.addrs {
		if j != i {
			others = append(others, j)
		}
	}
	return m.Partition([]int{i}, others)
}

// Heal removes every fault of every link of the mesh.
func (m *Mesh) Heal() error {
	var errs []error
	for i := range m.links {
		for _, l := range m.links[i] {
			if l != nil {
				errs = append(errs, l.Heal())
			}
		}
	}
	return errors.Join(errs...)
}

func groupsString(groups [][]int) string {
	parts := make([]string, len(groups))
	for g, nodes := range groups {
		parts[g] = strings.Trim(fmt.Sprint(nodes), "[]")
		parts[g] = "{" + parts[g] + "}"
	}
	return strings.Join(parts, " | ")
}
