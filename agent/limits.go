package agent

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// limits are an agent's own caps on requests and tokens. Nil limiters
// are no cap.
type limits struct {
	perSecond *rate.Limiter // requests, spread evenly: a bucket of one
	perMinute *rate.Limiter // requests, a bucket of a minute's worth
	tokens    *rate.Limiter // tokens, a bucket of a minute's worth
}

func newLimits(cfg Config) limits {
	var l limits
	if cfg.RequestsPerSecond > 0 {
		// A bucket of one: whatever the rate, no two requests go out
		// closer than 1/r apart, even when many calls come at once.
		l.perSecond = rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), 1)
	}
	if cfg.RequestsPerMinute > 0 {
		l.perMinute = rate.NewLimiter(rate.Limit(float64(cfg.RequestsPerMinute)/60), cfg.RequestsPerMinute)
	}
	if cfg.TokensPerMinute > 0 {
		l.tokens = rate.NewLimiter(rate.Limit(float64(cfg.TokensPerMinute)/60), cfg.TokensPerMinute)
	}
	return l
}

// wait blocks until one more request of about est tokens is within every
// cap, taking its share of each at once. It fails at once, with a
// rate_limit *Error whose RetryAfter is the wait, if that would take past
// ctx's deadline; then, as when ctx ends while waiting, it takes nothing.
func (l limits) wait(ctx context.Context, est int) error {
	now := time.Now()
	var (
		held    []*rate.Reservation
		longest time.Duration
		what    string
	)
	for _, w := range []struct {
		lim  *rate.Limiter
		n    int
		what string
	}{
		{l.perSecond, 1, "requests per second"}, {l.perMinute, 1, "requests per minute"}, {l.tokens, est, "tokens per minute"},
	} {
		if w.lim == nil {
			continue
		}
		// Never more than the bucket holds, so the reservation is OK.
		r := w.lim.ReserveN(now, min(w.n, w.lim.Burst()))
		held = append(held, r)
		if d := r.DelayFrom(now); d > longest || what == "" {
			longest, what = d, w.what
		}
	}
	release := func() {
		for _, r := range held {
			r.CancelAt(now)
		}
	}
	if longest <= 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && now.Add(longest).After(deadline) {
		release()
		return &Error{Class: ClassRateLimit, RetryAfter: longest,
			Message: fmt.Sprintf("the agent's own limit of %s would delay the call past its deadline (free in %v)", what, longest.Round(time.Millisecond))}
	}
	t := time.NewTimer(longest)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		release()
		return &Error{Class: ClassCanceled, Err: ctx.Err(), Message: "canceled while waiting for the agent's rate limit"}
	}
}

// charge counts the tokens a request used beyond the est that wait took:
// later requests wait for them.
func (l limits) charge(used, est int) {
	if l.tokens == nil || used <= est {
		return
	}
	l.tokens.ReserveN(time.Now(), min(used-est, l.tokens.Burst()))
}
