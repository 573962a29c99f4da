// Package nodetest opens whole Nexus nodes in one test process: each on
// its own temporary data directory, serving its API on a loopback
// listener, closed when the test ends. Tests of node behaviour use it
// instead of a built binary wherever the binary is not the point.
package nodetest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/node"
)

// Node is a node opened for a test, with its API's URL and a client.
type Node struct {
	*node.Node
	Config node.Config
	URL    string
	Client *httpapi.Client
	// HTTP is the client's own *http.Client (for routes Client lacks).
	HTTP *http.Client
	// ExpectFatal makes Close accept a node that stopped by itself (a
	// *node.FatalError), for tests of that stop.
	ExpectFatal bool

	tb     testing.TB
	ln     net.Listener // the API's listener for the next serve, if made beforehand
	cancel context.CancelFunc
	served chan error
	closed bool
}

// Config is a node configuration for tests: its data directory in
// tb.TempDir(), a loopback address, the logs in the test's log, no
// scheduled backups or scrubs, no memory budget, no disk-full warning
// (tests turn on what they exercise).
func Config(tb testing.TB) node.Config {
	cfg := node.DefaultConfig()
	cfg.Dir = tb.TempDir()
	cfg.Addr = "127.0.0.1:0"
	cfg.BackupInterval = 0
	cfg.ScrubInterval = 0
	cfg.MemoryBudget = -1
	// The disk trend follows the machine's other writers too: off, but in
	// the tests of predictions.
	cfg.Predict.DiskHorizon = -1
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cfg
}

// Open opens a node with cfg and serves it on a new loopback listener;
// the test's cleanup closes it.
func Open(tb testing.TB, cfg node.Config) *Node {
	tb.Helper()
	return openOn(tb, cfg, nil)
}

// openOn opens a node with cfg and serves it on ln (nil: a new listener
// on cfg.Addr).
func openOn(tb testing.TB, cfg node.Config, ln net.Listener) *Node {
	tb.Helper()
	n, err := node.Open(context.Background(), cfg)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		tb.Fatalf("open node in %s: %v", cfg.Dir, err)
	}
	tn := &Node{Node: n, Config: cfg, tb: tb, ln: ln}
	tn.serve()
	tb.Cleanup(func() { tn.Close() })
	return tn
}

// OpenN opens n nodes, each with Config(tb) changed by set (if not nil).
func OpenN(tb testing.TB, n int, set func(i int, cfg *node.Config)) []*Node {
	tb.Helper()
	out := make([]*Node, n)
	for i := range out {
		cfg := Config(tb)
		if set != nil {
			set(i, &cfg)
		}
		out[i] = Open(tb, cfg)
	}
	return out
}

func (n *Node) serve() {
	ln := n.ln
	n.ln = nil
	if ln == nil {
		var err error
		if ln, err = listenAgain(n.Config.Addr); err != nil {
			n.tb.Fatalf("listen: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.served = cancel, make(chan error, 1)
	n.URL = "http://" + ln.Addr().String()
	if n.Config.TLSCert != "" {
		n.URL = "https://" + ln.Addr().String() // the test sets HTTP.Transport's TLSClientConfig
	}
	n.HTTP = &http.Client{Transport: &http.Transport{}}
	n.Client = httpapi.NewClient(n.URL, httpapi.WithHTTPClient(n.HTTP))
	go func() { n.served <- n.Serve(ctx, ln) }()
}

// Close stops serving and closes the node, failing the test on an error
// (a *node.FatalError included). It may be called more than once.
func (n *Node) Close() {
	n.tb.Helper()
	if n.closed {
		return
	}
	n.closed = true
	n.cancel()
	err := <-n.served
	n.HTTP.CloseIdleConnections()
	if cerr := n.Node.Close(context.Background()); err == nil {
		err = cerr
	}
	var fatal *node.FatalError
	if n.ExpectFatal && errors.As(err, &fatal) {
		err = nil
	}
	if err != nil {
		n.tb.Errorf("closing the node in %s: %v", n.Config.Dir, err)
	}
}

// Restart closes the node and opens it again on the same data directory,
// with cfg changed by set (if not nil).
func (n *Node) Restart(set func(cfg *node.Config)) {
	n.tb.Helper()
	n.Close()
	if set != nil {
		set(&n.Config)
	}
	if n.Config.Cluster.RaftListener != nil {
		// The first listener closed with the node: listen on its address.
		n.Config.Cluster.RaftListener = nil
	}
	nn, err := node.Open(context.Background(), n.Config)
	if err != nil {
		n.tb.Fatalf("reopen node in %s: %v", n.Config.Dir, err)
	}
	n.Node, n.closed = nn, false
	n.serve()
}

// Wait polls cond every few milliseconds until it holds, failing the test
// with what after timeout. Use it to wait for an event a node makes
// (a recovery, a backup round), never to let time pass.
func Wait(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("after %s, still waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Logs is a node's log kept for the test to read: every line of every
// level, as slog text (msg="..." key=value).
type Logs struct {
	mu sync.Mutex
	b  strings.Builder
}

// CaptureLogs makes cfg's node log every level into the returned Logs,
// and still into the test's log. A Restart keeps the same Logs: the new
// node's lines follow the old one's.
func CaptureLogs(tb testing.TB, cfg *node.Config) *Logs {
	l := &Logs{}
	w := io.MultiWriter(l, tbWriter{tb})
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return l
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is every line logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tbWriter sends log lines to the test's log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended
	w.tb.Log(string(p))
	return len(p), nil
}

// AwaitEvent reads sub until an event matches, for at most within, and
// returns the matching event's data; the test fails naming what after
// within.
func AwaitEvent(tb testing.TB, sub nexus.Subscription, within time.Duration, what string, match func(typ string, data map[string]any) bool) map[string]any {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			tb.Fatalf("no event %s within %v: %v", what, within, err)
		}
		var data map[string]any
		json.Unmarshal(ev.Data, &data)
		if match(ev.Type, data) {
			return data
		}
	}
}

// listenAgain listens on addr, waiting a little for a port that a closed
// node still holds.
func listenAgain(addr string) (net.Listener, error) {
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		if strings.HasSuffix(addr, ":0") {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond) // the port is released asynchronously
	}
	return nil, err
}
