package events_test

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/events"
	"github.com/nexus-mem/nexus/gitstore"
)

// listCounter is a store that tells of each List call it answered.
type listCounter struct {
	nexus.Store
	listed chan struct{}
}

func (s *listCounter) List(ctx context.Context, f nexus.Filter) (*nexus.Page, error) {
	p, err := s.Store.List(ctx, f)
	s.listed <- struct{}{}
	return p, err
}

// The contexts the writer hands over are published as it has them, with
// the bytes GET returns, without reading the store back.
func TestBus_Added_publishedWithoutReading(t *testing.T) {
	var counter *listCounter
	n := newNodeHanding(t, "", events.Options{Poll: time.Hour}, func([]gitstore.Added) bool { return true },
		func(s nexus.Store) nexus.Store {
			counter = &listCounter{Store: s, listed: make(chan struct{}, 1000)}
			return counter
		})
	// NewBus read the newest context, and Run reads the store when it
	// starts; then no more.
	<-counter.listed
	<-counter.listed
	sub := subscribe(t, n.bus, nexus.EventFilter{}, "")
	var cs []*nexus.Context
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 { // concurrent writers: group commits of several contexts
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				c, err := n.store.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, AgentID: "w", Content: "<&> " + string(rune('a'+w)) + string(rune('0'+i))})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				cs = append(cs, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for range cs {
		ev := next(t, sub)
		id, err := nexus.ParseID(ev.ID)
		if err != nil || ev.Type != nexus.EventContext {
			t.Fatalf("event %s %s", ev.Type, ev.ID)
		}
		raw, err := n.store.GetRaw(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(append(ev.Data, '\n'), raw) {
			t.Fatalf("event data %s, want what GET returns: %s", ev.Data, raw)
		}
	}
	quiet(t, sub, 50*time.Millisecond)
	if k := len(counter.listed); k != 0 {
		t.Errorf("the bus listed the store %d times for contexts handed over, want 0", k)
	}
}

// Contexts not handed over (every other commit here) leave a gap the bus
// fills from the store: every context comes once, in commit order.
func TestBus_Added_gapsReadFromTheStore(t *testing.T) {
	var k atomic.Int64
	n := newNodeHanding(t, "", events.Options{Page: 2}, func([]gitstore.Added) bool { return k.Add(1)%2 == 0 }, nil)
	sub := subscribe(t, n.bus, nexus.EventFilter{}, "")
	cs := n.puts(t, 25, "item ")
	wantContexts(t, sub, cs)
	quiet(t, sub, 50*time.Millisecond)
}

// A bus that is not running keeps what is handed over up to its ring and
// then reads the store instead: nothing is missed.
func TestBus_Added_overflowReadsTheStore(t *testing.T) {
	dir := t.TempDir()
	var bus atomic.Pointer[events.Bus]
	st, err := gitstore.Open(dir, gitstore.Options{
		OnContexts: func(prev nexus.ID, added []gitstore.Added) {
			cs := make([]events.Added, len(added))
			for i, a := range added {
				cs[i] = events.Added{ID: a.Context.ID, Namespace: a.Context.Namespace, Type: a.Context.Type, AgentID: a.Context.AgentID, JSON: a.JSON}
			}
			bus.Load().Added(prev, cs)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := events.NewBus(t.Context(), st, events.Options{Ring: 8, Page: 3})
	if err != nil {
		t.Fatal(err)
	}
	bus.Store(b)
	n := &node{store: st, bus: b}
	sub := subscribe(t, b, nexus.EventFilter{}, "")
	cs := n.puts(t, 20, "item ") // more than the ring, before the bus runs
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	wantContexts(t, sub, cs)
	quiet(t, sub, 50*time.Millisecond)
}
