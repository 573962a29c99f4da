package httpapi

import (
	"context"
	"io"
	"iter"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
)

var _ nexus.EventSource = (*Client)(nil)

// Reconnection of event streams: the first retry is at once, the next
// ones wait the server's retry interval, doubling up to maxRetryWait.
const (
	defaultRetryWait = time.Second
	maxRetryWait     = 30 * time.Second
	// DefaultStreamIdleTimeout is how long an event stream may stay silent
	// (the server sends a keep-alive every 15 s) before the client takes
	// the connection for dead and reconnects.
	DefaultStreamIdleTimeout = time.Minute
)

// WithStreamIdleTimeout sets how long an event stream may stay silent
// before the client reconnects (DefaultStreamIdleTimeout).
func WithStreamIdleTimeout(d time.Duration) ClientOption {
	return func(c *Client) { c.idle = d }
}

// Subscribe implements [nexus.EventSource] over GET /v1/events. The first
// connection is made before it returns, so a bad filter or id, or a server
// without events, fails here. When a connection drops, the subscription
// reconnects by itself with the id of the last event it read
// (Last-Event-ID), so Next goes on without a gap or a repeat; it gives up
// only on an answer that retrying cannot change (a 4xx other than 429),
// or when ctx is done or Close is called.
func (c *Client) Subscribe(ctx context.Context, f nexus.EventFilter, lastEventID string) (nexus.Subscription, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	hc := *c.hc
	hc.Timeout = 0 // a stream has no end; idleness is watched instead
	life, cancel := context.WithCancel(ctx)
	s := &clientSub{
		c: c, hc: &hc, f: f, life: life, cancel: cancel, read: lastEventID, pos: lastEventID,
		items: make(chan sseItem, 64), done: make(chan struct{}),
	}
	body, err := s.connect()
	if err != nil {
		cancel()
		return nil, err
	}
	go s.run(body)
	return s, nil
}

// Events returns the events f selects after lastEventID ("" for the next
// one) as an iterator, which reconnects like [Client.Subscribe]. It yields
// an error at most once, as its last item; breaking out of the loop ends
// the subscription.
func (c *Client) Events(ctx context.Context, f nexus.EventFilter, lastEventID string) iter.Seq2[nexus.Event, error] {
	return func(yield func(nexus.Event, error) bool) {
		sub, err := c.Subscribe(ctx, f, lastEventID)
		if err != nil {
			yield(nexus.Event{}, err)
			return
		}
		defer sub.Close()
		for {
			ev, err := sub.Next(ctx)
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// clientSub is a subscription over HTTP: a goroutine reads the stream
// into items, reconnecting when it drops.
type clientSub struct {
	c      *Client
	hc     *http.Client
	f      nexus.EventFilter
	life   context.Context
	cancel context.CancelFunc
	items  chan sseItem
	pos    string // Next's: the id of the last item it took

	mu    sync.Mutex
	read  string // the reader's: the id of the last event read, to resume from
	retry time.Duration
	done  chan struct{} // closed when the reader stops, with err set
	err   error
}

// connect opens one stream, resuming after the last event read.
func (s *clientSub) connect() (io.ReadCloser, error) {
	q := url.Values{}
	for k, v := range map[string]string{"namespace": s.f.Namespace, "type": string(s.f.Type), "agent": s.f.AgentID} {
		if v != "" {
			q.Set(k, v)
		}
	}
	req, err := s.c.newRequest(s.life, http.MethodGet, "/v1/events", q, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	s.mu.Lock()
	if s.read != "" {
		req.Header.Set("Last-Event-ID", s.read)
	}
	s.mu.Unlock()
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, nexus.WrapError(nexus.EUnavailable, err, "GET /v1/events: request failed")
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, responseError(resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		resp.Body.Close()
		return nil, nexus.Errorf(nexus.EInternal, "GET /v1/events answered %q, not an event stream", resp.Header.Get("Content-Type"))
	}
	return resp.Body, nil
}

// run reads streams until the subscription ends. After a stream that
// brought events it reconnects at once; after one that ended without any
// it waits the server's retry interval; after a failed connection, an
// interval that doubles with each failure in a row.
func (s *clientSub) run(body io.ReadCloser) {
	failures := 0
	for {
		var wait time.Duration
		if body != nil && !s.readStream(body) {
			wait = s.backoff(1)
		}
		if failures > 0 {
			wait = s.backoff(failures)
		}
		if s.life.Err() != nil || (wait > 0 && !s.sleep(wait)) {
			s.finish(s.life.Err())
			return
		}
		var err error
		if body, err = s.connect(); err != nil {
			failures++
			if permanent(err) {
				s.finish(err)
				return
			}
			continue
		}
		failures = 0
	}
}

// readStream passes the events of one connection to items until it ends;
// it reports whether an event (not only an id record) came.
func (s *clientSub) readStream(body io.ReadCloser) (progressed bool) {
	defer body.Close()
	r := newSSEReader(body)
	s.mu.Lock()
	r.lastID, r.idBuf = s.read, s.read
	idle := s.c.idle
	s.mu.Unlock()
	if idle <= 0 {
		idle = DefaultStreamIdleTimeout
	}
	watchdog := time.AfterFunc(idle, func() { body.Close() })
	defer watchdog.Stop()
	r.onLine = func() { watchdog.Reset(idle) }
	for {
		it, err := r.next()
		if r.retry > 0 {
			s.mu.Lock()
			s.retry = time.Duration(r.retry) * time.Millisecond
			s.mu.Unlock()
		}
		if err != nil {
			return progressed
		}
		select {
		case s.items <- it:
		case <-s.life.Done():
			return progressed
		}
		progressed = progressed || !it.idOnly
		s.mu.Lock()
		s.read = it.ev.ID
		s.mu.Unlock()
	}
}

func (s *clientSub) backoff(failures int) time.Duration {
	s.mu.Lock()
	d := s.retry
	s.mu.Unlock()
	if d <= 0 {
		d = defaultRetryWait
	}
	for i := 1; i < failures && d < maxRetryWait; i++ {
		d *= 2
	}
	d = min(d, maxRetryWait)
	return d/2 + rand.N(d/2+1)
}

func (s *clientSub) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.life.Done():
		return false
	}
}

// permanent reports whether a failed connection should not be retried.
func permanent(err error) bool {
	switch nexus.ErrorCode(err) {
	case nexus.EUnavailable, nexus.EInsufficientStorage:
		return false
	case nexus.EInternal:
		return false // a proxy's 500 or 502 page, a server restarting
	}
	return true
}

func (s *clientSub) finish(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		close(s.done)
	}
	s.mu.Unlock()
}

// Next implements [nexus.Subscription].
func (s *clientSub) Next(ctx context.Context) (nexus.Event, error) {
	for {
		var it sseItem
		select {
		case it = <-s.items:
		default:
			select {
			case it = <-s.items:
			case <-ctx.Done():
				return nexus.Event{}, ctx.Err()
			case <-s.done:
				select {
				case it = <-s.items:
				default:
					return nexus.Event{}, s.err
				}
			}
		}
		s.pos = it.ev.ID
		if !it.idOnly {
			return it.ev, nil
		}
	}
}

// Position implements [nexus.Subscription].
func (s *clientSub) Position() string { return s.pos }

// Close implements [nexus.Subscription]; it may be called from any
// goroutine.
func (s *clientSub) Close() error {
	s.cancel()
	return nil
}
