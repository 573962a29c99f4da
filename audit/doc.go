// Package audit keeps the audit log of a node: every admin action (fsck,
// restore, recover, backup, configuration changes) and every failed
// authentication, with who asked (the principal), from where (remote
// address), by which route, with which parameters and with what outcome.
//
// # Basics
//
// The log is one append-only file of JSON lines. Each record carries the
// SHA-256 of the line before it (Record.Prev; the first carries
// [Genesis]), so editing, deleting, inserting or reordering a record
// breaks the chain at the record after it, and [Verify] names that
// record. Every append is written in one write and fsynced before it is
// acknowledged; a write that fails is undone, and an unfinished last line
// left by a crash is cut off by the next append (it was never
// acknowledged, so the action it announced never ran). Appends lock the
// file, so several processes (the node, an offline verb) may share it.
//
// [Log.Do] records the intent of an admin action before running it and its
// outcome after: when the intent cannot be written the action is refused
// (an unavailable error) and does not run. [Log.AuthFailure] records a
// request that failed authentication. Each record also goes to the server
// log, with its hash.
//
// # Caveats
//
// A hash chain proves that nothing before its newest record was changed;
// it cannot by itself tell that the newest records were cut off or that
// the newest one was edited. The hash of every record is in the server
// log, and `nexus audit --verify` prints the head hash: compare them with
// a copy kept elsewhere to detect that too. Parameters never hold
// secrets: no Authorization header, no token, no query string of a
// refused request.
package audit
