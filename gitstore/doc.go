// Package gitstore is the durable, on-disk implementation of nexus.Store: a
// bare git repository in which every context is one commit.
//
// # Basics
//
// The repository lives at <dir>/repo.git. Each commit's tree is the full
// snapshot of the memory, one JSON file per live context under
// <namespace>/<shards>/<id>.json. The shards come from a per-namespace
// sequence number, one hex digit per level, so no tree object ever holds more
// than 16 entries below the namespace level (plus a top level that grows by
// one entry per million contexts) and the cost of a commit does not grow with
// the size of the store.
//
// A single writer goroutine takes every pending write, builds one commit per
// context, writes all objects of the batch into one new packfile and its
// index, fsyncs them, then moves refs/heads/main with temp file + fsync +
// rename + directory fsync, and only then acknowledges the batch (group
// commit). Objects are encoded by this package so that the same batch, with
// ids and timestamps fixed beforehand, always yields byte-identical objects
// ([Store.Apply]).
//
// Derived state — the catalog (id → path, blob, filters; parent → children)
// and the L1 cache of encoded contexts — is rebuilt from git when missing or
// damaged, and caught up incrementally by diffing trees otherwise.
//
// # Repair
//
// [Store.Fsck] names each problem with a [ProblemKind]. One policy,
// [Store.RepairDerived], acts on a report: derived state is rebuilt from
// git; contexts whose parent is missing (orphans) are marked on
// refs/nexus/orphans and never relinked; repository damage is left for
// [Store.RepairFrom] (a backup or a mirror) or a restore.
//
// # Encryption at rest
//
// With [Options.Encrypt] every context file and side log segment is sealed
// (AES-256-GCM) with a data key that a master key wraps on refs/nexus/keys;
// the nonce is derived from the data key and the plaintext, so [Store.Apply]
// stays deterministic for stores sharing a key ring. Ids, times, paths and
// the commit structure stay readable; [Store.Rekey] rewraps the data keys
// under a new master key and can add a data key for new writes.
//
// # Caveats
//
// Only one process may open a data directory: a lock file enforces it. Stock
// git may read the repository at any time (clone, fsck, log, bundle); it must
// not write to it while Nexus runs.
package gitstore
