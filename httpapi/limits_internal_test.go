package httpapi

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct{ now time.Time }

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) advance(d time.Duration) { c.now = c.now.Add(d) }

// allowed reports whether l lets one more request of the principal in.
func allowed(l *limiter, name string) bool {
	_, ok := l.allow(name)
	return ok
}

// tracked is the principals whose rate l keeps, most recently seen first,
// after checking that the map and the list agree.
func tracked(t *testing.T, l *limiter) []string {
	t.Helper()
	var names []string
	for el := l.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*rateEntry)
		if l.rates[e.name] != el {
			t.Fatalf("rate of %q: in the list, not in the map", e.name)
		}
		names = append(names, e.name)
	}
	if len(names) != len(l.rates) {
		t.Fatalf("%d rates in the list, %d in the map", len(names), len(l.rates))
	}
	return names
}

// A principal's rate is dropped once unused for a minute; the rates in
// use stay, with their state (a principal over its rate stays over it).
func TestLimiter_idleRatesGo(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(Limits{Rate: 1, Burst: 2, Now: clock.Now})
	if l.idle != time.Minute {
		t.Fatalf("idle after %s, want 1m (the bucket refills in 2 s)", l.idle)
	}
	for _, name := range []string{"idle", "active", "active", "active"} {
		allowed(l, name)
	}
	if allowed(l, "active") {
		t.Fatal("active's third request at one instant was allowed, want refused (burst 2)")
	}
	allowed(l, "other") // another principal at the same instant: active keeps its empty bucket
	if allowed(l, "active") {
		t.Fatal("active was allowed again at the same instant: its rate was lost")
	}
	clock.advance(40 * time.Second)
	allowed(l, "active")
	clock.advance(30 * time.Second) // idle and other: unused for 70 s; active for 30 s
	allowed(l, "newcomer")
	if got, want := tracked(t, l), []string{"newcomer", "active"}; !slices.Equal(got, want) {
		t.Fatalf("after 70 s the rates of %q are kept, want %q", got, want)
	}
	clock.advance(61 * time.Second)
	allowed(l, "active")
	if got, want := tracked(t, l), []string{"active"}; !slices.Equal(got, want) {
		t.Fatalf("after 61 s more the rates of %q are kept, want %q", got, want)
	}
}

// A bucket that takes longer than a minute to refill is kept until it
// is full again: dropping it sooner would hand its principal a full burst.
func TestLimiter_slowRatesStayUntilFull(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(Limits{Rate: 0.01, Burst: 5, Now: clock.Now}) // refills in 500 s
	if l.idle != 500*time.Second {
		t.Fatalf("idle after %s, want 500s", l.idle)
	}
	allowed(l, "slow")
	clock.advance(400 * time.Second)
	allowed(l, "other")
	if got := tracked(t, l); !slices.Equal(got, []string{"other", "slow"}) {
		t.Fatalf("after 400 s: %q, want slow kept", got)
	}
	clock.advance(101 * time.Second)
	allowed(l, "other")
	if got := tracked(t, l); !slices.Equal(got, []string{"other"}) {
		t.Fatalf("after 501 s: %q, want slow dropped", got)
	}
}

// 100,000 principals at one instant (none idle): the limiter keeps the
// rates of the most recently seen maxRates of them, among them a
// principal that keeps sending, with its state.
func TestLimiter_boundedUnderManyPrincipals(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(Limits{Rate: 1, Burst: 1, Now: clock.Now})
	if !allowed(l, "steady") || allowed(l, "steady") {
		t.Fatal("steady: want its one request allowed, the next refused")
	}
	const n = 100000
	for i := range n {
		allowed(l, fmt.Sprintf("jwt-%06d", i))
		if len(l.rates) > maxRates || l.lru.Len() > maxRates {
			t.Fatalf("after %d principals the limiter holds %d rates (list %d), over %d", i+1, len(l.rates), l.lru.Len(), maxRates)
		}
		if i%1000 == 0 && allowed(l, "steady") {
			t.Fatalf("steady allowed after %d other principals: its rate was dropped while in use", i+1)
		}
	}
	got := tracked(t, l)
	if len(got) != maxRates {
		t.Fatalf("%d rates kept, want %d", len(got), maxRates)
	}
	if !slices.Contains(got, "steady") || got[0] != fmt.Sprintf("jwt-%06d", n-1) || slices.Contains(got, fmt.Sprintf("jwt-%06d", n-maxRates)) {
		t.Fatalf("kept %q … %q: want the newest principals and steady", got[0], got[len(got)-1])
	}
	clock.advance(2 * time.Minute)
	allowed(l, "steady")
	if got := tracked(t, l); !slices.Equal(got, []string{"steady"}) {
		t.Fatalf("two minutes later %d rates are kept, want steady's only", len(got))
	}
}
