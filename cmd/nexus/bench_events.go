package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
)

// runBenchEvents measures GET /v1/events against a running server: the
// events delivered per second to a number of subscribers while writers
// write as fast as they can, and the time from a write's acknowledgement
// (and from its request) to its event at a subscriber.
func runBenchEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("bench events", stderr)
	subscribers := fs.Int("subscribers", 10, "concurrent subscribers (one stream each)")
	writers := fs.Int("writers", 4, "concurrent writers")
	dur := fs.Duration("duration", 10*time.Second, "how long to write")
	size := fs.Int("size", 512, "content bytes per context")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *subscribers <= 0 || *writers <= 0 || *dur <= 0 || *size <= 0 {
		return usagef("--subscribers, --writers, --duration and --size must be positive")
	}
	// A namespace of its own keeps other traffic out of the figures.
	ns := "bench-events-" + strings.ToLower(rand.Text()[:8])
	c := benchClient(cf.server, cf.token, *writers+*subscribers, cf.tls.options()...)
	subs := make([]nexus.Subscription, *subscribers)
	for i := range subs {
		s, err := c.Subscribe(ctx, nexus.EventFilter{Namespace: ns}, "")
		if err != nil {
			closeSubs(subs)
			return fmt.Errorf("subscribe: %w", err)
		}
		subs[i] = s
	}
	defer closeSubs(subs)
	var mu sync.Mutex
	sent, acked := map[string]time.Time{}, map[string]time.Time{}
	body := benchPayload(*size)
	start := time.Now()
	wrote := make(chan struct{})
	col := startCollecting(ctx, subs, wrote, func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}, func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := acked[id]
		return ok
	})
	wres := load(ctx, *writers, *dur, 0, func(ctx context.Context, w int) error {
		t0 := time.Now()
		x, err := c.Put(ctx, nexus.Draft{Type: nexus.TypeObservation, Content: body, Namespace: ns, AgentID: fmt.Sprintf("bench-%d", w)})
		if err != nil {
			return err
		}
		now := time.Now()
		mu.Lock()
		sent[x.ID.String()], acked[x.ID.String()] = t0, now
		mu.Unlock()
		return nil
	})
	close(wrote)
	fmt.Fprintf(stdout, "writes (%d clients, %d B): %s\n", *writers, *size, wres)
	res := col()
	elapsed := res.last.Sub(start)
	var fromAck, fromReq []time.Duration
	missing, unacked := 0, 0
	for _, got := range res.at {
		for id, a := range acked {
			if t, ok := got[id]; ok {
				fromAck, fromReq = append(fromAck, t.Sub(a)), append(fromReq, t.Sub(sent[id]))
			} else {
				missing++
			}
		}
		unacked += len(got) - (len(acked) - missing)
	}
	slices.Sort(fromAck)
	slices.Sort(fromReq)
	total := len(fromAck)
	fmt.Fprintf(stdout, "events (%d subscribers): %d delivered in %.1fs: %.0f/s; %d missing, %d repeated (plus %d events of writes the deadline cut off)\n",
		*subscribers, total, elapsed.Seconds(), float64(total)/elapsed.Seconds(), missing, res.repeated, unacked)
	fmt.Fprintf(stdout, "write acknowledged → event: p50 %s p99 %s max %s (negative: the event came before the acknowledgement)\n", pctDur(fromAck, 0.5), pctDur(fromAck, 0.99), pctDur(fromAck, 1))
	fmt.Fprintf(stdout, "write sent → event:         p50 %s p99 %s max %s\n", pctDur(fromReq, 0.5), pctDur(fromReq, 0.99), pctDur(fromReq, 1))
	if res.err != nil {
		return fmt.Errorf("a subscriber failed: %w", res.err)
	}
	return nil
}

// eventTimes is what the subscribers received: per subscriber, when each
// context's event came.
type eventTimes struct {
	at       []map[string]time.Time
	last     time.Time
	repeated int
	err      error
}

// startCollecting reads every subscription, noting when each event came,
// until (once wrote is closed) it has the events of every acknowledged
// write, or nothing came for five seconds; the function it returns waits
// for that.
func startCollecting(ctx context.Context, subs []nexus.Subscription, wrote <-chan struct{}, acked func() int, isAcked func(id string) bool) func() *eventTimes {
	res := &eventTimes{at: make([]map[string]time.Time, len(subs))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, s := range subs {
		res.at[i] = map[string]time.Time{}
		wg.Go(func() {
			have := 0
			for {
				select {
				case <-wrote:
					if have == acked() {
						return
					}
				default:
				}
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				ev, err := s.Next(wctx)
				cancel()
				now := time.Now()
				if err != nil {
					select {
					case <-wrote:
					default:
						if wctx.Err() != nil {
							continue // writes go on: wait on
						}
					}
					mu.Lock()
					if ctx.Err() == nil && wctx.Err() == nil && res.err == nil {
						res.err = err
					}
					mu.Unlock()
					return
				}
				if ev.Type != nexus.EventContext {
					continue
				}
				mu.Lock()
				if !res.at[i][ev.ID].IsZero() {
					res.repeated++
				} else {
					res.at[i][ev.ID] = now
					if now.After(res.last) {
						res.last = now
					}
				}
				mu.Unlock()
				if isAcked(ev.ID) {
					have++
				}
			}
		})
	}
	return func() *eventTimes {
		wg.Wait()
		return res
	}
}

func closeSubs(subs []nexus.Subscription) {
	for _, s := range subs {
		if s != nil {
			s.Close()
		}
	}
}

func pctDur(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[int(p*float64(len(d)-1))].Round(time.Microsecond)
}
