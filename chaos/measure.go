package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
)

// poll is how often /health is asked while an injection is measured:
// the resolution of the detection and recovery times.
const poll = 50 * time.Millisecond

// write keeps a light load of writes going and records every
// acknowledged one.
func (r *runner) write(ctx context.Context) {
	t := time.NewTicker(r.opts.WriteEvery)
	defer t.Stop()
	for i := 0; ; i++ {
		content := fmt.Sprintf("chaos seed %d write %d at %s", r.opts.Seed, i, time.Now().UTC().Format(time.RFC3339Nano))
		r.pause.RLock()
		c, err := r.client().Put(ctx, nexus.Draft{Namespace: "chaos", Type: nexus.TypeObservation, Content: content})
		r.pause.RUnlock()
		r.mu.Lock()
		if err == nil {
			r.lastOK = time.Now()
			r.acked = append(r.acked, acked{id: c.ID, content: content, at: r.lastOK})
		} else if ctx.Err() == nil {
			r.failed++
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// counters are the figures of a component that move when the node
// notices a fault even if its status is back to healthy by the next
// poll: failures found by the cascade, recovery attempts, process
// restarts.
type counters struct {
	failures, attempts, restarts int
}

func readCounters(h nexus.ComponentHealth) counters {
	var c counters
	c.failures = num(h.Details["failures"])
	if rec, ok := h.Details["recoveries"].(map[string]any); ok {
		c.attempts = num(rec["attempts"])
	}
	if ps, ok := h.Details["processes"].([]any); ok {
		for _, p := range ps {
			if m, ok := p.(map[string]any); ok {
				c.restarts += num(m["restarts"])
			}
		}
	}
	return c
}

func num(v any) int {
	switch x := v.(type) {
	case float64:
		return int(x)
	case json.Number:
		n, _ := strconv.Atoi(x.String())
		return n
	}
	return 0
}

// lastStep is the component's last recovery step, if any.
func lastStep(h nexus.ComponentHealth) string {
	rec, ok := h.Details["recoveries"].(map[string]any)
	if !ok {
		return ""
	}
	last, ok := rec["last"].(map[string]any)
	if !ok {
		return ""
	}
	took := time.Duration(num(last["took_ns"]))
	return fmt.Sprintf("%v %v after %s: %v", last["component"], last["status"], round(took), last["reason"])
}

// onLeader are the scenarios a cluster's leader is injected with: its
// raft, and its agents (whose heartbeats run where the node leads).
var onLeader = map[string]bool{"leader_isolate": true, "raft_latency": true, "provider_fail": true, "provider_latency": true}

// target is the node a scenario is injected into: the leader for the
// cluster scenarios (when other members can be reached), else the
// target of the run.
func (r *runner) target(ctx context.Context, scenario string) (*httpapi.Client, string, error) {
	if !r.cluster || r.opts.ClientFor == nil || !onLeader[scenario] {
		return r.client(), "", nil
	}
	st, err := r.client().ClusterStatus(ctx, true)
	if err != nil {
		return nil, "", err
	}
	if st.LeaderAPI == "" {
		return nil, "", fmt.Errorf("the cluster has no leader to inject %s into", scenario)
	}
	return r.opts.ClientFor(st.LeaderAPI), st.LeaderAPI, nil
}

// inject makes one injection and measures it.
func (r *runner) inject(ctx context.Context, scenario string, params map[string]string) (inj Injection) {
	inj = Injection{Scenario: scenario, Params: params}
	node, url, err := r.target(ctx, scenario)
	if err != nil {
		inj.Error = "finding the node to inject into: " + err.Error()
		return inj
	}
	inj.Node = url
	before, err := node.Health(ctx)
	if err != nil {
		inj.Error = "health before the injection: " + err.Error()
		return inj
	}
	res, err := node.Chaos(ctx, scenario, params)
	if err != nil {
		inj.Error = "injection refused: " + err.Error()
		return inj
	}
	inj.Component, inj.What, inj.FoundBy, inj.InjectedAt, inj.Until = res.Component, res.What, res.FoundBy, res.InjectedAt, res.Until
	r.progress(scenario + ": injected, waiting for detection")
	base := readCounters(before.Components[res.Component])
	if res.FoundBy == "deep_check" {
		// What the scrub does on its schedule, requested now.
		if rep, err := r.client().Fsck(ctx, true); err != nil {
			inj.Steps = append(inj.Steps, "deep check failed: "+err.Error())
		} else {
			inj.Steps = append(inj.Steps, fmt.Sprintf("deep check found %d problems", len(rep.Problems)))
		}
	}
	deadline := time.Now().Add(r.opts.Timeout)
	var seen string
	if res.FoundBy == "none" {
		inj.Detection = "none expected: " + res.What
	}
	for res.FoundBy != "none" {
		h, err := node.Health(ctx)
		now := time.Now()
		if err == nil {
			c := h.Components[res.Component]
			cur := readCounters(c)
			switch {
			case nexus.Rank(c.Status) > 0:
				seen = c.Status + ": " + c.Error
			case cur.failures > base.failures:
				seen = fmt.Sprintf("failures %d -> %d", base.failures, cur.failures)
			case cur.attempts > base.attempts:
				seen = fmt.Sprintf("recovery attempts %d -> %d", base.attempts, cur.attempts)
			case cur.restarts > base.restarts:
				seen = fmt.Sprintf("process restarts %d -> %d", base.restarts, cur.restarts)
			}
		}
		if seen != "" {
			inj.DetectedAt, inj.Detection = now.UTC(), seen
			break
		}
		if now.After(deadline) || ctx.Err() != nil {
			inj.Error = fmt.Sprintf("not detected within %s: %s stayed healthy", r.opts.Timeout, res.Component)
			r.waitHeld(ctx, res.Until)
			return inj
		}
		sleep(ctx, poll)
	}
	if !inj.DetectedAt.IsZero() {
		inj.Detect = inj.DetectedAt.Sub(inj.InjectedAt)
	}
	r.progress(scenario + ": waiting for recovery")
	var healthyAt time.Time
	for healthyAt.IsZero() || inj.RecoveredAt.IsZero() {
		h, err := node.Health(ctx)
		now := time.Now()
		if err == nil && healthyAt.IsZero() {
			c := h.Components[res.Component]
			if nexus.Rank(c.Status) == 0 && now.After(res.Until) {
				healthyAt = now
				if s := lastStep(c); s != "" && readCounters(c).attempts > base.attempts {
					inj.Steps = append(inj.Steps, s)
				}
			}
		}
		if !healthyAt.IsZero() {
			r.mu.Lock()
			last := r.lastOK
			r.mu.Unlock()
			if last.After(healthyAt) {
				inj.RecoveredAt = last.UTC()
				break
			}
		}
		if now.After(deadline) || ctx.Err() != nil {
			inj.Error = fmt.Sprintf("not recovered within %s", r.opts.Timeout)
			return inj
		}
		sleep(ctx, poll)
	}
	inj.Recover = inj.RecoveredAt.Sub(inj.InjectedAt)
	r.progress(scenario + ": recovered, checking the data")
	inj.Check = r.check(ctx)
	return inj
}

// waitHeld waits for a held fault's end, so that the next injection is
// not refused.
func (r *runner) waitHeld(ctx context.Context, until time.Time) {
	if d := time.Until(until); d > 0 {
		sleep(ctx, d+poll)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// retryable reports whether a failed request may succeed if sent again:
// the node refused it for now (its rate limit), could not answer, or had
// no quorum (between two leaders).
func retryable(err error) bool {
	switch nexus.ErrorCode(err) {
	case nexus.ERateLimited, nexus.EUnavailable, nexus.ENoQuorum:
		return true
	}
	return false
}

// again calls f until it succeeds, fails for good, or deadline passes.
func again[T any](ctx context.Context, deadline time.Time, f func() (T, error)) (T, error) {
	for {
		v, err := f()
		if err == nil || !retryable(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return v, err
		}
		sleep(ctx, poll)
	}
}

// readers is how many reads the data check has in flight.
const readers = 4

// check pauses the writer, reads back every write acknowledged so far
// (linearizable reads: on a cluster's follower too), waits for a
// cluster's members to reach one head, and runs a deep fsck.
func (r *runner) check(ctx context.Context) DataCheck {
	r.pause.Lock()
	defer r.pause.Unlock()
	r.mu.Lock()
	all := append([]acked(nil), r.acked...)
	r.mu.Unlock()
	var dc DataCheck
	if r.cluster {
		dc.Heads, dc.HeadsIdentical = r.heads(ctx)
	} else {
		dc.HeadsIdentical = true
	}
	reader := r.client().AtConsistency(cluster.Linearizable)
	// Four readers at once: a long run has tens of thousands to read
	// back after each injection. A read the node refused for now (its
	// rate limit, no quorum during an election) is sent again for up to
	// the timeout: only a write that is not there, differs, or cannot be
	// read by then is lost.
	lost := make([]bool, len(all))
	var wg sync.WaitGroup
	for w := range readers {
		wg.Go(func() {
			for i := w; i < len(all); i += readers {
				c, err := again(ctx, time.Now().Add(r.opts.Timeout), func() (*nexus.Context, error) { return reader.Get(ctx, all[i].id) })
				lost[i] = err != nil || c.Content != all[i].content
			}
		})
	}
	wg.Wait()
	for i, a := range all {
		if lost[i] {
			dc.Lost = append(dc.Lost, a.id.String())
			continue
		}
		dc.ReadBack++
	}
	rep, err := again(ctx, time.Now().Add(r.opts.Timeout), func() (*gitstore.FsckReport, error) { return r.client().Fsck(ctx, true) })
	switch {
	case err != nil:
		dc.Fsck = "fsck failed: " + err.Error()
	case !rep.Clean():
		dc.Fsck = fmt.Sprintf("%d problems, first: %s", len(rep.Problems), rep.Problems[0].Message)
	default:
		dc.FsckClean = true
	}
	return dc
}

// heads waits until every member of the cluster answers with one head
// (GET /v1/cluster asks each), within the timeout.
func (r *runner) heads(ctx context.Context) (string, bool) {
	deadline := time.Now().Add(r.opts.Timeout)
	last := ""
	for {
		st, err := r.client().ClusterStatus(ctx, false)
		if err == nil {
			head, same := "", true
			var all []string
			for _, m := range st.Members {
				all = append(all, m.ID+"="+m.Head+m.Error)
				if m.Error != "" || m.Head == "" || (head != "" && m.Head != head) {
					same = false
				}
				head = m.Head
			}
			if same && head != "" {
				return head, true
			}
			last = strings.Join(all, " ")
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return last, false
		}
		sleep(ctx, poll)
	}
}

// finish sums up the run and lists its problems.
func (r *runner) finish(rep *Report, final DataCheck) {
	rep.Ended = time.Now().UTC()
	r.mu.Lock()
	rep.Writes = Writes{Acknowledged: len(r.acked), Failed: r.failed, Lost: len(final.Lost)}
	r.mu.Unlock()
	for _, inj := range rep.Injections {
		if inj.Error != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s at %s: %s", inj.Scenario, round(inj.Planned), inj.Error))
			continue
		}
		if len(inj.Check.Lost) > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s at %s: %d acknowledged writes did not read back", inj.Scenario, round(inj.Planned), len(inj.Check.Lost)))
		}
		if !inj.Check.HeadsIdentical {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s at %s: the members' heads did not agree: %s", inj.Scenario, round(inj.Planned), inj.Check.Heads))
		}
		if !inj.Check.FsckClean {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s at %s: fsck after recovery: %s", inj.Scenario, round(inj.Planned), inj.Check.Fsck))
		}
	}
	if len(final.Lost) > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("at the end: %d acknowledged writes lost, first: %v", len(final.Lost), final.Lost[:min(len(final.Lost), 10)]))
	}
	if !final.HeadsIdentical {
		rep.Problems = append(rep.Problems, "at the end: the members' heads did not agree: "+final.Heads)
	}
	if !final.FsckClean {
		rep.Problems = append(rep.Problems, "at the end: fsck: "+final.Fsck)
	}
	for _, s := range rep.Scenarios {
		if s.Selected && s.Skipped == "" && s.Injected == 0 {
			rep.Problems = append(rep.Problems, s.Name+": never injected (the run was too short for every scenario)")
		}
	}
	rep.Passed = len(rep.Problems) == 0
}
