// Package node assembles one running Nexus node from the parts of the
// module: the git store, its search engine, the event bus, the agents
// (the node's own, the supervised processes and the task queue of
// external agents), the cascading recovery, and the HTTP API with MCP,
// health and metrics.
//
// # Basics
//
// Start from [DefaultConfig], change what you need, then [Open] a node,
// [Node.Serve] its API on a listener and [Node.Close] it:
//
//	cfg := node.DefaultConfig()
//	cfg.Dir = "/var/lib/nexus"
//	n, err := node.Open(ctx, cfg)
//	if err != nil { ... }
//	defer n.Close(context.Background())
//	ln, _ := net.Listen("tcp", cfg.Addr)
//	err = n.Serve(ctx, ln) // until ctx ends
//
// A node can also be used without serving anything: [Node.Store] writes
// and reads contexts, [Node.Searcher] searches them.
//
// # TLS
//
// With Config.TLSCert and TLSKey, Serve speaks HTTPS (TLS 1.2+) on the
// listener it is given; with TLSClientCA it also demands client
// certificates of that CA (mutual TLS). The files are read again at every
// handshake, so a renewed certificate is presented without a restart;
// [Node.ReloadTLS] does it at once (for SIGHUP). The configuration comes
// from package tlsconf, which any other listener of the node reuses.
//
// # Background jobs
//
// Every background job is a service the node owns: the event bus, the
// recovery loop, the scrubber, the backup and mirror schedulers, the
// memory governor, the agents' heartbeat monitor, the reaper of lapsed
// leases and the supervised processes. Open starts them; Close stops
// each one and waits for it to end before the store is closed, so that
// no goroutine outlives the node. [Node.Services] reports them, and
// /metrics exports the same figures (nexus_service_*).
//
// # Caveats
//
// One data directory is opened by one node at a time: a lock file makes
// a second Open fail with a conflict. A node that finds a critical
// component it cannot recover stops by itself: [Node.Done] is closed and
// [Node.Err] (and Serve) return a [*FatalError].
package node
