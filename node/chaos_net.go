package node

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
)

// The cluster scenarios of `nexus chaos`: a node of a cluster that opted
// in to chaos runs its raft traffic through a gate that can cut it (every
// connection closed, none accepted or dialed: the node is isolated from
// its peers) or delay it (every write to a peer waits), for a while.

// The cluster chaos scenarios.
const (
	ChaosLeaderIsolate = "leader_isolate"
	ChaosRaftLatency   = "raft_latency"
)

// raftGate is the node's raft network under chaos.
type raftGate struct {
	mu         sync.Mutex
	cutUntil   time.Time
	delay      time.Duration
	delayUntil time.Time
	conns      map[*gatedConn]struct{}
}

var errIsolated = errors.New("chaos: this node's raft is isolated")

// wrap puts the gate under the raft listener (listening on addr if ln is
// nil) and the dialer.
func (g *raftGate) wrap(addr string, ln net.Listener, dial func(string, time.Duration) (net.Conn, error)) (net.Listener, func(string, time.Duration) (net.Conn, error), error) {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, nil, nexus.WrapError(nexus.EInvalid, err, "cluster: cannot listen on the raft address %s", addr)
		}
	}
	g.conns = map[*gatedConn]struct{}{}
	gdial := func(addr string, timeout time.Duration) (net.Conn, error) {
		if g.cut() {
			return nil, errIsolated
		}
		var c net.Conn
		var err error
		if dial != nil {
			c, err = dial(addr, timeout)
		} else {
			c, err = net.DialTimeout("tcp", addr, timeout)
		}
		if err != nil {
			return nil, err
		}
		return g.track(c), nil
	}
	return &gatedListener{Listener: ln, g: g}, gdial, nil
}

func (g *raftGate) cut() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return time.Now().Before(g.cutUntil)
}

func (g *raftGate) lag() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Now().Before(g.delayUntil) {
		return g.delay
	}
	return 0
}

func (g *raftGate) track(c net.Conn) *gatedConn {
	gc := &gatedConn{Conn: c, g: g}
	g.mu.Lock()
	g.conns[gc] = struct{}{}
	g.mu.Unlock()
	return gc
}

// isolate cuts the node off its peers until until: every connection is
// closed, and none is accepted or dialed.
func (g *raftGate) isolate(until time.Time) int {
	g.mu.Lock()
	g.cutUntil = until
	conns := g.conns
	g.conns = map[*gatedConn]struct{}{}
	g.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	return len(conns)
}

func (g *raftGate) slow(d time.Duration, until time.Time) {
	g.mu.Lock()
	g.delay, g.delayUntil = d, until
	g.mu.Unlock()
}

type gatedListener struct {
	net.Listener
	g *raftGate
}

func (l *gatedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.g.cut() {
			c.Close()
			continue
		}
		return l.g.track(c), nil
	}
}

type gatedConn struct {
	net.Conn
	g *raftGate
}

func (c *gatedConn) Write(p []byte) (int, error) {
	if c.g.cut() {
		return 0, errIsolated
	}
	if d := c.g.lag(); d > 0 {
		time.Sleep(d)
	}
	return c.Conn.Write(p)
}

func (c *gatedConn) Read(p []byte) (int, error) {
	if c.g.cut() {
		return 0, errIsolated
	}
	return c.Conn.Read(p)
}

func (c *gatedConn) Close() error {
	c.g.mu.Lock()
	delete(c.g.conns, c)
	c.g.mu.Unlock()
	return c.Conn.Close()
}

// chaosIsolate isolates the leader's raft from its peers for hold: they
// elect another leader; it steps down, then catches up when the hold
// ends.
func (n *Node) chaosIsolate(params map[string]string, inj *httpapi.ChaosInjection) error {
	if !n.cluster.IsLeader() {
		id, api := n.cluster.Leader()
		return nexus.Errorf(nexus.EConflict, "leader_isolate: this node does not lead (the leader is %q at %s): send it there", id, api)
	}
	hold, err := chaosHold(params, 5*time.Second)
	if err != nil {
		return err
	}
	until, err := n.holdFault(ChaosLeaderIsolate, hold)
	if err != nil {
		return err
	}
	closed := n.raftGate.isolate(until)
	inj.InjectedAt, inj.Until = time.Now().UTC(), until.UTC()
	inj.What = fmt.Sprintf("the leader's raft cut off its peers for %s (%d connections closed, none accepted or dialed)", hold, closed)
	inj.Details["hold"], inj.Details["closed"] = hold.String(), closed
	go n.chaosRelease(hold, "leader_isolate: raft reconnected", func() {})
	return nil
}

// chaosLatency delays every raft message this node sends by delay for
// hold.
func (n *Node) chaosLatency(params map[string]string, inj *httpapi.ChaosInjection) error {
	hold, err := chaosHold(params, 5*time.Second)
	if err != nil {
		return err
	}
	delay := 100 * time.Millisecond
	if v := params["delay"]; v != "" {
		if delay, err = time.ParseDuration(v); err != nil || delay <= 0 || delay > 10*time.Second {
			return nexus.Errorf(nexus.EInvalid, "raft_latency: delay %q: want a duration between 0 and 10s", v)
		}
	}
	until, err := n.holdFault(ChaosRaftLatency, hold)
	if err != nil {
		return err
	}
	n.raftGate.slow(delay, until)
	inj.InjectedAt, inj.Until = time.Now().UTC(), until.UTC()
	inj.FoundBy = "none"
	inj.What = fmt.Sprintf("every raft message this node sends delayed by %s for %s", delay, hold)
	inj.Details["delay"], inj.Details["hold"] = delay.String(), hold.String()
	go n.chaosRelease(hold, "raft_latency: delay removed", func() {})
	return nil
}
