package netfault_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/internal/netfault"
	"go.uber.org/goleak"
)

// silence is how long a read waits for bytes that a fault must stop. The bytes are dropped or held,
// so they never arrive within it on a loaded machine either; it only bounds the test's time.
const silence = 150 * time.Millisecond

// server is a real TCP server on loopback that hands the test every connection it accepts.
type server struct {
	ln    net.Listener
	conns chan net.Conn
}

func startServer(t *testing.T) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, conns: make(chan net.Conn, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(s.conns)
		for c := range s.conns {
			c.Close()
		}
	})
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

// accept returns the next connection the server accepted, and closes it when the test ends.
func (s *server) accept(t *testing.T) net.Conn {
	t.Helper()
	c := <-s.conns
	t.Cleanup(func() { c.Close() })
	return c
}

func newNetwork(t *testing.T) *netfault.Network {
	t.Helper()
	n := netfault.New(nil)
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func newLink(t *testing.T, n *netfault.Network, s *server) *netfault.Link {
	t.Helper()
	l, err := n.Link(t.Name(), s.addr())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// pair dials the link and returns the dialer's connection and the server's end of it.
func pair(t *testing.T, l *netfault.Link, s *server) (client, upstream net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, s.accept(t)
}

// passes writes msg on from and reads exactly msg on to.
func passes(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(to, got); err != nil {
		t.Fatalf("read %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("read %q, want %q", got, msg)
	}
}

// blocked writes msg on from, which succeeds, and finds that nothing arrives on to: its read ends
// at its deadline with no byte.
func blocked(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q: %v (a fault must accept writes, as a partitioned network does)", msg, err)
	}
	silent(t, to)
}

// silent finds that a read on c ends at its deadline with no byte, and clears the deadline.
func silent(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(silence)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes %q, err %v; want none and the deadline exceeded", n, buf[:n], err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
}

// closed finds that c was closed by its peer (the proxy) and delivers nothing more: a read returns
// no byte and io.EOF, or a reset when the proxy closed its socket with bytes from c still unread in
// it (it drains its sockets at once, so that is rare, but a loaded machine may delay it).
func closed(t *testing.T, c net.Conn) {
	t.Helper()
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if n != 0 || (err != io.EOF && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("read %d bytes %q, err %v; want none and io.EOF (or a reset)", n, buf[:n], err)
	}
}

func TestLinkPassesTraffic(t *testing.T) {
	s := startServer(t)
	l := newLink(t, newNetwork(t), s)
	if l.Upstream() != s.addr() || l.Name() != t.Name() {
		t.Fatalf("link %q → %q, want %q → %q", l.Name(), l.Upstream(), t.Name(), s.addr())
	}
	host, _, err := net.SplitHostPort(l.Addr())
	if err != nil || host != "127.0.0.1" || l.Addr() == s.addr() {
		t.Fatalf("link listens on %q (%v), want 127.0.0.1 and a port of its own", l.Addr(), err)
	}
	c, u := pair(t, l, s)
	passes(t, c, u, "ping")
	passes(t, u, c, "pong")
}

// A cut drops every byte both ways and closes nothing; a dial completes and passes nothing; its
// removal closes the connections that lived through it, and new ones pass again.
func TestCut(t *testing.T) {
	s := startServer(t)
	l := newLink(t, newNetwork(t), s)
	c1, u1 := pair(t, l, s)
	passes(t, c1, u1, "before")

	cut, err := l.Cut()
	if err != nil {
		t.Fatal(err)
	}
	blocked(t, c1, u1, "request")
	blocked(t, u1, c1, "answer")

	// A new dial during the cut: the proxy accepts it and opens the upstream connection (the
	// server accepts it), and not a byte passes.
	c2, u2 := pair(t, l, s)
	blocked(t, c2, u2, "request")
	blocked(t, u2, c2, "answer")

	if err := cut.Remove(); err != nil {
		t.Fatal(err)
	}
	// The bytes written during the cut are lost, not delivered late: the connections end.
	for _, c := range []net.Conn{c1, u1, c2, u2} {
		closed(t, c)
	}
	c3, u3 := pair(t, l, s)
	passes(t, c3, u3, "after")
	passes(t, u3, c3, "after")
	if err := cut.Remove(); err != nil {
		t.Fatalf("removing a removed fault: %v", err)
	}
}

func TestCutOneWay(t *testing.T) {
	s := startServer(t)
	l := newLink(t, newNetwork(t), s)

	up, err := l.CutOneWay(netfault.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	c, u := pair(t, l, s)
	blocked(t, c, u, "request")
	passes(t, u, c, "answer")
	if err := up.Remove(); err != nil {
		t.Fatal(err)
	}
	closed(t, c)
	closed(t, u)

	c, u = pair(t, l, s)
	down, err := l.CutOneWay(netfault.Downstream)
	if err != nil {
		t.Fatal(err)
	}
	passes(t, c, u, "request")
	blocked(t, u, c, "answer")
	if err := down.Remove(); err != nil {
		t.Fatal(err)
	}
	closed(t, c)
	closed(t, u)

	c, u = pair(t, l, s)
	passes(t, c, u, "request")
	passes(t, u, c, "answer")

	if _, err := l.CutOneWay(0); err == nil {
		t.Fatal("CutOneWay(0) accepted")
	}
}

// Latency delays each direction by at least d: one way ≥ d, a round trip ≥ 2d, on a connection
// opened before the fault.
func TestLatency(t *testing.T) {
	const d = 40 * time.Millisecond
	s := startServer(t)
	l := newLink(t, newNetwork(t), s)
	c, u := pair(t, l, s)
	if _, err := l.Latency(d, 0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	passes(t, c, u, "ping")
	oneWay := time.Since(start)
	passes(t, u, c, "pong")
	rtt := time.Since(start)
	if oneWay < d || rtt < 2*d {
		t.Fatalf("one way %v, round trip %v; want ≥ %v and ≥ %v", oneWay, rtt, d, 2*d)
	}

	if _, err := l.Latency(d, d+time.Millisecond); err == nil {
		t.Fatal("a jitter larger than the latency accepted")
	}
	if _, err := l.Latency(-d, 0); err == nil {
		t.Fatal("a negative latency accepted")
	}
}

// Removing a latency delivers what it was holding at once, and only that fault goes.
func TestRemoveOneFault(t *testing.T) {
	s := startServer(t)
	l := newLink(t, newNetwork(t), s)
	slow, err := l.Latency(10*time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	cut, err := l.Cut()
	if err != nil {
		t.Fatal(err)
	}
	if err := cut.Remove(); err != nil {
		t.Fatal(err)
	}
	c, u := pair(t, l, s)
	blocked(t, c, u, "slow") // the latency is still there
	if err := slow.Remove(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(u, got); err != nil || string(got) != "slow" {
		t.Fatalf("after the latency's removal read %q, %v; want %q", got, err, "slow")
	}
	passes(t, u, c, "fast")
}

// Bandwidth: n bytes at r kB/s take at least n/(1000·r) seconds.
func TestBandwidth(t *testing.T) {
	const (
		rate = 50    // kB/s
		size = 25000 // bytes: 500 ms at 50 kB/s
		want = 500 * time.Millisecond
	)
	s := startServer(t)
	l := newLink(t, newNetwork(t), s)
	c, u := pair(t, l, s)
	if _, err := l.Bandwidth(rate); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("0123456789"), size/10)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		errc <- err
	}()
	got := make([]byte, size)
	if _, err := io.ReadFull(u, got); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("the payload changed on the way")
	}
	if took < want {
		t.Fatalf("%d bytes at %d kB/s took %v, want ≥ %v", size, rate, took, want)
	}
	if _, err := l.Bandwidth(0); err == nil {
		t.Fatal("a zero bandwidth accepted")
	}
}

// A pause holds both directions and loses nothing; its removal delivers in order and the connection
// goes on.
func TestPause(t *testing.T) {
	s := startServer(t)
	l := newLink(t, newNetwork(t), s)
	c, u := pair(t, l, s)
	p, err := l.Pause()
	if err != nil {
		t.Fatal(err)
	}
	blocked(t, c, u, "held-request")
	blocked(t, u, c, "held-answer")
	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		conn net.Conn
		want string
	}{{u, "held-request"}, {c, "held-answer"}} {
		got := make([]byte, len(r.want))
		if _, err := io.ReadFull(r.conn, got); err != nil || string(got) != r.want {
			t.Fatalf("after the pause read %q, %v; want %q", got, err, r.want)
		}
	}
	passes(t, c, u, "on")
	passes(t, u, c, "on")
}

func TestHeal(t *testing.T) {
	s := startServer(t)
	n := newNetwork(t)
	l := newLink(t, n, s)
	for _, add := range []func() (*netfault.Fault, error){
		func() (*netfault.Fault, error) { return l.Latency(10*time.Minute, 0) },
		l.Cut,
		func() (*netfault.Fault, error) { return l.Bandwidth(1) },
		func() (*netfault.Fault, error) { return l.CutOneWay(netfault.Downstream) },
	} {
		if _, err := add(); err != nil {
			t.Fatal(err)
		}
	}
	c, u := pair(t, l, s)
	blocked(t, c, u, "cut")
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	closed(t, c) // it lived through the cut
	c, u = pair(t, l, s)
	passes(t, c, u, "healed")
	passes(t, u, c, "healed")

	if _, err := l.Cut(); err != nil {
		t.Fatal(err)
	}
	if err := n.Heal(); err != nil {
		t.Fatal(err)
	}
	c, u = pair(t, l, s)
	passes(t, c, u, "network healed")
}

// A cut and a pause do not stack: a cut would drop what the pause holds.
func TestCutAndPauseConflict(t *testing.T) {
	s := startServer(t)
	l := newLink(t, newNetwork(t), s)
	cut, err := l.CutOneWay(netfault.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Pause(); !errors.Is(err, netfault.ErrConflict) {
		t.Fatalf("Pause on a cut link: %v, want ErrConflict", err)
	}
	if err := cut.Remove(); err != nil {
		t.Fatal(err)
	}
	p, err := l.Pause()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Cut(); !errors.Is(err, netfault.ErrConflict) {
		t.Fatalf("Cut on a paused link: %v, want ErrConflict", err)
	}
	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	c, u := pair(t, l, s)
	passes(t, c, u, "neither")
	passes(t, u, c, "neither")
}

func TestLinkErrors(t *testing.T) {
	s := startServer(t)
	n := newNetwork(t)
	if _, err := n.Link("", s.addr()); err == nil {
		t.Fatal("a link without a name accepted")
	}
	if _, err := n.Link("x", "no-port"); err == nil {
		t.Fatal("an upstream without a port accepted")
	}
	l, err := n.Link("x", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Link("x", s.addr()); err == nil {
		t.Fatal("a second link with the same name accepted")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", l.Addr()); err == nil {
		t.Fatal("a closed network's link still accepts connections")
	}
	if _, err := l.Cut(); !errors.Is(err, netfault.ErrClosed) {
		t.Fatalf("Cut on a closed network: %v, want ErrClosed", err)
	}
	if _, err := n.Link("y", s.addr()); !errors.Is(err, netfault.ErrClosed) {
		t.Fatalf("Link on a closed network: %v, want ErrClosed", err)
	}
}

// Closing the network closes the connections through it, held (paused) ones included.
func TestCloseEndsConnections(t *testing.T) {
	s := startServer(t)
	n := netfault.New(nil)
	l := newLink(t, n, s)
	c, u := pair(t, l, s)
	passes(t, c, u, "open")
	if _, err := l.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	closed(t, c)
	closed(t, u)
}

// recorder is a slog.Handler that keeps the records.
type recorder struct {
	level slog.Level
	mu    sync.Mutex
	recs  []slog.Record
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) find(msg string) (slog.Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Message == msg {
			return rec, true
		}
	}
	return slog.Record{}, false
}

// The proxy's log reaches the slog logger as records with their fields, at their level.
func TestLog(t *testing.T) {
	s := startServer(t)
	rec := &recorder{level: slog.LevelInfo}
	n := netfault.New(slog.New(rec))
	if _, err := n.Link("logged", s.addr()); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil { // Close returns after the proxy logged its start and its end
		t.Fatal(err)
	}
	for _, msg := range []string{"Started proxy", "Terminated proxy"} {
		r, ok := rec.find(msg)
		if !ok {
			t.Fatalf("no record %q", msg)
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		if r.Level != slog.LevelInfo || attrs["name"] != "logged" || attrs["upstream"] != s.addr() {
			t.Fatalf("record %q at %v with %v", msg, r.Level, attrs)
		}
	}

	quiet := &recorder{level: slog.LevelWarn}
	n = netfault.New(slog.New(quiet))
	if _, err := n.Link("quiet", s.addr()); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := quiet.find("Started proxy"); ok {
		t.Fatal("an info record reached a logger at warn level")
	}
}

// No goroutine of the proxy outlives the network: not after a cut removed under a steady stream of
// writes (the bytes in flight when the connection closes), not after closing a paused link that
// holds bytes.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // runs after every other cleanup
	s := startServer(t)
	n := newNetwork(t)
	l := newLink(t, n, s)

	c, u := pair(t, l, s)
	cut, err := l.Cut()
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan struct{})
	ended := make(chan error, 1)
	go func() {
		chunk := bytes.Repeat([]byte("x"), 512)
		for i := 0; ; i++ {
			if _, err := c.Write(chunk); err != nil {
				ended <- err
				return
			}
			if i == 100 {
				close(wrote)
			}
		}
	}()
	<-wrote
	if err := cut.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := <-ended; err == nil {
		t.Fatal("the writer ended without an error")
	}
	closed(t, u)

	c, u = pair(t, l, s)
	if _, err := l.Pause(); err != nil {
		t.Fatal(err)
	}
	blocked(t, c, u, "held")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

// Reset: a connection opened during the fault is reset at its first byte, which never reaches the
// upstream; one opened before is closed at its next byte; once the fault is removed new
// connections pass.
func TestReset(t *testing.T) {
	s := startServer(t)
	l := newLink(t, newNetwork(t), s)
	c1, u1 := pair(t, l, s)
	passes(t, c1, u1, "before")
	reset, err := l.Reset()
	if err != nil {
		t.Fatal(err)
	}
	c2, u2 := pair(t, l, s)
	if _, err := c2.Write([]byte("request")); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, 64)
	if n, err := c2.Read(buf); n != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a connection opened during the fault: read %d bytes, %v; want a reset", n, err)
	}
	if n, err := u2.Read(buf); n != 0 || (err != io.EOF && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("the upstream read %d bytes %q, %v; want none and the connection closed", n, buf[:n], err)
	}
	if _, err := c1.Write([]byte("again")); err != nil {
		t.Fatalf("write: %v", err)
	}
	closed(t, c1)
	if err := reset.Remove(); err != nil {
		t.Fatal(err)
	}
	c3, u3 := pair(t, l, s)
	passes(t, c3, u3, "after")
	passes(t, u3, c3, "after")
}
