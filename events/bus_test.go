package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/events"
	"github.com/nexus-mem/nexus/gitstore"
)

// node is a store on disk whose hooks feed a running bus.
type node struct {
	store *gitstore.Store
	bus   *events.Bus
}

// newNode opens a store in dir (a new temporary directory if "") and runs
// a bus over it until the test ends. The writer hands the bus the
// contexts it commits, as the node wires them.
func newNode(t *testing.T, dir string, opts events.Options) *node {
	return newNodeHanding(t, dir, opts, func([]gitstore.Added) bool { return true }, nil)
}

// newNodeHanding is newNode whose writer hands the bus the contexts of
// the commits hand says (the others wake it only), and whose bus reads
// the store through wrap (if set).
func newNodeHanding(t *testing.T, dir string, opts events.Options, hand func([]gitstore.Added) bool, wrap func(nexus.Store) nexus.Store) *node {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	var bus atomic.Pointer[events.Bus]
	var handed atomic.Bool
	st, err := gitstore.Open(dir, gitstore.Options{
		OnContexts: func(prev nexus.ID, added []gitstore.Added) {
			b := bus.Load()
			if b == nil || !hand(added) {
				return
			}
			cs := make([]events.Added, len(added))
			for i, a := range added {
				cs[i] = events.Added{ID: a.Context.ID, Namespace: a.Context.Namespace, Type: a.Context.Type, AgentID: a.Context.AgentID, JSON: a.JSON}
			}
			b.Added(prev, cs)
			handed.Store(true)
		},
		OnCommit: func() {
			if b := bus.Load(); b != nil && !handed.Swap(false) {
				b.Notify()
			}
		},
		OnRestore: func(p gitstore.RestorePlan) {
			if b := bus.Load(); b != nil {
				b.Restored(restoreOf(p))
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var src nexus.Store = st
	if wrap != nil {
		src = wrap(st)
	}
	b, err := events.NewBus(t.Context(), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	bus.Store(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	return &node{store: st, bus: b}
}

func restoreOf(p gitstore.RestorePlan) events.Restore {
	plan, _ := json.Marshal(p)
	return events.Restore{LastKept: p.LastKept, FirstGone: p.FirstGone, LastGone: p.LastGone, Plan: plan}
}

func (n *node) put(t *testing.T, ns string, typ nexus.Type, agent, content string) *nexus.Context {
	t.Helper()
	c, err := n.store.Put(t.Context(), nexus.Draft{Namespace: ns, Type: typ, AgentID: agent, Content: content})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (n *node) puts(t *testing.T, k int, prefix string) []*nexus.Context {
	t.Helper()
	var cs []*nexus.Context
	for i := range k {
		cs = append(cs, n.put(t, "default", nexus.TypeMemory, "a", fmt.Sprint(prefix, i)))
	}
	return cs
}

func subscribe(t *testing.T, src nexus.EventSource, f nexus.EventFilter, last string) nexus.Subscription {
	t.Helper()
	sub, err := src.Subscribe(t.Context(), f, last)
	if err != nil {
		t.Fatalf("Subscribe(%+v, %q): %v", f, last, err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// next returns the next event, failing the test if none comes in 10 s.
func next(t *testing.T, sub nexus.Subscription) nexus.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ev, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

// quiet fails the test if an event comes within d.
func quiet(t *testing.T, sub nexus.Subscription, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	if ev, err := sub.Next(ctx); err == nil {
		t.Fatalf("unexpected event %s %s %s", ev.Type, ev.ID, ev.Data)
	}
}

// wantContexts reads len(want) events and checks they are those contexts,
// in order, with the data GET would return.
func wantContexts(t *testing.T, sub nexus.Subscription, want []*nexus.Context) {
	t.Helper()
	for i, c := range want {
		ev := next(t, sub)
		if ev.Type != nexus.EventContext || ev.ID != c.ID.String() {
			t.Fatalf("event %d is %s %s (%s), want context %s", i, ev.Type, ev.ID, ev.Data, c.ID)
		}
		var got nexus.Context
		if err := json.Unmarshal(ev.Data, &got); err != nil || got.ID != c.ID || got.Content != c.Content || !got.Timestamp.Equal(c.Timestamp) {
			t.Fatalf("event %d data %s does not describe %+v: %v", i, ev.Data, c, err)
		}
	}
}

func TestBus_live(t *testing.T) {
	n := newNode(t, "", events.Options{})
	all := subscribe(t, n.bus, nexus.EventFilter{}, "")
	beta := subscribe(t, n.bus, nexus.EventFilter{Namespace: "beta"}, "")
	dec := subscribe(t, n.bus, nexus.EventFilter{Type: nexus.TypeDecision, AgentID: "ann"}, "")
	var cs, betas, decs []*nexus.Context
	for i := range 30 {
		ns, typ, agent := []string{"alpha", "beta"}[i%2], []nexus.Type{nexus.TypeMemory, nexus.TypeDecision, nexus.TypeCode}[i%3], []string{"ann", "bob"}[i%4/2]
		c := n.put(t, ns, typ, agent, fmt.Sprint("item ", i))
		cs = append(cs, c)
		if ns == "beta" {
			betas = append(betas, c)
		}
		if typ == nexus.TypeDecision && agent == "ann" {
			decs = append(decs, c)
		}
	}
	wantContexts(t, all, cs)
	wantContexts(t, beta, betas)
	wantContexts(t, dec, decs)
	quiet(t, all, 50*time.Millisecond)
	if p := all.Position(); p != cs[len(cs)-1].ID.String() {
		t.Errorf("position %s after the last event, want its id %s", p, cs[len(cs)-1].ID)
	}
	// A filtered subscription's position passes the events it skipped.
	if p := beta.Position(); p != cs[len(cs)-1].ID.String() {
		t.Errorf("filtered position %s, want %s", p, cs[len(cs)-1].ID)
	}
	if _, err := n.bus.Subscribe(t.Context(), nexus.EventFilter{Type: "bogus"}, ""); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Errorf("bad filter: %v", err)
	}
	for _, id := range []string{"x", "01KB2W3G6T0Q5A9QYQ7M3N8C2D.", "01KB2W3G6T0Q5A9QYQ7M3N8C2D.01", "0.-1", strings.Repeat("1", 70)} {
		if _, err := n.bus.Subscribe(t.Context(), nexus.EventFilter{}, id); nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("last event id %q: %v, want invalid", id, err)
		}
	}
}

// Resuming from any event's id gives every later event once, in order,
// whether the ring still holds them or they come from the store.
func TestBus_resume(t *testing.T) {
	for _, ring := range []int{4096, 4} {
		t.Run(fmt.Sprint("ring ", ring), func(t *testing.T) {
			n := newNode(t, "", events.Options{Ring: ring, Page: 3})
			sub := subscribe(t, n.bus, nexus.EventFilter{}, "")
			first := n.puts(t, 5, "first ")
			wantContexts(t, sub, first[:2])
			last := sub.Position()
			sub.Close()
			rest := append(first[2:], n.puts(t, 20, "second ")...)
			again := subscribe(t, n.bus, nexus.EventFilter{}, last)
			wantContexts(t, again, rest)
			quiet(t, again, 50*time.Millisecond)
			// From a filtered subscription's position (which passes what
			// it skipped): nothing before it comes again.
			even := subscribe(t, n.bus, nexus.EventFilter{AgentID: "even"}, rest[len(rest)-1].ID.String())
			odd := n.put(t, "default", nexus.TypeMemory, "odd", "odd one")
			quiet(t, even, 50*time.Millisecond)
			wantContexts(t, again, []*nexus.Context{odd})
			c := n.put(t, "default", nexus.TypeMemory, "even", "even one")
			wantContexts(t, even, []*nexus.Context{c})
		})
	}
}

// A subscriber that does not read does not hold up writers; when it reads
// again it gets everything, once, in order, from the store.
func TestBus_slowSubscriber(t *testing.T) {
	n := newNode(t, "", events.Options{Ring: 16, Page: 7})
	slow := subscribe(t, n.bus, nexus.EventFilter{}, "")
	fast := subscribe(t, n.bus, nexus.EventFilter{}, "")
	const writers, each = 4, 50
	var mu sync.Mutex
	var written []*nexus.Context
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				c := n.put(t, "default", nexus.TypeMemory, fmt.Sprint("w", w), fmt.Sprint(w, " ", i))
				mu.Lock()
				written = append(written, c)
				mu.Unlock()
			}
		})
	}
	got := map[string]bool{}
	var order []string
	for len(order) < writers*each {
		ev := next(t, fast)
		if got[ev.ID] {
			t.Fatalf("fast subscriber got %s twice", ev.ID)
		}
		got[ev.ID] = true
		order = append(order, ev.ID)
	}
	wg.Wait()
	if !sortedIDs(order) {
		t.Fatal("fast subscriber got contexts out of id order")
	}
	for i, id := range order {
		if ev := next(t, slow); ev.ID != id {
			t.Fatalf("slow subscriber's event %d is %s, want %s", i, ev.ID, id)
		}
	}
	quiet(t, slow, 50*time.Millisecond)
}

func sortedIDs(ids []string) bool {
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			return false
		}
	}
	return true
}

// restorePlan decodes a restore event.
func restorePlan(t *testing.T, ev nexus.Event) gitstore.RestorePlan {
	t.Helper()
	var p gitstore.RestorePlan
	if ev.Type != nexus.EventRestore {
		t.Fatalf("event %s %s (%s), want a restore", ev.Type, ev.ID, ev.Data)
	}
	if err := json.Unmarshal(ev.Data, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBus_restore(t *testing.T) {
	n := newNode(t, "", events.Options{Page: 2})
	live := subscribe(t, n.bus, nexus.EventFilter{}, "")
	cs := n.puts(t, 6, "before ")
	wantContexts(t, live, cs)
	plan, err := n.store.RestoreTo(t.Context(), cs[2].Timestamp, false)
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, live)
	if p := restorePlan(t, ev); p.LastKept != cs[2].ID || p.FirstGone != cs[3].ID || p.LastGone != cs[5].ID || p.RecoveryRef != plan.RecoveryRef {
		t.Fatalf("restore event %s, want the plan %+v", ev.Data, plan)
	}
	if !strings.HasPrefix(ev.ID, cs[2].ID.String()+".") {
		t.Errorf("restore event id %s does not start with the last kept context %s", ev.ID, cs[2].ID)
	}
	after := n.puts(t, 3, "after ")
	wantContexts(t, live, after)

	// From a context the restore rolled back: the restore, then what came after.
	gone := subscribe(t, n.bus, nexus.EventFilter{}, cs[4].ID.String())
	if got := next(t, gone); got.ID != ev.ID {
		t.Fatalf("resumed from a rolled-back context: %s %s, want the restore %s", got.Type, got.ID, ev.ID)
	}
	wantContexts(t, gone, after)
	// From a kept context: the kept contexts after it, the restore, the rest.
	kept := subscribe(t, n.bus, nexus.EventFilter{}, cs[1].ID.String())
	wantContexts(t, kept, cs[2:3])
	if got := next(t, kept); got.ID != ev.ID {
		t.Fatalf("resumed from a kept context: %s %s, want the restore", got.Type, got.ID)
	}
	wantContexts(t, kept, after)
	// From the restore itself: only what came after.
	wantContexts(t, subscribe(t, n.bus, nexus.EventFilter{}, ev.ID), after)
	// A filter that matches none of the contexts still gets the restore.
	none := subscribe(t, n.bus, nexus.EventFilter{Namespace: "elsewhere"}, cs[0].ID.String())
	if got := next(t, none); got.ID != ev.ID {
		t.Fatalf("filtered resume: %s %s, want the restore", got.Type, got.ID)
	}
	quiet(t, none, 50*time.Millisecond)
}

// After a restart the bus no longer holds the restore: a subscriber
// resuming from a rolled-back context is told to resync from the newest
// context kept before it, then gets everything after that.
func TestBus_restoreForgotten(t *testing.T) {
	dir := t.TempDir()
	st, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var cs []*nexus.Context
	for i := range 5 {
		c, err := st.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("c", i)})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if _, err := st.RestoreTo(t.Context(), cs[1].Timestamp, false); err != nil {
		t.Fatal(err)
	}
	st.Close()
	n := newNode(t, dir, events.Options{})
	after := n.puts(t, 2, "after ")
	sub := subscribe(t, n.bus, nexus.EventFilter{}, cs[3].ID.String())
	ev := next(t, sub)
	var data struct {
		Reason   string   `json:"reason"`
		Message  string   `json:"message"`
		LastKept nexus.ID `json:"last_kept"`
	}
	json.Unmarshal(ev.Data, &data)
	if ev.Type != nexus.EventResync || data.Reason != "not_in_memory" || data.LastKept != cs[1].ID || !strings.HasPrefix(ev.ID, cs[1].ID.String()+".") {
		t.Fatalf("resumed from a context restored away offline: %s %s %s", ev.Type, ev.ID, ev.Data)
	}
	wantContexts(t, sub, after)
	// Resuming from the resync's id does not resync again.
	wantContexts(t, subscribe(t, n.bus, nexus.EventFilter{}, ev.ID), after)
}

func TestBus_Publish(t *testing.T) {
	n := newNode(t, "", events.Options{Marks: 3})
	all := subscribe(t, n.bus, nexus.EventFilter{}, "")
	ann := subscribe(t, n.bus, nexus.EventFilter{AgentID: "ann"}, "")
	c1 := n.put(t, "default", nexus.TypeMemory, "bob", "one")
	wantContexts(t, all, []*nexus.Context{c1})
	pub, err := n.bus.Publish(nexus.Event{Type: "agent", Data: json.RawMessage(` {"agent": "ann", "status": "online"} `)}, nexus.EventFilter{AgentID: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pub.ID, c1.ID.String()+".") || string(pub.Data) != `{"agent":"ann","status":"online"}` {
		t.Fatalf("published %+v", pub)
	}
	if _, err := n.bus.Publish(nexus.Event{Type: "agent", Data: json.RawMessage(`{}`)}, nexus.EventFilter{AgentID: "bob"}); err != nil {
		t.Fatal(err)
	}
	c2 := n.put(t, "default", nexus.TypeMemory, "ann", "two")
	for _, want := range []string{pub.ID, "", c2.ID.String()} {
		ev := next(t, all)
		if want != "" && ev.ID != want {
			t.Fatalf("all: %s %s, want %s", ev.Type, ev.ID, want)
		}
	}
	for _, want := range []string{pub.ID, c2.ID.String()} {
		if ev := next(t, ann); ev.ID != want {
			t.Fatalf("ann: %s %s, want %s", ev.Type, ev.ID, want)
		}
	}
	// Resuming from the context before a published event replays it.
	again := subscribe(t, n.bus, nexus.EventFilter{AgentID: "ann"}, c1.ID.String())
	if ev := next(t, again); ev.ID != pub.ID || ev.Type != "agent" {
		t.Fatalf("resumed: %s %s, want %s", ev.Type, ev.ID, pub.ID)
	}
	wantContexts(t, again, []*nexus.Context{c2})

	// Beyond the marks kept, the subscriber is told what it missed.
	for range 3 {
		if _, err := n.bus.Publish(nexus.Event{Type: "agent", Data: json.RawMessage(`1`)}, nexus.EventFilter{}); err != nil {
			t.Fatal(err)
		}
	}
	late := subscribe(t, n.bus, nexus.EventFilter{}, pub.ID)
	if ev := next(t, late); ev.Type != nexus.EventResync || !strings.Contains(string(ev.Data), `"dropped"`) {
		t.Fatalf("resumed past the marks kept: %s %s %s", ev.Type, ev.ID, ev.Data)
	}
	for _, bad := range []nexus.Event{
		{Type: "context", Data: json.RawMessage(`{}`)},
		{Type: "Agent", Data: json.RawMessage(`{}`)},
		{Type: "agent", Data: json.RawMessage(`{`)},
		{Type: "agent", ID: "x", Data: json.RawMessage(`{}`)},
	} {
		if _, err := n.bus.Publish(bad, nexus.EventFilter{}); nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("Publish(%+v): %v, want invalid", bad, err)
		}
	}
}

// An id of a published event from a previous process resumes with a
// resync that says so, then the contexts after it.
func TestBus_restart(t *testing.T) {
	dir := t.TempDir()
	n := newNode(t, dir, events.Options{})
	sub := subscribe(t, n.bus, nexus.EventFilter{}, "")
	c := n.put(t, "default", nexus.TypeMemory, "a", "one")
	wantContexts(t, sub, []*nexus.Context{c}) // published events come after what the bus published
	pub, err := n.bus.Publish(nexus.Event{Type: "agent", Data: json.RawMessage(`{}`)}, nexus.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	n.store.Close()
	st, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	later := time.Now().Add(time.Second)
	b, err := events.NewBus(t.Context(), st, events.Options{Now: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	sub = subscribe(t, b, nexus.EventFilter{}, pub.ID)
	if ev := next(t, sub); ev.Type != nexus.EventResync || !strings.Contains(string(ev.Data), `"restart"`) || !strings.HasPrefix(ev.ID, c.ID.String()+".") {
		t.Fatalf("resumed across a restart: %s %s %s", ev.Type, ev.ID, ev.Data)
	}
	// A context id resumes across a restart without a resync.
	quiet(t, subscribe(t, b, nexus.EventFilter{}, c.ID.String()), 50*time.Millisecond)
}

// Concurrent writers, restores and published events, with subscribers
// that fall behind a small ring and ones that disconnect and resume at
// random: each ends holding exactly the contexts the store holds, having
// received no context twice and every published event once.
func TestBus_resumeUnderLoad(t *testing.T) {
	n := newNode(t, "", events.Options{Ring: 8, Page: 3})
	type subscriber struct {
		name   string
		f      nexus.EventFilter
		every  int // disconnects after this many events (0: never)
		sub    nexus.Subscription
		held   map[nexus.ID]bool
		seen   map[nexus.ID]bool
		marks  map[string]int
		events int
	}
	subs := []*subscriber{
		{name: "live", every: 0},
		{name: "resumes", every: 7},
		{name: "namespace a, resumes", f: nexus.EventFilter{Namespace: "a"}, every: 5},
	}
	for _, s := range subs {
		s.sub = subscribe(t, n.bus, s.f, "")
		s.held, s.seen, s.marks = map[nexus.ID]bool{}, map[nexus.ID]bool{}, map[string]int{}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var written []*nexus.Context
	for w := range 3 {
		wg.Go(func() {
			for i := range 60 {
				c := n.put(t, []string{"a", "b"}[i%2], nexus.TypeMemory, fmt.Sprint("w", w), fmt.Sprint(w, " ", i))
				mu.Lock()
				written = append(written, c)
				mu.Unlock()
				time.Sleep(time.Duration(i%3) * time.Millisecond)
			}
		})
	}
	const published = 20
	wg.Go(func() {
		for i := range published {
			if _, err := n.bus.Publish(nexus.Event{Type: "note", Data: json.RawMessage(fmt.Sprint(i))}, nexus.EventFilter{}); err != nil {
				t.Error(err)
			}
			time.Sleep(4 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for range 3 {
			time.Sleep(25 * time.Millisecond)
			mu.Lock()
			if len(written) == 0 {
				mu.Unlock()
				continue
			}
			at := written[len(written)*2/3].Timestamp
			mu.Unlock()
			if _, err := n.store.RestoreTo(t.Context(), at, false); err != nil {
				t.Error(err)
			}
		}
	})
	// apply reads one event into s's view of the memory.
	apply := func(s *subscriber, ev nexus.Event) {
		s.events++
		switch ev.Type {
		case nexus.EventContext:
			var c nexus.Context
			if err := json.Unmarshal(ev.Data, &c); err != nil {
				t.Fatal(err)
			}
			if s.seen[c.ID] {
				t.Fatalf("%s: context %s delivered twice", s.name, c.ID)
			}
			s.seen[c.ID], s.held[c.ID] = true, true
		case nexus.EventRestore:
			p := restorePlan(t, ev)
			for id := range s.held {
				if id.Compare(p.LastKept) > 0 {
					delete(s.held, id)
				}
			}
		case "note":
			s.marks[string(ev.Data)]++
		default:
			t.Fatalf("%s: unexpected event %s %s %s", s.name, ev.Type, ev.ID, ev.Data)
		}
		if s.every > 0 && s.events%s.every == 0 {
			last := s.sub.Position()
			s.sub.Close()
			s.sub = subscribe(t, n.bus, s.f, last)
		}
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()
	for done := false; !done; {
		select {
		case <-writing:
			done = true
		default:
		}
		for _, s := range subs {
			ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
			ev, err := s.sub.Next(ctx)
			cancel()
			if err == nil {
				apply(s, ev)
			}
		}
	}
	// Drain: each subscriber reads until its view is the store's.
	for _, s := range subs {
		want := map[nexus.ID]bool{}
		p, err := n.store.List(t.Context(), nexus.Filter{Namespace: s.f.Namespace, Limit: nexus.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Contexts {
			want[c.ID] = true
		}
		deadline := time.Now().Add(10 * time.Second)
		for !sameSet(s.held, want) || len(s.marks) < published {
			if time.Now().After(deadline) {
				t.Fatalf("%s holds %d contexts and %d notes, want the store's %d and %d", s.name, len(s.held), len(s.marks), len(want), published)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			ev, err := s.sub.Next(ctx)
			cancel()
			if err == nil {
				apply(s, ev)
			}
		}
		for note, k := range s.marks {
			if k != 1 {
				t.Errorf("%s got note %s %d times", s.name, note, k)
			}
		}
		t.Logf("%s: %d events, holds %d contexts", s.name, s.events, len(s.held))
	}
}

func sameSet(a, b map[nexus.ID]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
