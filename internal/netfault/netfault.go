package netfault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
)

// Direction is the direction of the bytes on a link's connections.
type Direction int

// The two directions of a link. The zero Direction is neither and is refused.
const (
	// Upstream is the bytes the dialer sends to the upstream (requests).
	Upstream Direction = iota + 1
	// Downstream is the bytes the upstream sends back to the dialer (answers).
	Downstream
)

// String returns "upstream" or "downstream" (the names toxiproxy gives the streams).
func (d Direction) String() string {
	switch d {
	case Upstream:
		return "upstream"
	case Downstream:
		return "downstream"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// ErrClosed is returned by the methods of a closed Network and of its links.
var ErrClosed = errors.New("netfault: network closed")

// Network is a set of links served by one in-process toxiproxy server. Its methods are safe for
// concurrent use.
type Network struct {
	server *toxiproxy.ApiServer
	seq    atomic.Uint64 // names the toxics, so that each Fault removes only its own

	mu     sync.Mutex
	links  map[string]*Link
	order  []*Link
	closed bool
}

// New starts an in-process toxiproxy server whose log goes to logger (nil: discarded). It opens no
// listener: each Link opens its own.
func New(logger *slog.Logger) *Network {
	return &Network{
		server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerologFor(logger)),
		links:  make(map[string]*Link),
	}
}

// Link starts a proxy named name that listens on 127.0.0.1:0 and forwards each connection to
// upstream (host:port, dialed for each accepted connection). Names are unique in a Network.
func (n *Network) Link(name, upstream string) (*Link, error) {
	if name == "" {
		return nil, errors.New("netfault: a link needs a name")
	}
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return nil, fmt.Errorf("netfault: link %q: upstream %q: %w", name, upstream, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	if _, dup := n.links[name]; dup {
		return nil, fmt.Errorf("netfault: link %q already exists", name)
	}
	p := toxiproxy.NewProxy(n.server, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("netfault: link %q: %w", name, err)
	}
	// Start has returned after the proxy's listener was bound and Listen set to its address.
	l := &Link{net: n, name: name, upstream: upstream, addr: p.Listen, proxy: p}
	n.links[name] = l
	n.order = append(n.order, l)
	return l, nil
}

// Heal removes every fault of every link.
func (n *Network) Heal() error {
	n.mu.Lock()
	links := append([]*Link(nil), n.order...)
	n.mu.Unlock()
	var errs []error
	for _, l := range links {
		errs = append(errs, l.Heal())
	}
	return errors.Join(errs...)
}

// Close removes every fault (so that no held byte keeps a goroutine waiting), then stops every
// link: their listeners close and so do the connections through them. Closing twice is a no-op.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	links := n.order
	n.mu.Unlock()
	for _, l := range links {
		l.mu.Lock()
		l.proxy.Toxics.ResetToxics(context.Background())
		l.proxy.Stop()
		l.mu.Unlock()
	}
	return nil
}

func (n *Network) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// Link is one proxy: a listen address that forwards to an upstream address, and the faults on the
// way. Its methods are safe for concurrent use.
type Link struct {
	net      *Network
	name     string
	upstream string
	addr     string
	proxy    *toxiproxy.Proxy

	mu sync.Mutex // serialises the changes of the link's faults, so that a conflict check holds
}

// Name returns the link's name.
func (l *Link) Name() string { return l.name }

// Addr returns the address the link listens on (127.0.0.1 and a port of its own): dial it instead
// of the upstream to go through the link.
func (l *Link) Addr() string { return l.addr }

// Upstream returns the address the link forwards to.
func (l *Link) Upstream() string { return l.upstream }

// Cut partitions the link: every byte is dropped in both directions, open connections stay open
// (their reads wait until their deadline), new connections are accepted and pass nothing. Removing
// the cut closes the connections that lived through it. The package documentation says why. A link
// cannot be cut and paused at once (ErrConflict).
func (l *Link) Cut() (*Fault, error) {
	return l.add("cut", toxic{kind: cutToxicType, dir: Upstream}, toxic{kind: cutToxicType, dir: Downstream})
}

// CutOneWay drops every byte of one direction, as Cut does, and lets the other direction pass (an
// asymmetric partition). Removing it closes the connections that lived through it. A paused link
// cannot be cut (ErrConflict).
func (l *Link) CutOneWay(d Direction) (*Fault, error) {
	if err := checkDirection(d); err != nil {
		return nil, err
	}
	return l.add("cut-"+d.String(), toxic{kind: cutToxicType, dir: d})
}

// Latency delays every byte by d ± jitter in each direction (each chunk read from one side is
// written to the other no sooner than d − jitter after it was read), so a round trip takes at
// least 2·(d − jitter) more. The link counts in milliseconds: d and jitter are rounded up to the
// next millisecond. jitter must not exceed d.
func (l *Link) Latency(d, jitter time.Duration) (*Fault, error) {
	if d < 0 || jitter < 0 {
		return nil, fmt.Errorf("netfault: latency %v ± %v: negative", d, jitter)
	}
	ms, jms := ceilMillis(d), ceilMillis(jitter)
	if jms > ms {
		return nil, fmt.Errorf("netfault: latency %v ± %v: the jitter exceeds the latency", d, jitter)
	}
	attrs := map[string]any{"latency": ms, "jitter": jms}
	return l.add("latency", toxic{kind: "latency", dir: Upstream, attrs: attrs},
		toxic{kind: "latency", dir: Downstream, attrs: attrs})
}

// Bandwidth limits each direction of every connection to kBps kilobytes (1000 bytes) per second:
// a transfer of n bytes through the link takes at least n/(1000·kBps) seconds.
func (l *Link) Bandwidth(kBps int64) (*Fault, error) {
	if kBps <= 0 {
		return nil, fmt.Errorf("netfault: bandwidth %d kB/s: must be positive", kBps)
	}
	attrs := map[string]any{"rate": kBps}
	return l.add("bandwidth", toxic{kind: "bandwidth", dir: Upstream, attrs: attrs},
		toxic{kind: "bandwidth", dir: Downstream, attrs: attrs})
}

// Pause stalls both directions and loses nothing: bytes sent meanwhile are held (the sender blocks
// once the buffers on the way are full) and delivered in order when the pause is removed; a close
// is held too. Connections stay open. A cut link cannot be paused (ErrConflict): a cut drops what
// a pause would hold.
func (l *Link) Pause() (*Fault, error) {
	return l.add("pause", toxic{kind: pauseToxicType, dir: Upstream}, toxic{kind: pauseToxicType, dir: Downstream})
}

// Reset refuses the link's traffic as a peer that resets its connections does: a connection
// opened while the fault is on is reset (TCP RST, the dialer reads ECONNRESET) as soon as the
// dialer sends a byte, which never reaches the upstream. A connection opened before the fault is
// closed at its next byte too, by a FIN (the dialer reads io.EOF). Removing the fault lets new
// connections pass; the ones it closed stay closed.
func (l *Link) Reset() (*Fault, error) {
	return l.add("reset", toxic{kind: "reset_peer", dir: Upstream, attrs: map[string]any{"timeout": 0}})
}

// Heal removes every fault of the link. Connections that lived through a cut are closed (see Cut);
// held bytes of a pause are delivered.
func (l *Link) Heal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.net.isClosed() {
		return ErrClosed
	}
	l.proxy.Toxics.ResetToxics(context.Background())
	return nil
}

