// Package retry holds the parts of a retry loop that every client of a
// remote service needs: exponential backoff with full jitter, the
// Retry-After header in both of its forms, a classification of HTTP statuses
// and transport errors into retry-or-not, and a sleep that gives way to its
// context.
//
// # Basics
//
// The loop itself stays in the caller, where the error messages are known:
//
//	p := retry.Policy{Backoff: retry.Backoff{Base: 250 * time.Millisecond, Max: 20 * time.Second}}
//	for attempt := 1; ; attempt++ {
//		resp, err := send(ctx)
//		// decide from retry.Classify(resp.StatusCode) or retry.ClassifyError(err)
//		if done || attempt == maxAttempts {
//			return ...
//		}
//		after, _ := retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
//		d := p.Delay(attempt, after)
//		if err := p.Wait(ctx, d); err != nil {
//			return ... // ErrDeadline or the context's error
//		}
//	}
//
// # Caveats
//
// A delay is capped by [Backoff.Max] even when the server asked for longer
// in Retry-After, and [Policy.Wait] refuses to sleep past the context's
// deadline: it returns [ErrDeadline] at once, so the caller fails with its
// last error instead of waking up with no time left. Randomness and the
// clock are injectable ([Policy.Rand], [Policy.Now], [Policy.Sleep]) so
// tests are exact and never sleep for real.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Rand is a source of jitter. *rand.Rand from math/rand/v2 implements it.
type Rand interface {
	// Int64N returns a uniform value in [0, n); n > 0.
	Int64N(n int64) int64
}

// globalRand draws from the package-level generator of math/rand/v2, which
// is safe for concurrent use.
type globalRand struct{}

func (globalRand) Int64N(n int64) int64 { return rand.Int64N(n) }

// Backoff is exponential backoff with full jitter: before retry number
// attempt (counting from 1) it waits a uniform random duration in
// [0, min(Max, Base·2^(attempt-1))].
type Backoff struct {
	Base time.Duration // the ceiling of the first delay; must be positive
	Max  time.Duration // the ceiling of every delay, including Retry-After ones
}

// Ceiling returns min(Max, Base·2^(attempt-1)), the largest delay Delay can
// return for attempt; attempts below 1 count as 1. Base ≤ 0 gives 0, and a
// Max not above Base keeps every ceiling at Base.
func (b Backoff) Ceiling(attempt int) time.Duration {
	if b.Base <= 0 {
		return 0
	}
	ceil := b.Base
	for i := 1; i < attempt && ceil < b.Max; i++ {
		if ceil > b.Max/2 {
			return b.Max
		}
		ceil *= 2
	}
	return ceil
}

// Delay returns a uniform random duration in [0, Ceiling(attempt)], drawn
// from r, or from math/rand/v2 if r is nil.
func (b Backoff) Delay(attempt int, r Rand) time.Duration {
	ceil := b.Ceiling(attempt)
	if ceil <= 0 {
		return 0
	}
	if r == nil {
		r = globalRand{}
	}
	return time.Duration(r.Int64N(int64(ceil) + 1))
}

// Policy chooses and waits the delay before a retry. The zero value of each
// optional field means the real thing: math/rand/v2, time.Now and [Sleep].
type Policy struct {
	Backoff Backoff
	Rand    Rand                                             // jitter source; nil: math/rand/v2
	Now     func() time.Time                                 // clock; nil: time.Now
	Sleep   func(ctx context.Context, d time.Duration) error // nil: [Sleep]
}

// ErrDeadline is returned by [Policy.Wait] when the next attempt would start
// at or after the context's deadline.
var ErrDeadline = errors.New("the next attempt would start after the deadline")

// Delay returns the wait before retry number attempt: the server's
// retryAfter if it is positive, otherwise a jittered [Backoff.Delay]; either
// way at most Backoff.Max (when Max is positive).
func (p Policy) Delay(attempt int, retryAfter time.Duration) time.Duration {
	d := retryAfter
	if d <= 0 {
		d = p.Backoff.Delay(attempt, p.Rand)
	}
	if p.Backoff.Max > 0 {
		d = min(d, p.Backoff.Max)
	}
	return d
}

// Wait sleeps for d, typically from Delay. It returns an error wrapping
// [ErrDeadline] at once, without sleeping, if ctx has a deadline that d
// would reach, and the context's error if ctx is done before d has passed.
func (p Policy) Wait(ctx context.Context, d time.Duration) error {
	if deadline, ok := ctx.Deadline(); ok {
		now := time.Now
		if p.Now != nil {
			now = p.Now
		}
		if left := deadline.Sub(now()); d >= left {
			return fmt.Errorf("%w (wait %v, %v left)", ErrDeadline, d.Round(time.Millisecond), max(left, 0).Round(time.Millisecond))
		}
	}
	sleep := Sleep
	if p.Sleep != nil {
		sleep = p.Sleep
	}
	return sleep(ctx, d)
}

// Sleep waits for d or until ctx is done, whichever comes first, and
// returns ctx.Err() in the second case. A non-positive d returns at once
// with ctx.Err().
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
