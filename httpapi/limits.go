package httpapi

import (
	"container/list"
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/nexus-mem/nexus"
)

// DefaultPageBytes bounds the contexts of one page of a listing, a chain
// or the children of a context, unless Limits say otherwise.
const DefaultPageBytes = 4 << 20

// Limits bound what clients may take of a server. Each limit is named in
// the errors it causes and in [LimitStats]. Zero fields mean no limit,
// but for PageBytes.
type Limits struct {
	// PageBytes bounds the encoded contexts of one page of
	// GET /v1/contexts, /v1/contexts/{id}/chain and
	// /v1/contexts/{id}/children: a page that would go over ends early,
	// with a next_cursor to continue from (a page holds at least one
	// context). 0: DefaultPageBytes.
	PageBytes int64
	// Rate is how many requests per second each principal may make (all
	// anonymous callers together are one principal); 0: no limit. Over
	// it a request gets 429 rate_limited with Retry-After.
	Rate float64
	// Burst is how many requests a principal may make at once beyond
	// Rate; 0: Rate rounded up, at least 1.
	Burst int
	// Streams bounds the event streams open at once (503 beyond it);
	// StreamsPerPrincipal those of one principal (429). 0: no limit.
	Streams, StreamsPerPrincipal int
	// ExactContexts is the largest store an exact search may scan (413
	// beyond it); 0: no limit. Exact search is also reserved to admin
	// principals.
	ExactContexts int
	// Now is the clock of the rate limits; nil: time.Now.
	Now func() time.Time
}

// Names of the limits, in errors and in [LimitStats].
const (
	limitHost      = "host"
	limitOrigin    = "origin"
	limitForm      = "form"
	limitRate      = "rate"
	limitStreams   = "streams"
	limitStreamsPP = "streams_per_principal"
	limitExact     = "exact"
	limitPage      = "page_bytes"
	limitCSRF      = "csrf"
	limitLogin     = "login"
)

// LimitNames lists the limits a [Server] counts, in [LimitStats.Refused]
// order.
var LimitNames = []string{limitHost, limitOrigin, limitForm, limitRate, limitStreams, limitStreamsPP, limitExact, limitPage, limitCSRF, limitLogin}

// LimitStats are what the limits did since the server started.
type LimitStats struct {
	// Refused counts, by limit name, the requests refused (for
	// page_bytes: the pages cut short).
	Refused map[string]uint64
	// Streams is the number of event streams open now.
	Streams int
}

// maxRates bounds the principals whose request rate is tracked at once:
// beyond it the least recently seen one is forgotten (and starts again
// with a full burst should it come back).
const maxRates = 10000

// minRateIdle is how long a principal's rate is kept after its last
// request, at least: longer if its bucket takes longer to refill.
const minRateIdle = time.Minute

// limiter enforces the rate and stream limits and counts every refusal.
type limiter struct {
	cfg      Limits
	mu       sync.Mutex
	rates    map[string]*list.Element // by principal name; each holds a *rateEntry
	lru      list.List                // of rates, the most recently seen first
	maxRates int
	idle     time.Duration  // a rate unused for longer is dropped
	streams  int            // open in total
	byName   map[string]int // open by principal name
	refused  map[string]*atomic.Uint64
}

// rateEntry is the rate of one principal, and when it was last used.
type rateEntry struct {
	name string
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(cfg Limits) *limiter {
	if cfg.PageBytes <= 0 {
		cfg.PageBytes = DefaultPageBytes
	}
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, int(math.Ceil(cfg.Rate)))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &limiter{cfg: cfg, rates: map[string]*list.Element{}, maxRates: maxRates, idle: minRateIdle,
		byName: map[string]int{}, refused: map[string]*atomic.Uint64{}}
	if cfg.Rate > 0 {
		// A bucket left alone this long is full again: dropping it loses
		// nothing, as a new one starts full.
		l.idle = max(l.idle, time.Duration(float64(cfg.Burst)/cfg.Rate*float64(time.Second)))
	}
	for _, n := range LimitNames {
		l.refused[n] = new(atomic.Uint64)
	}
	return l
}

func (l *limiter) count(name string) { l.refused[name].Add(1) }

func (l *limiter) stats() LimitStats {
	st := LimitStats{Refused: map[string]uint64{}}
	for n, c := range l.refused {
		st.Refused[n] = c.Load()
	}
	l.mu.Lock()
	st.Streams = l.streams
	l.mu.Unlock()
	return st
}

// principalName is who a request counts against: its principal, or the
// one anonymous caller.
func principalName(ctx context.Context) string {
	if p, ok := nexus.PrincipalFrom(ctx); ok {
		return p.Name
	}
	return nexus.Anonymous.Name
}