// toxic is one toxic to add to a link.
type toxic struct {
	kind  string
	dir   Direction
	attrs map[string]any
}

// add adds the toxics to the link as one Fault; on an error the ones already added are removed.
func (l *Link) add(what string, ts ...toxic) (*Fault, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.net.isClosed() {
		return nil, ErrClosed
	}
	if other := conflicting[ts[0].kind]; other != "" && l.has(other) {
		return nil, fmt.Errorf("netfault: %s %s: %w", what, l.name, ErrConflict)
	}
	f := &Fault{what: what + " " + l.name}
	part := faultPart{link: l}
	for _, t := range ts {
		if t.attrs == nil {
			t.attrs = map[string]any{}
		}
		name := fmt.Sprintf("netfault-%d-%s-%s", l.net.seq.Add(1), t.kind, t.dir)
		body, err := json.Marshal(map[string]any{
			"name": name, "type": t.kind, "stream": t.dir.String(), "toxicity": 1.0, "attributes": t.attrs,
		})
		if err != nil {
			return nil, fmt.Errorf("netfault: %s: %w", f.what, err)
		}
		if _, err := l.proxy.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
			return nil, errors.Join(fmt.Errorf("netfault: %s: %w", f.what, err), part.remove(f.what))
		}
		part.toxics = append(part.toxics, name)
	}
	f.parts = append(f.parts, part)
	return f, nil
}

// has reports whether a toxic of the kind is on the link.
func (l *Link) has(kind string) bool {
	for _, t := range l.proxy.Toxics.GetToxicArray() {
		if w, ok := t.(*toxics.ToxicWrapper); ok && w.Type == kind {
			return true
		}
	}
	return false
}

// ErrConflict is returned for a fault that cannot join the link's faults: a cut on a paused link, a
// pause on a cut one.
var ErrConflict = errors.New("a link cannot be cut and paused at once")

// conflicting maps a kind of toxic to the kind it cannot join.
var conflicting = map[string]string{cutToxicType: pauseToxicType, pauseToxicType: cutToxicType}

// Fault is a fault on one or more links, removable on its own.
type Fault struct {
	what  string
	parts []faultPart
}

type faultPart struct {
	link   *Link
	toxics []string
}

// String names the fault and its links.
func (f *Fault) String() string { return f.what }

// Remove takes the fault away from its links, and only this fault. Removing a cut closes the
// connections that lived through it; removing a pause delivers what it held. Removing a fault that
// is gone already (removed, or cleared by Heal) is a no-op.
func (f *Fault) Remove() error {
	var errs []error
	for _, p := range f.parts {
		p.link.mu.Lock()
		errs = append(errs, p.remove(f.what))
		p.link.mu.Unlock()
	}
	return errors.Join(errs...)
}

// remove removes the part's toxics that are still there; the caller holds the link's mutex.
func (p faultPart) remove(what string) error {
	if p.link.net.isClosed() {
		return nil // Close cleared every fault
	}
	var errs []error
	for _, name := range p.toxics {
		err := p.link.proxy.Toxics.RemoveToxic(context.Background(), name)
		if err != nil && !errors.Is(err, toxiproxy.ErrToxicNotFound) {
			errs = append(errs, fmt.Errorf("netfault: remove %s: %w", what, err))
		}
	}
	return errors.Join(errs...)
}

// joinFaults makes one Fault of several.
func joinFaults(what string, fs []*Fault) *Fault {
	j := &Fault{what: what}
	for _, f := range fs {
		j.parts = append(j.parts, f.parts...)
	}
	return j
}

func checkDirection(d Direction) error {
	if d != Upstream && d != Downstream {
		return fmt.Errorf("netfault: direction %v: must be Upstream or Downstream", d)
	}
	return nil
}

func ceilMillis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
