package authz_test

import (
	"context"
	"encoding/json"
	"maps"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/events"
)

// An event stream carries only the contexts and tasks of namespaces the
// principal may read, and the events about no namespace; a filter naming
// an unreadable namespace is forbidden.
func TestEvents_onlyReadable(t *testing.T) {
	s := openStore(t)
	bus, err := events.NewBus(context.Background(), s, events.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); bus.Run(ctx) }()
	defer func() { cancel(); <-done }()
	src := authz.NewEvents(bus)

	sub, err := src.Subscribe(as(reader), nexus.EventFilter{}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	all, err := src.Subscribe(context.Background(), nexus.EventFilter{}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	_, err = src.Subscribe(as(reader), nexus.EventFilter{Namespace: "secret"}, "")
	wantCode(t, "subscription to an unreadable namespace", err, nexus.EForbidden)

	put := func(ns string) *nexus.Context {
		c, err := s.Put(context.Background(), nexus.Draft{Namespace: ns, Type: nexus.TypeMemory, Content: "in " + ns})
		if err != nil {
			t.Fatal(err)
		}
		bus.Notify()
		return c
	}
	publish := func(typ, data string) {
		if _, err := bus.Publish(nexus.Event{Type: typ, Data: json.RawMessage(data)}, nexus.EventFilter{}); err != nil {
			t.Fatal(err)
		}
	}
	hidden := put("secret")
	publish("task", `{"task":"01KB2W3G6T0Q5A9QYQ7M3N8C2D","status":"queued","namespace":"secret"}`)
	publish("task", `{"task":"01KB2W3G6T0Q5A9QYQ7M3N8C2E","status":"queued","namespace":7}`)
	shown := put("team-a")
	publish("task", `{"task":"01KB2W3G6T0Q5A9QYQ7M3N8C2F","status":"queued","namespace":"team-a"}`)
	publish("agent", `{"agent":"coder","status":"healthy"}`)

	// Contexts reach the stream when the bus reads the store, published
	// events at once: the three come in either order, so compare them as
	// a set.
	got := map[string]bool{}
	for range 3 {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == nexus.EventContext {
			var c nexus.Context
			if err := json.Unmarshal(ev.Data, &c); err != nil {
				t.Fatal(err)
			}
			got["context "+c.ID.String()] = true
			continue
		}
		got[ev.Type+" "+string(ev.Data)] = true
	}
	want := map[string]bool{
		"context " + shown.ID.String(): true,
		`task {"task":"01KB2W3G6T0Q5A9QYQ7M3N8C2F","status":"queued","namespace":"team-a"}`: true,
		`agent {"agent":"coder","status":"healthy"}`:                                        true,
	}
	if !maps.Equal(got, want) {
		t.Fatalf("events: %v, want %v", got, want)
	}
	// The hidden context came before the shown one: it was skipped, and
	// nothing else waits.
	polled, stop := context.WithCancel(ctx)
	stop()
	if ev, err := sub.Next(polled); err == nil {
		t.Fatalf("a fourth event: %s %s", ev.Type, ev.Data)
	}
	// The node's own subscription sees all six.
	seen := map[string]bool{}
	for range 6 {
		ev, err := all.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var c nexus.Context
		if ev.Type == nexus.EventContext && json.Unmarshal(ev.Data, &c) == nil {
			seen["context "+c.ID.String()] = true
		}
		seen[ev.Type+" "+string(ev.Data)] = true
	}
	if !seen["context "+hidden.ID.String()] || !seen[`task {"task":"01KB2W3G6T0Q5A9QYQ7M3N8C2D","status":"queued","namespace":"secret"}`] ||
		!seen[`task {"task":"01KB2W3G6T0Q5A9QYQ7M3N8C2E","status":"queued","namespace":7}`] {
		t.Fatalf("the node's stream: %v", seen)
	}
}