// allow takes one request of the principal from its rate; when there is
// none left it returns how long until there is.
func (l *limiter) allow(name string) (time.Duration, bool) {
	if l.cfg.Rate <= 0 {
		return 0, true
	}
	now := l.cfg.Now()
	lim := l.rateOf(name, now)
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// rateOf returns the rate of the principal, seen now, and forgets the
// rates unused for longer than l.idle and, beyond l.maxRates, the least
// recently used: principal names (of JWTs, say) are unbounded, the memory
// they take is not. The list is in order of use, so the forgotten ones
// are at its end, and each call does constant work but for the entries
// it drops.
func (l *limiter) rateOf(name string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	var e *rateEntry
	if el := l.rates[name]; el != nil {
		e = el.Value.(*rateEntry)
		l.lru.MoveToFront(el)
	} else {
		e = &rateEntry{name: name, lim: rate.NewLimiter(rate.Limit(l.cfg.Rate), l.cfg.Burst)}
		l.rates[name] = l.lru.PushFront(e)
	}
	e.seen = now
	for el := l.lru.Back(); el != nil && el != l.lru.Front(); el = l.lru.Back() {
		if old := el.Value.(*rateEntry); len(l.rates) > l.maxRates || now.Sub(old.seen) > l.idle {
			delete(l.rates, old.name)
			l.lru.Remove(el)
			continue
		}
		break
	}
	return e.lim
}

// rateLimited answers a request over its principal's rate, or reports
// true to serve it. Probes of liveness and readiness are never limited.
func (s *Server) rateLimited(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path == "/livez" || r.URL.Path == "/readyz" {
		return false
	}
	name := principalName(r.Context())
	wait, ok := s.limits.allow(name)
	if ok {
		return false
	}
	s.limits.count(limitRate)
	retryAfter(w, wait)
	s.fail(w, r, nexus.Errorf(nexus.ERateLimited, "principal %q is over its request rate limit (rate: %g requests/s, burst %d; --rate-limit); retry after %s",
		name, s.limits.cfg.Rate, s.limits.cfg.Burst, wait.Round(time.Millisecond)))
	return true
}

// retryAfter sets Retry-After to wait in whole seconds, at least 1.
func retryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
}

// openStream takes a slot for an event stream of the principal, or says
// which limit refuses it.
func (l *limiter) openStream(name string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.cfg.Streams > 0 && l.streams >= l.cfg.Streams:
		l.count(limitStreams)
		return nil, nexus.Errorf(nexus.EUnavailable, "the server holds %d event streams, its limit (streams: --max-streams); retry later", l.cfg.Streams)
	case l.cfg.StreamsPerPrincipal > 0 && l.byName[name] >= l.cfg.StreamsPerPrincipal:
		l.count(limitStreamsPP)
		return nil, nexus.Errorf(nexus.ERateLimited, "principal %q holds %d event streams, its limit (streams_per_principal: --max-streams-per-principal); close one first",
			name, l.cfg.StreamsPerPrincipal)
	}
	l.streams++
	l.byName[name]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.streams--
			if l.byName[name]--; l.byName[name] == 0 {
				delete(l.byName, name)
			}
			l.mu.Unlock()
		})
	}, nil
}

// sizer is an optional capability of a store: how many contexts it holds.
type sizer interface{ Len() int }

// exactRefused bounds an exact search, which compares the query with
// every stored vector: only admin principals may ask for one, and only of
// a store within the limit. It writes a refusal and reports true, or
// returns the error to answer with.
func (s *Server) exactRefused(w http.ResponseWriter, r *http.Request, req nexus.SearchRequest) (bool, error) {
	if !req.Exact {
		return false, nil
	}
	if p, ok := nexus.PrincipalFrom(r.Context()); ok && !p.Can(nexus.RoleAdmin) {
		s.limits.count(limitExact)
		writeError(w, http.StatusForbidden, nexus.ErrorDetail{Code: codeForbidden,
			Message: "exact search compares the query with every stored context: it is reserved to admin principals (drop \"exact\" for the graph search)"})
		return true, nil
	}
	sz, ok := s.store.(sizer)
	if max := s.limits.cfg.ExactContexts; ok && max > 0 && sz.Len() > max {
		s.limits.count(limitExact)
		return false, nexus.Errorf(nexus.ETooLarge, "exact search compares the query with every stored context: the store holds %d, over the limit of %d (exact: --max-exact-contexts); drop \"exact\" for the graph search",
			sz.Len(), max)
	}
	return false, nil
}

// LimitStats reports what the server's limits did.
func (s *Server) LimitStats() LimitStats { return s.limits.stats() }
