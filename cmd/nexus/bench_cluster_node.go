package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/nexus-mem/nexus/node"
)

// benchMember is one in-process node of `nexus bench cluster`: its
// configuration (kept across restarts: same directory, same ports), the
// open node, and the switch that cuts its network.
type benchMember struct {
	id     string
	cfg    node.Config
	url    string
	n      *node.Node
	sw     *killSwitch
	cancel context.CancelFunc
	served chan error
	logf   *os.File
}

// openMember opens a node on cfg, its API served on apiLn and its raft on
// raftLn (nil: listen again on the configured addresses).
func openMember(ctx context.Context, m *benchMember, apiLn, raftLn net.Listener) error {
	var err error
	if apiLn == nil {
		if apiLn, err = listenAgain(m.cfg.Addr); err != nil {
			return err
		}
	}
	if raftLn == nil && m.cfg.Cluster.Enabled() {
		if raftLn, err = listenAgain(m.cfg.Cluster.RaftAddr); err != nil {
			apiLn.Close()
			return err
		}
	}
	m.sw = &killSwitch{conns: map[net.Conn]struct{}{}}
	cfg := m.cfg
	if cfg.Cluster.Enabled() {
		cfg.Cluster.RaftListener = m.sw.listener(raftLn)
		cfg.Cluster.Dial = m.sw.dial
	}
	if m.logf == nil {
		if err = os.MkdirAll(filepath.Dir(cfg.Dir), 0o700); err != nil {
			apiLn.Close()
			return err
		}
		if m.logf, err = os.OpenFile(filepath.Join(filepath.Dir(cfg.Dir), m.id+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			apiLn.Close()
			return err
		}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(m.logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// Every goroutine the node starts inherits the label node=ID, so a
	// CPU profile (--cpuprofile) tells the members apart:
	// go tool pprof -tags PROFILE.
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("node", m.id)))
	defer pprof.SetGoroutineLabels(ctx)
	n, err := node.Open(ctx, cfg)
	if err != nil {
		apiLn.Close()
		if raftLn != nil {
			raftLn.Close()
		}
		return fmt.Errorf("open %s: %w", m.id, err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	m.n, m.cancel, m.served = n, cancel, make(chan error, 1)
	m.url = "http://" + apiLn.Addr().String()
	ln := m.sw.listener(apiLn)
	go func() { m.served <- n.Serve(sctx, ln) }()
	return nil
}

// stop ends the node gracefully: in-flight requests drain, raft shuts
// down, the store closes.
func (m *benchMember) stop() error {
	if m.n == nil {
		return nil
	}
	m.cancel()
	err := <-m.served
	if cerr := m.n.Close(context.Background()); err == nil {
		err = cerr
	}
	m.n = nil
	return err
}

// kill cuts every connection of the node at once, as its peers and
// clients see a killed process: its raft and API listeners close, every
// open connection (raft in both directions, API) is closed and it can
// dial no one. The node itself is left running cut off until closeKilled.
func (m *benchMember) kill() { m.sw.kill() }

// closeKilled closes a killed node's remains (its raft, which can reach
// no one, and its store).
func (m *benchMember) closeKilled() error {
	m.cancel()
	<-m.served // Serve returned when its listener closed
	err := m.n.Close(context.Background())
	m.n = nil
	return err
}

// close stops the node if it runs and closes its log.
func (m *benchMember) close() {
	m.stop()
	if m.logf != nil {
		m.logf.Close()
		m.logf = nil
	}
}

// killSwitch tracks a node's listeners and connections, to cut them all
// at once.
type killSwitch struct {
	mu    sync.Mutex
	dead  bool
	lns   []net.Listener
	conns map[net.Conn]struct{}
}

var errKilled = errors.New("the node was killed")

func (k *killSwitch) listener(ln net.Listener) net.Listener {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lns = append(k.lns, ln)
	return &switchListener{Listener: ln, k: k}
}

// dial dials a peer's raft address, unless the node was killed.
func (k *killSwitch) dial(addr string, timeout time.Duration) (net.Conn, error) {
	k.mu.Lock()
	dead := k.dead
	k.mu.Unlock()
	if dead {
		return nil, errKilled
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return k.track(c)
}

func (k *killSwitch) track(c net.Conn) (net.Conn, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dead {
		c.Close()
		return nil, errKilled
	}
	k.conns[c] = struct{}{}
	return &switchConn{Conn: c, k: k}, nil
}

func (k *killSwitch) isDead() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dead
}

func (k *killSwitch) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dead = true
	for _, ln := range k.lns {
		ln.Close()
	}
	for c := range k.conns {
		c.Close()
	}
	clear(k.conns)
}

type switchListener struct {
	net.Listener
	k *killSwitch
}

func (l *switchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.k.track(c)
}

type switchConn struct {
	net.Conn
	k *killSwitch
}

func (c *switchConn) Close() error {
	c.k.mu.Lock()
	delete(c.k.conns, c.Conn)
	c.k.mu.Unlock()
	return c.Conn.Close()
}

// listenAgain listens on addr, waiting for a port a closed node is still
// releasing.
func listenAgain(addr string) (net.Listener, error) {
	var ln net.Listener
	var err error
	for range 250 {
		if ln, err = net.Listen("tcp", addr); err == nil || !strings.Contains(err.Error(), "address already in use") {
			return ln, err
		}
		time.Sleep(20 * time.Millisecond) // the kernel releases the port asynchronously
	}
	return nil, err
}
