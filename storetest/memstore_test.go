package storetest_test

import (
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/storetest"
)

func TestMemStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) nexus.Store { return storetest.NewMemStore() })
}

// A clock that stands still or runs backwards must not break the order of
// ids and timestamps.
func TestMemStore_stuckClock(t *testing.T) {
	for name, step := range map[string]time.Duration{"frozen": 0, "backwards": -time.Millisecond} {
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(*testing.T) nexus.Store {
				return storetest.NewMemStoreWith(storetest.MemConfig{MaxContent: 1000, Now: clock(step)})
			}, storetest.MaxContent(1000))
		})
	}
}

// clock returns a clock starting now that moves by step at every reading.
func clock(step time.Duration) func() time.Time {
	var mu sync.Mutex
	t := time.Now()
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(step)
		return t
	}
}

func TestMemStore_List_cursorIsLastID(t *testing.T) {
	s := storetest.NewMemStore()
	for range 5 {
		if _, err := s.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if s.Len() != 5 {
		t.Fatalf("Len = %d, want 5", s.Len())
	}
	for _, order := range []nexus.Order{nexus.Newest, nexus.Oldest} {
		p, err := s.List(t.Context(), nexus.Filter{Limit: 2, Order: order})
		if err != nil {
			t.Fatal(err)
		}
		if last := p.Contexts[len(p.Contexts)-1].ID.String(); p.NextCursor != last {
			t.Errorf("order %s: next cursor %q, want the last id %q", order, p.NextCursor, last)
		}
		// A page that ends exactly at the last match has no cursor.
		p, err = s.List(t.Context(), nexus.Filter{Limit: 5, Order: order})
		if err != nil {
			t.Fatal(err)
		}
		if p.NextCursor != "" {
			t.Errorf("order %s: full page has next cursor %q", order, p.NextCursor)
		}
	}
}

func TestMemStore_Log_unknownCursor(t *testing.T) {
	s := storetest.NewMemStore()
	_, err := s.Log(t.Context(), nexus.LogFilter{Cursor: "0123456789abcdef0123456789abcdef01234567"})
	if nexus.ErrorCode(err) != nexus.EInvalid {
		t.Errorf("Log with an unknown cursor: %v, want code invalid", err)
	}
}
