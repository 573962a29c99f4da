package linearize

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/nexus-mem/nexus"
)

// Never is the return time of an operation whose outcome is unknown: later
// than every time the recorder hands out, so the checker may place the
// operation anywhere after its call, including after everything else (where
// it changes nothing any other operation saw).
const Never int64 = math.MaxInt64

type status uint8

const (
	pending status = iota
	done
	unknown
	failed
)

// record is one operation as the recorder holds it.
type record struct {
	client    int
	in        Input
	out       Output
	call, ret int64
	timing    Timing
	status    status
}

// Recorder records the operations of many clients with their call and
// return times. It is safe for concurrent use; the zero value is not ready,
// use [NewRecorder].
type Recorder struct {
	start time.Time

	mu     sync.Mutex
	clock  int64 // the last time handed out; guarded by mu
	ops    []*record
	writes map[string]*record  // token → its write
	stored map[string]nexus.ID // token → the id a listing showed it under
}

// NewRecorder returns an empty recorder whose clock starts now.
func NewRecorder() *Recorder {
	return &Recorder{
		start:  time.Now(),
		writes: make(map[string]*record),
		stored: make(map[string]nexus.ID),
	}
}

// tick returns the next time of the clock; r.mu is held. Every time is
// distinct, and a time taken after another (in real time) is greater, so the
// order of the recorded intervals is the real-time order of the moments they
// were taken.
func (r *Recorder) tick() int64 {
	r.clock++
	return r.clock
}

// Pending is an operation that was called and has not returned yet. Exactly
// one of Ok, Unknown or Fail must be called on it; calling a second one
// panics. An operation left pending counts as unknown (see
// [Recorder.History]).
type Pending struct {
	r   *Recorder
	rec *record
}

// Begin records the call of an operation by client (a small number from 0,
// which the visualization uses as the row) and returns the pending
// operation. Call it immediately before sending the request: the call time
// is taken inside Begin.
//
// Begin panics on an input that cannot be checked: a write with an empty
// token or a token already written through this recorder, a read of the zero
// id, a list of the empty namespace, an unknown kind or a negative client.
// These are mistakes of the test, not of the store.
func (r *Recorder) Begin(client int, in Input) *Pending {
	if client < 0 {
		panic(fmt.Sprintf("linearize: negative client %d", client))
	}
	switch in.Kind {
	case KindWrite:
		if in.Token == "" {
			panic("linearize: a write needs a non-empty token")
		}
		in.ID = nexus.ZeroID
	case KindRead:
		if in.ID.IsZero() {
			panic("linearize: a read of the zero id")
		}
	case KindList:
		if in.Namespace == "" {
			panic("linearize: a list of the empty namespace")
		}
	default:
		panic(fmt.Sprintf("linearize: unknown operation %v", in.Kind))
	}
	rec := &record{client: client, in: in}
	r.mu.Lock()
	defer r.mu.Unlock()
	if in.Kind == KindWrite {
		if _, dup := r.writes[in.Token]; dup {
			panic(fmt.Sprintf("linearize: token %q written twice; every write needs its own token", in.Token))
		}
		r.writes[in.Token] = rec
	}
	r.ops = append(r.ops, rec)
	rec.timing.Start = time.Since(r.start)
	rec.call = r.tick()
	return &Pending{r: r, rec: rec}
}

// finish records the return of p with status s; it panics if p already
// returned.
func (p *Pending) finish(s status, out Output) {
	r := p.r
	r.mu.Lock()
	defer r.mu.Unlock()
	ret := r.tick()
	if p.rec.status != pending {
		panic(fmt.Sprintf("linearize: %s by client %d completed twice", p.rec.in.Kind, p.rec.client))
	}
	p.rec.ret = ret
	p.rec.timing.End = time.Since(r.start)
	p.rec.timing.Unknown = s == unknown
	p.rec.status = s
	p.rec.out = out
}

// Ok records that the operation returned out. Call it as soon as the answer
// arrives: the return time is taken inside Ok. A write's output must carry the
// id the store assigned; Ok panics on a zero id or an output marked unknown.
func (p *Pending) Ok(out Output) {
	if out.Unknown {
		panic("linearize: Ok with an unknown output; call Unknown")
	}
	if p.rec.in.Kind == KindWrite && out.ID.IsZero() {
		panic(fmt.Sprintf("linearize: write of %q returned without an id", p.rec.in.Token))
	}
	if p.rec.in.Kind == KindList {
		out.Tokens = slices.Clone(out.Tokens)
		slices.Sort(out.Tokens)
	}
	p.finish(done, out)
}

// Unknown records that the client never learned the outcome: the request
// timed out, the connection was cut, the node was killed. A write may then
// have taken effect at any time after its call, or never; a read or a list
// tells nothing and is left out of the history.
func (p *Pending) Unknown() { p.finish(unknown, Output{Unknown: true}) }

// Fail records that the operation is known not to have taken effect (the
// store refused it: no quorum, invalid input). It is left out of the
// history; a failed write whose token a read, a listing or [Recorder.Resolve]
// later finds is a violation.
func (p *Pending) Fail() { p.finish(failed, Output{}) }

