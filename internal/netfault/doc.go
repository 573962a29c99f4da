// Package netfault is an in-process fault network: real TCP proxies on loopback, between nodes that
// run in one process, through which a test (or the chaos command) cuts, slows and stalls the traffic
// of chosen pairs of nodes while everything else keeps running.
//
// A [Network] runs a toxiproxy server inside the process (no HTTP API listener: proxies and their
// toxics are driven through the library directly). [Network.Link] starts one proxy that listens on
// 127.0.0.1:0 and forwards every connection it accepts to one upstream address; a client that dials
// [Link.Addr] instead of the upstream goes through the link, and the link's faults apply to it.
//
// # Faults
//
// Each fault method of a [Link] adds toxics to the proxy and returns a [Fault] whose Remove takes
// exactly those toxics away again; [Link.Heal] removes every fault of the link. Faults stack (two
// Latency faults add up) and apply to the connections that are open and to the ones opened later.
// A direction is [Upstream] (the bytes the dialer sends: requests) or [Downstream] (the bytes the
// upstream sends back: answers).
//
//   - [Link.Cut] is a partition: in both directions every byte is dropped, and no connection is
//     closed. See "What a cut does" below.
//   - [Link.CutOneWay] drops the bytes of one direction only (an asymmetric partition); the other
//     direction passes.
//   - [Link.Latency] delays every byte by d ± jitter in each direction, so one round trip through
//     the link takes at least 2·(d − jitter) more.
//   - [Link.Bandwidth] limits each direction to a rate (a slow link).
//   - [Link.Reset] closes every connection at the first byte the dialer sends (a reset, ECONNRESET,
//     on a connection opened during the fault): a peer that refuses its clients, the opposite of a
//     cut, where they learn nothing.
//   - [Link.Pause] stalls both directions without losing anything: bytes are held (the sender blocks
//     once the buffers on the way are full, as behind a stalled network or a frozen peer) and flow
//     on, in order, when the pause is removed. A link is not cut and paused at once ([ErrConflict]).
//
// # What a cut does
//
// Toxiproxy offers two ways to stop traffic. Disabling a proxy closes its listener and every
// connection at once: the peers learn it immediately (EOF or a reset on open connections, "connection
// refused" on new dials). That is a port going away, a crash, not a partition: a peer behind a real
// partition learns nothing, its writes are accepted and its reads wait until its own deadline. The
// timeout toxic with timeout 0 does that: it keeps the connection open and drops every byte on the
// floor. So a cut does that in each direction (with a toxic of netfault's own that behaves as the
// timeout toxic does and also releases the proxy's goroutines when the cut is removed), and on a cut
// link:
//
//   - on an open connection, writes succeed and a read returns nothing: it waits until the reader's
//     deadline (os.ErrDeadlineExceeded) and nothing written reaches the other end;
//   - a new dial to [Link.Addr] succeeds (the proxy's listener completes the TCP handshake and the
//     proxy opens a connection to the upstream, which the upstream accepts), but no byte passes in
//     either direction, so the dialer's first read waits until its deadline as above;
//   - removing the cut (its Fault's Remove, or Heal) closes every connection that lived through it,
//     at both ends: bytes were lost in the middle of those streams, so they cannot go on (the reader
//     gets io.EOF). Connections opened after the cut is removed pass traffic normally.
//
// Two differences from a partition of a real network remain, and tests should not depend on them:
// a writer never blocks (the proxy reads and drops everything, where a real network would let the
// send window fill up), and a dial completes where a real network would leave it waiting for the
// handshake (no user-space proxy on loopback can refuse to complete it without refusing it).
//
// # Meshes and hashicorp/raft
//
// [Network.Mesh] connects N nodes pairwise: for each ordered pair (i, j), i ≠ j, a link i→j that
// forwards to node j's real address. Node i reaches node j at [Mesh.Addr](i, j), so the traffic of
// each pair goes through its own link, and [Mesh.Partition], [Mesh.Isolate] and [Mesh.Heal] cut and
// restore sets of pairs; [Mesh.Link] gives one pair's link for any other fault (a cut of the link i→j
// alone, for example, is an asymmetric partition between nodes: i cannot reach j, j still reaches i).
//
// hashicorp/raft's NetworkTransport dials a peer at the address written in the raft configuration,
// which is the same on every node, so the routing happens in the dial: each node gets its own
// raft.StreamLayer whose Accept, Close and Addr are those of the node's real listener and whose Dial
// is [Mesh.Dialer](i), which maps the real address of node j to the proxy of the pair i→j:
//
//	type streamLayer struct {
//		net.Listener // the node's own listener; its address is the one in the raft configuration
//		dial func(addr string, timeout time.Duration) (net.Conn, error)
//	}
//
//	func (s streamLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
//		return s.dial(string(a), timeout)
//	}
//
//	// node i:
//	transport := raft.NewNetworkTransport(streamLayer{ln[i], mesh.Dialer(i)}, 3, 2*time.Second, os.Stderr)
//
// The listeners are opened first, their addresses given to [Network.Mesh], then raft is started on
// each node with its stream layer. An answer to an RPC comes back on the connection of the request,
// so it travels through the link of the pair that dialed: cutting i→j stops i's requests to j and
// j's answers to them, and leaves j's own requests to i alone.
package netfault
