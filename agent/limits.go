package agent

import (
	"context"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// limits are an agent's own caps on requests and tokens. Nil limiters
// are no cap.
type limits struct {
	perSecond *rate.Limiter // requests, spread evenly
	perMinute *rate.Limiter // requests, a bucket of a minute's worth
	tokens    *rate.Limiter // tokens, a bucket of a minute's worth
}

func newLimits(cfg Config) limits {
	var l limits
	if cfg.RequestsPerSecond > 0 {
		l.perSecond = rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), max(1, int(math.Ceil(cfg.RequestsPerSecond))))
	}
	if cfg.RequestsPerMinute > 0 {
		l.perMinute = rate.NewLimiter(rate.Limit(float64(cfg.RequestsPerMinute)/60), cfg.RequestsPerMinute)
	}
	if cfg.TokensPerMinute > 0 {
		l.tokens = rate.NewLimiter(rate.Limit(float64(cfg.TokensPerMinute)/60), cfg.TokensPerMinute)
	}
	return l
}

// wait blocks until one more request of about est tokens is within the
// caps. It fails at once, with a rate_limit *Error, if that would take
// past ctx's deadline.
func (l limits) wait(ctx context.Context, est int) error {
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
		if err := w.lim.WaitN(ctx, min(w.n, w.lim.Burst())); err != nil {
			if ctx.Err() != nil {
				return &Error{Class: ClassCanceled, Err: ctx.Err(), Message: "canceled while waiting for the agent's rate limit"}
			}
			return &Error{Class: ClassRateLimit, Err: err,
				Message: "the agent's own limit of " + w.what + " would delay the call past its deadline"}
		}
	}
	return nil
}

// charge counts the tokens a request used beyond the est that wait took:
// later requests wait for them.
func (l limits) charge(used, est int) {
	if l.tokens == nil || used <= est {
		return
	}
	l.tokens.ReserveN(time.Now(), min(used-est, l.tokens.Burst()))
}
