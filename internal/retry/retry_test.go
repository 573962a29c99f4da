package retry_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/internal/retry"
)

// fixedRand returns n·num/den of every range n, so tests know the jitter.
type fixedRand struct{ num, den int64 }

func (r fixedRand) Int64N(n int64) int64 { return (n - 1) * r.num / r.den }

func TestBackoff_Ceiling(t *testing.T) {
	b := retry.Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{-3, 100 * time.Millisecond}, {0, 100 * time.Millisecond}, {1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond}, {3, 400 * time.Millisecond}, {4, 800 * time.Millisecond},
		{5, time.Second}, {6, time.Second}, {1 << 30, time.Second},
	} {
		if got := b.Ceiling(tc.attempt); got != tc.want {
			t.Errorf("Ceiling(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
	t.Run("no overflow", func(t *testing.T) {
		huge := retry.Backoff{Base: time.Nanosecond, Max: time.Duration(1<<63 - 1)}
		for attempt := 1; attempt < 200; attempt++ {
			if c := huge.Ceiling(attempt); c <= 0 {
				t.Fatalf("Ceiling(%d) = %v", attempt, c)
			}
		}
	})
	t.Run("max below base", func(t *testing.T) {
		if got := (retry.Backoff{Base: time.Second}).Ceiling(5); got != time.Second {
			t.Errorf("Ceiling = %v, want the base", got)
		}
	})
	t.Run("zero base", func(t *testing.T) {
		if got := (retry.Backoff{Max: time.Second}).Delay(3, nil); got != 0 {
			t.Errorf("Delay = %v, want 0", got)
		}
	})
}

func TestBackoff_Delay(t *testing.T) {
	b := retry.Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	if got := b.Delay(3, fixedRand{0, 1}); got != 0 {
		t.Errorf("lowest jitter = %v, want 0 (full jitter)", got)
	}
	if got := b.Delay(3, fixedRand{1, 1}); got != 400*time.Millisecond {
		t.Errorf("highest jitter = %v, want the ceiling 400ms", got)
	}
	if got := b.Delay(3, fixedRand{1, 2}); got != 200*time.Millisecond {
		t.Errorf("middle jitter = %v, want 200ms", got)
	}
	t.Run("spread", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		var low, high int
		for range 2000 {
			d := b.Delay(2, r)
			if d < 0 || d > 200*time.Millisecond {
				t.Fatalf("Delay(2) = %v, outside [0, 200ms]", d)
			}
			if d < 50*time.Millisecond {
				low++
			}
			if d > 150*time.Millisecond {
				high++
			}
		}
		if low < 300 || high < 300 {
			t.Errorf("delays not spread over the range: %d below 50ms, %d above 150ms of 2000", low, high)
		}
	})
	t.Run("global rand", func(t *testing.T) {
		for range 100 {
			if d := b.Delay(1, nil); d < 0 || d > 100*time.Millisecond {
				t.Fatalf("Delay(1) = %v", d)
			}
		}
	})
}

func TestPolicy_Delay(t *testing.T) {
	p := retry.Policy{Backoff: retry.Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second}, Rand: fixedRand{1, 1}}
	for _, tc := range []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		want       time.Duration
	}{
		{"backoff", 2, 0, 200 * time.Millisecond},
		{"retry-after wins", 2, 3 * time.Second, 3 * time.Second},
		{"retry-after below backoff still wins", 4, 10 * time.Millisecond, 10 * time.Millisecond},
		{"retry-after capped", 1, time.Hour, 5 * time.Second},
		{"negative retry-after ignored", 1, -time.Second, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Delay(tc.attempt, tc.retryAfter); got != tc.want {
				t.Errorf("Delay(%d, %v) = %v, want %v", tc.attempt, tc.retryAfter, got, tc.want)
			}
		})
	}
}

func TestPolicy_Wait(t *testing.T) {
	now := time.Now() // fixed: the injected clock does not move
	var slept []time.Duration
	p := retry.Policy{
		Backoff: retry.Backoff{Base: time.Second, Max: time.Minute},
		Rand:    fixedRand{1, 1},
		Now:     func() time.Time { return now },
		Sleep: func(ctx context.Context, d time.Duration) error {
			slept = append(slept, d)
			return ctx.Err()
		},
	}
	t.Run("no deadline", func(t *testing.T) {
		slept = nil
		if err := p.Wait(context.Background(), 4*time.Second); err != nil || len(slept) != 1 || slept[0] != 4*time.Second {
			t.Fatalf("Wait = %v; slept %v", err, slept)
		}
	})
	t.Run("fits before deadline", func(t *testing.T) {
		slept = nil
		ctx, cancel := context.WithDeadline(context.Background(), now.Add(10*time.Second))
		defer cancel()
		if err := p.Wait(ctx, 2*time.Second); err != nil || len(slept) != 1 || slept[0] != 2*time.Second {
			t.Fatalf("Wait = %v; slept %v", err, slept)
		}
	})
	t.Run("would pass deadline", func(t *testing.T) {
		slept = nil
		ctx, cancel := context.WithDeadline(context.Background(), now.Add(10*time.Second))
		defer cancel()
		err := p.Wait(ctx, 30*time.Second)
		if !errors.Is(err, retry.ErrDeadline) || len(slept) != 0 {
			t.Fatalf("Wait = %v; slept %v; want ErrDeadline without sleeping", err, slept)
		}
		if want := "the next attempt would start after the deadline (wait 30s, 10s left)"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	})
	t.Run("deadline passed", func(t *testing.T) {
		slept = nil
		ctx, cancel := context.WithDeadline(context.Background(), now.Add(-time.Second))
		defer cancel()
		if err := p.Wait(ctx, 0); !errors.Is(err, retry.ErrDeadline) || len(slept) != 0 {
			t.Fatalf("Wait = %v; slept %v", err, slept)
		}
	})
	t.Run("canceled while sleeping", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(10*time.Millisecond, cancel)
		start := time.Now()
		if err := (retry.Policy{}).Wait(ctx, time.Hour); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("Wait returned after %v", el)
		}
	})
}

func TestSleep(t *testing.T) {
	t.Run("sleeps", func(t *testing.T) {
		start := time.Now()
		if err := retry.Sleep(context.Background(), 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < 20*time.Millisecond {
			t.Fatalf("slept %v, want at least 20ms", el)
		}
	})
	t.Run("zero", func(t *testing.T) {
		if err := retry.Sleep(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := retry.Sleep(ctx, -time.Second); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep on a done context = %v", err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Sleep = %v, want context.DeadlineExceeded", err)
		}
	})
}
