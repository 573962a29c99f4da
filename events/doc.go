// Package events is the live event stream of a memory: every new context,
// every point-in-time restore, and what other parts of the node publish
// (agent status), in one ordered stream that subscribers filter and
// resume without gaps or duplicates.
//
// # Basics
//
// A [Bus] follows a [nexus.Store]: wire [Bus.Notify] to the store's commit
// hook and [Bus.Restored] to its restore hook, run [Bus.Run], and serve
// subscriptions ([Bus.Subscribe], a [nexus.EventSource]); httpapi serves
// them as server-sent events at GET /v1/events. A store whose writer can
// hand over the contexts it commits, with their JSON, wires that to
// [Bus.Added]: the bus then publishes them without reading them back, and
// reads the store only to fill a gap (a commit not handed over).
//
// Event ids are positions in the stream, so that a subscriber resumes from
// the durable journal, not only from memory:
//
//   - A context's event has the context's id. Ids are assigned by the
//     store's single writer in commit order and sort in that order, so
//     "the events after context X" are the contexts listed after X
//     (nexus.Filter{Order: Oldest, Cursor: X}) — which the store answers
//     however long ago X was, and after a restart of the server.
//   - Every other event (a mark) has the id "<context id>.<n>": the
//     position among contexts where it was published, and its number. Marks
//     are numbered from a base taken from the clock when the bus starts, so
//     the numbers of one server process never reappear in the next.
//
// A subscriber reads the events live from a ring of the recent ones, and a
// subscriber that falls behind the ring (or resumes) reads the contexts
// from the store and merges the marks in where they were published, then
// joins the ring again; it never blocks the writers nor the other
// subscribers, and nothing is dropped silently.
//
// # Restores
//
// A restore moves the memory back: the contexts after the restore point
// are gone (kept under refs/recovery/). Its event carries the restore plan,
// whose "last_kept" is the newest context kept, and its id is
// "<last_kept>.<n>": resuming from it gives the contexts written after the
// restore. Ids are not reused: in the running server, contexts written
// after a restore get ids greater than every id before it (the store's id
// generator is not wound back); after a restart, ids start after the
// newest one kept and with the time, so they sort after the rolled-back
// ones unless the clock was set back past them.
//
// A subscriber that resumes from a context a restore rolled back gets the
// restore event first (it holds contexts that are gone: drop everything
// after last_kept), then what followed. If the bus does not hold that
// restore (the memory was restored while the server was down, or the bus
// dropped it), the subscriber gets a resync event (reason
// "not_in_memory", with "last_kept": the newest context before the id),
// then every context after it. A subscriber that resumes from a context
// that is still there but was followed by a restore gets the restore
// event in its place (the contexts it rolled back come after the
// subscriber's position, so it never saw them).
//
// # Publishing other events
//
// [Bus.Publish] puts any other event on the stream: an agent registry
// would publish Event{Type: "agent", Data: status} about
// EventFilter{AgentID: id}, so that subscribers filtering by that agent get
// it. Published events are ordered with the contexts the bus has published
// (not with commits it has not read yet) and are kept in memory only: the
// last Options.Marks of them are replayed to subscribers that resume. A
// subscriber that resumes from further back gets a resync event (reason
// "dropped"), and one that resumes from the id of a published event of a
// previous server process gets one with reason "restart"; contexts are
// never missed. A subscriber resuming from a context id after a restart is
// not told about events the previous process published after it: a
// publisher whose events matter after a restart should make each carry
// the whole state (an agent's full status), so that the next one repairs
// what was missed.
//
// # Caveats
//
// The stream starts at the newest context when [NewBus] is called; a
// subscriber that needs everything lists the store first, then subscribes
// with the id of the newest context listed. Filters apply to contexts by
// namespace, type and agent; restores and resyncs pass every filter.
package events