// Stored is one context of a listing given to [Recorder.Resolve].
type Stored struct {
	ID        nexus.ID
	Namespace string
	Content   string
}

// Resolve learns where the writes ended up from a listing of the store,
// typically taken once the run is over and the cluster has settled: every
// write whose outcome is unknown and whose token the listing holds gets that
// id (see [Recorder.History]). Contexts whose content is no recorded token are
// ignored. It may be called once per namespace listed.
//
// It returns an error for each contradiction the listing shows on its own: a
// token stored under two ids (a write applied twice), an acknowledged write
// stored under another id than the one it returned, a write stored in
// another namespace, a write the store refused ([Pending.Fail]) that is stored
// after all. These are violations of the store, not of the test.
//
// To check that the listing misses no acknowledged write, record the listing
// itself as a [List] operation too: the namespace model then requires it to
// hold every write that returned before it was called.
func (r *Recorder) Resolve(listing []Stored) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, s := range listing {
		w := r.writes[s.Content]
		if w == nil {
			continue
		}
		if s.Namespace != w.in.Namespace {
			errs = append(errs, fmt.Errorf("linearize: token %q written to namespace %q is stored in %q (id %s)", s.Content, w.in.Namespace, s.Namespace, s.ID))
		}
		switch w.status {
		case done:
			if s.ID != w.out.ID {
				errs = append(errs, fmt.Errorf("linearize: write of token %q returned id %s but the store holds it under %s", s.Content, w.out.ID, s.ID))
			}
		case failed:
			errs = append(errs, fmt.Errorf("linearize: write of token %q failed (the store said it did not take effect) but the store holds it under %s", s.Content, s.ID))
		default:
			if prev, seen := r.stored[s.Content]; seen && prev != s.ID {
				errs = append(errs, fmt.Errorf("linearize: token %q is stored twice, under %s and %s", s.Content, prev, s.ID))
				continue
			}
			r.stored[s.Content] = s.ID
		}
	}
	return errors.Join(errs...)
}

// Timing is the metadata of a recorded operation: when, since the recorder
// was made, its call and its return were recorded. For an operation whose
// outcome is unknown End is when the client gave up, and it is zero for one
// left pending.
type Timing struct {
	Start, End time.Duration
	Unknown    bool
}

// String renders the timing for the visualization.
func (t Timing) String() string {
	switch {
	case t.End == 0:
		return fmt.Sprintf("called at %v, never returned", t.Start)
	case t.Unknown:
		return fmt.Sprintf("called at %v, given up at %v (%v), outcome unknown", t.Start, t.End, t.End-t.Start)
	}
	return fmt.Sprintf("called at %v, returned at %v (%v)", t.Start, t.End, t.End-t.Start)
}

// History returns the operations recorded so far, for [Check] with
// [RegisterModel] and [NamespaceModel]:
//
//   - an operation that returned ([Pending.Ok]) keeps its times; a write's
//     Input.ID is the id it returned;
//   - a write whose outcome is unknown, or still pending, returns at [Never]
//     with Output.Unknown set. Its Input.ID is the id its token was found
//     under: by [Recorder.Resolve] first, else by the first read that
//     returned its token; it stays zero when nothing found it, and the write
//     is then checked on its own (it took effect invisibly, or never);
//   - reads and lists that did not return, and every failed operation, are
//     left out.
//
// Operations are in the order they were called; Metadata is their [Timing].
func (r *Recorder) History() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make(map[string]nexus.ID, len(r.stored))
	for tok, id := range r.stored {
		ids[tok] = id
	}
	for _, rec := range r.ops {
		if rec.in.Kind != KindRead || rec.status != done || !rec.out.Found {
			continue
		}
		w := r.writes[rec.out.Content]
		if w == nil || w.status == done || w.status == failed {
			continue
		}
		if _, known := ids[rec.out.Content]; !known {
			ids[rec.out.Content] = rec.in.ID
		}
	}
	h := make([]porcupine.Operation, 0, len(r.ops))
	for _, rec := range r.ops {
		in, out, ret := rec.in, rec.out, rec.ret
		switch rec.status {
		case failed:
			continue
		case pending, unknown:
			if in.Kind != KindWrite {
				continue
			}
			in.ID = ids[in.Token]
			out = Output{Unknown: true}
			ret = Never
		case done:
			if in.Kind == KindWrite {
				in.ID = out.ID
			}
		}
		h = append(h, porcupine.Operation{
			ClientId: rec.client,
			Input:    in,
			Call:     rec.call,
			Output:   out,
			Return:   ret,
			Metadata: rec.timing,
		})
	}
	return h
}

// Counts are the numbers of operations of one kind by outcome.
type Counts struct {
	Ok, Unknown, Failed, Pending int
}

// Counts returns how the operations of kind k ended so far, so a test can
// show (and assert) what its run exercised.
func (r *Recorder) Counts(k Kind) Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	var c Counts
	for _, rec := range r.ops {
		if rec.in.Kind != k {
			continue
		}
		switch rec.status {
		case done:
			c.Ok++
		case unknown:
			c.Unknown++
		case failed:
			c.Failed++
		case pending:
			c.Pending++
		}
	}
	return c
}
