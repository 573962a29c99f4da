// Package cluster replicates one Nexus memory over several nodes with
// hashicorp/raft.
//
// Every write is a raft log entry. The leader stamps each context with
// its id and timestamp before proposing it, so every node applies the
// same entries to the same state and writes byte-identical git commits:
// the commit of the context at log index i has the same hash on every
// node (each commit records its index in a Log-Index trailer). Replicas
// are consistent when their heads are equal at the same applied index.
//
// A write is acknowledged once a quorum has the entry in its log and the
// leader has committed it to git (fsynced). Entries are batched twice:
// raft stores the entries that wait together in one log write, and the
// state machine applies the committed entries that wait together in one
// group commit.
//
// The log and raft's own state live in a bolt database (raft-boltdb/v2).
// A snapshot is a manifest (the head of main, the members' API
// addresses): the repository already holds the state. When a follower
// needs one, the leader streams a git bundle of main's history, which the
// follower indexes and installs; its derived state (catalog, cache,
// search index) is then rebuilt.
//
// A node that lost its quorum never acknowledges a write: Put answers
// no_quorum naming the last leader it knew. Raft brings it back up to
// date, from the log or a snapshot, when it can reach a quorum again.
package cluster
