// Package nexus is the vocabulary of Nexus, a durable, versioned, searchable
// shared memory for teams of AI agents.
//
// # Basics
//
// A [Context] is an immutable record written by an agent: an instruction, an
// observation, a decision, some code, a result. Contexts are chained into
// threads through their parent, and every context is one git commit in the
// store, so the memory is a git repository that can be cloned, checked and
// restored to any point in time.
//
// This package holds only types, validation and interfaces; it imports the
// standard library alone. Implementations live in sub-packages: gitstore is
// the durable on-disk [Store], httpapi serves a Store over HTTP and contains a
// client implementing the same interface, and cmd/nexus wires them together.
//
// # Caveats
//
// Identifiers and timestamps are assigned by the store, never by clients: a
// [Draft] carries only what the writer says, and the store turns it into a
// [Context]. Errors crossing a package boundary are [*Error] values with a
// [Code] that maps one-to-one to HTTP statuses and MCP error codes.
package nexus
