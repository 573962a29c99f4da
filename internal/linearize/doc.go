// Package linearize records what clients did to a Nexus store during a run
// (with nodes killed, partitioned or paused) and checks with porcupine that
// every answer is one a single, atomic store could have given.
//
// # Basics
//
// A [Recorder] is shared by every client goroutine of a run. A client calls
// [Recorder.Begin] just before it sends a request and, as soon as the answer
// arrives, exactly one of:
//
//   - [Pending.Ok] with what the store answered;
//   - [Pending.Unknown] when it never learned the outcome (timeout, cut
//     connection, killed node): the operation may take effect at any time
//     after its call, or never. Porcupine has no notion of this; the
//     convention is an operation that returns after everything else, at
//     [Never], with an output the models do not look at: the checker may
//     then linearize it anywhere after its call, and placing it last is the
//     same as "never";
//   - [Pending.Fail] when it is known not to have taken effect (503
//     no_quorum, 400 invalid): it is dropped from the history.
//
// Times come from one counter that every Begin and every return advances
// under one lock, so they are distinct and follow real time: an operation
// that returned before another was called has the smaller return time.
//
// Three operations are recorded: [Write] of a token into a namespace
// (answered by the id the store assigned), [Read] by id (found with its
// content, or not found) and [List] of a namespace (every content in it).
// [Recorder.History] turns the record into porcupine operations, and
// [Check] (or [Verify] in a test) checks them against two models, each
// partitioned so that the checker stays fast:
//
//   - [RegisterModel]: one write-once register per id. Before the write
//     that got an id is linearized every read of that id finds nothing;
//     after it, every read finds exactly its content.
//   - [NamespaceModel]: one growing set per namespace. A listing holds
//     exactly the tokens of the writes linearized before it.
//
// On a failure [Verify] writes porcupine's HTML visualization under
// $NEXUS_ARTIFACTS (when set) or the test's artifact directory.
//
// # Writes whose outcome is unknown
//
// Ids are assigned by the store, so a client that gave up on a write does
// not know the id it may have got, yet the register model partitions by
// id. The write's token is the bridge: every write's content is a token
// unique in the run, so whatever later shows that content shows where the
// write went. [Recorder.History] gives such a write the id its token was
// found under — from [Recorder.Resolve], fed with a listing of the store
// taken once the run is over (normally every namespace, listed once the
// cluster has settled), else from the first read by id that returned the
// token — and the write then joins that id's partition. A write found
// nowhere keeps the zero id and a partition of its own: nothing observed
// it, whether it took effect or not. In the namespace model the token alone
// is enough, so unknown writes need no id there.
//
// # Caveats
//
// Contents are compared as whole strings, so the token must be the whole
// content of the context (or the test must hand the recorder exactly the
// content it wrote). Only content is modelled, not the other fields of a
// context. The order of a listing is not checked. Reads and listings whose
// outcome is unknown tell nothing and are dropped, as are operations still
// pending when History is called, except writes, which count as unknown.
// Porcupine's work is exponential in the operations concurrently in flight
// within one partition: unknown writes stay in flight until the end, so a
// run should spread its writes over small namespaces.
package linearize
