package authz

import (
	"context"
	"encoding/json"

	"github.com/nexus-mem/nexus"
)

// Events is a [nexus.EventSource] whose subscriptions carry only the
// events of namespaces the caller may read. An event is about a namespace
// when its data is a JSON object with a "namespace" string: a context
// (its namespace), a task (the task's). Events about no namespace (an
// agent's or a process's status, a restore, a resync) go to every
// subscriber that may read at all.
type Events struct {
	inner nexus.EventSource
}

var _ nexus.EventSource = (*Events)(nil)

// NewEvents returns src behind the access checks, or nil if src is nil.
func NewEvents(src nexus.EventSource) nexus.EventSource {
	if src == nil {
		return nil
	}
	return &Events{inner: src}
}

// Subscribe starts a subscription to the events f selects that the
// caller may read; a filter naming a namespace it may not read is
// forbidden.
func (e *Events) Subscribe(ctx context.Context, f nexus.EventFilter, lastEventID string) (nexus.Subscription, error) {
	p := principal(ctx)
	if p == nil || readsAll(p) {
		return e.inner.Subscribe(ctx, f, lastEventID)
	}
	if !p.Can(nexus.RoleRead) {
		return nil, nexus.Errorf(nexus.EForbidden, "principal %q has role %q: reading needs role read", p.Name, p.Role)
	}
	if err := checkReadFilter(ctx, f.Namespace); err != nil {
		return nil, err
	}
	sub, err := e.inner.Subscribe(ctx, f, lastEventID)
	if err != nil {
		return nil, err
	}
	return &subscription{Subscription: sub, p: p}, nil
}

// subscription skips the events of namespaces its principal may not
// read. Its position is the underlying one: skipped events count as
// filtered out.
type subscription struct {
	nexus.Subscription
	p *nexus.Principal
}

// Next returns the next event the principal may read.
func (s *subscription) Next(ctx context.Context) (nexus.Event, error) {
	for {
		ev, err := s.Subscription.Next(ctx)
		if err != nil || s.allowed(ev) {
			return ev, err
		}
	}
}

func (s *subscription) allowed(ev nexus.Event) bool {
	ns, ok := namespaceOf(ev.Data)
	return !ok || s.p.CanRead(ns)
}

// namespaceOf returns the "namespace" of an event's data, if it is an
// object that has one. A namespace that is not a string is returned as
// one no principal may read.
func namespaceOf(data json.RawMessage) (string, bool) {
	var about struct {
		Namespace json.RawMessage `json:"namespace"`
	}
	if err := json.Unmarshal(data, &about); err != nil || about.Namespace == nil {
		return "", false
	}
	var ns string
	if err := json.Unmarshal(about.Namespace, &ns); err != nil {
		return "", true
	}
	return ns, true
}
