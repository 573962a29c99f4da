// Package tlsconf builds the TLS configurations of Nexus, in one place for
// every listener and client that needs one: the node's HTTP API today,
// the peer transport of cluster mode tomorrow.
//
// A [Server] serves the certificate and key in its [Files], and with a
// client CA it demands a client certificate signed by it (mutual TLS):
// a client without one is refused at the handshake. Every handshake
// rereads the files and takes up whatever changed on disk, so a renewed
// certificate is presented without a restart; [Server.Reload] does the
// same at once and says what it found (for SIGHUP). A pair of files
// caught half-written (a new certificate, the old key) is not taken: the
// last good certificate stays until the pair matches again.
//
// [Client] builds the configuration of a client that trusts a CA file
// (instead of the system's roots, when one is given) and presents a
// certificate of its own to a server that demands one.
//
// Both speak TLS 1.2 at least ([MinVersion]).
package tlsconf
