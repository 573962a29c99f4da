package nexus

import (
	"context"
	"encoding/json"
)

// The event types the memory publishes itself. Other publishers (agent
// status, say) add their own names.
const (
	// EventContext is a new context; Data is the context as
	// GET /v1/contexts/{id} returns it, and ID is the context's id.
	EventContext = "context"
	// EventRestore is a point-in-time restore; Data is the restore plan,
	// whose "last_kept" names the newest context kept: everything the
	// subscriber holds after it is gone.
	EventRestore = "restore"
	// EventResync says the stream could not be resumed exactly from the id
	// the subscriber gave; Data is {"reason","message","position"}. Contexts
	// are never missed; see the reasons for what else may have been.
	EventResync = "resync"
)

// Event is one item of the live event stream (GET /v1/events).
type Event struct {
	// Type names the event: [EventContext], [EventRestore], [EventResync]
	// or a publisher's own name.
	Type string `json:"type"`
	// ID is the event's position in the stream, assigned by the stream: a
	// subscriber that gives it back when it resumes gets every later event.
	ID string `json:"id"`
	// Data is the event's JSON payload, compact (on one line).
	Data json.RawMessage `json:"data"`
}

// EventFilter selects the events of a subscription by what they are
// about. Zero fields match everything.
type EventFilter struct {
	Namespace string
	Type      Type // the type of a context
	AgentID   string
}

// Validate checks the filter's fields.
func (f EventFilter) Validate() error {
	lf := Filter{Namespace: f.Namespace, Type: f.Type, AgentID: f.AgentID}
	return lf.Validate()
}

// Match reports whether an event about about passes f: every field set in
// both must be equal. A context event is about its namespace, type and
// agent; a restore is about nothing in particular, so every filter passes
// it.
func (f EventFilter) Match(about EventFilter) bool {
	eq := func(want, got string) bool { return want == "" || got == "" || want == got }
	return eq(f.Namespace, about.Namespace) && eq(string(f.Type), string(about.Type)) && eq(f.AgentID, about.AgentID)
}

// EventSource is the live stream of what happens in a memory: new
// contexts, restores, and what other publishers add. Implementations:
// the events package (in process) and httpapi.Client (a remote server).
type EventSource interface {
	// Subscribe starts a subscription to the events f selects. With an
	// empty lastEventID it starts with the next event; with the ID of an
	// event received before, with the event after it. A malformed id is
	// an EInvalid error. ctx bounds the subscription: once it is done,
	// Next fails.
	Subscribe(ctx context.Context, f EventFilter, lastEventID string) (Subscription, error)
}

// Subscription delivers events in order. It is not safe for concurrent
// use.
type Subscription interface {
	// Next returns the next event. It waits until one comes, ctx is done
	// or the subscription ends; an event already waiting is returned even
	// if ctx is done, so Next with a done ctx polls.
	Next(ctx context.Context) (Event, error)
	// Position returns an id to resume from: every event before it has
	// been returned by Next or filtered out.
	Position() string
	// Close ends the subscription.
	Close() error
}
