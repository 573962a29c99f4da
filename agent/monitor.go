package agent

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/nexus-mem/nexus"
)

// Condition is the health of one agent.
type Condition string

// The conditions of an agent, from best to worst.
const (
	Healthy    Condition = "healthy"     // its last attempt or heartbeat succeeded
	Degraded   Condition = "degraded"    // answering, but its last attempts or heartbeats failed
	Unhealthy  Condition = "unhealthy"   // its breaker is open (or half-open): calls go elsewhere
	AuthFailed Condition = "auth_failed" // its key was rejected; nothing is sent until it is reset
)

// conditionLocked derives the condition from the breaker's state and the
// failure counts. The caller holds r.mu.
func (r *Runner) conditionLocked(state gobreaker.State) Condition {
	switch {
	case r.authErr != nil:
		return AuthFailed
	case state != gobreaker.StateClosed:
		return Unhealthy
	case r.consecutive > 0 || r.beatFailures > 0:
		return Degraded
	}
	return Healthy
}

// Status is a snapshot of an agent's health and counters, for /health,
// /metrics and `nexus agents`. Counters count since the agent was made.
type Status struct {
	Agent               string    `json:"agent"`
	Provider            Kind      `json:"provider"`
	Model               string    `json:"model"`
	Condition           Condition `json:"status"`
	Breaker             string    `json:"breaker"` // closed, open or half-open
	ConsecutiveFailures int       `json:"consecutive_failures"`
	HeartbeatFailures   int       `json:"heartbeat_failures"` // in a row
	LastError           string    `json:"last_error,omitempty"`
	LastErrorAt         time.Time `json:"last_error_at,omitzero"`
	LastSuccess         time.Time `json:"last_success,omitzero"` // of a call or a heartbeat
	LastHeartbeat       time.Time `json:"last_heartbeat,omitzero"`

	Calls     uint64 `json:"calls"`     // Process and Generate calls (a pool's included)
	Requests  uint64 `json:"requests"`  // requests sent, retries included
	Retries   uint64 `json:"retries"`   // requests that retried a failed one
	Failures  uint64 `json:"failures"`  // failed requests and heartbeats, cancellations excepted
	Rejected  uint64 `json:"rejected"`  // calls refused unsent: breaker open, auth_failed, rate limit
	TokensIn  uint64 `json:"tokens_in"` // as the provider counted them (estimated if it did not)
	TokensOut uint64 `json:"tokens_out"`
}

// Status returns a snapshot of the agent's health and counters.
func (r *Runner) Status() Status {
	state := r.engine.Load().breaker.State()
	s := Status{
		Agent: r.id, Provider: r.cfg.Provider, Model: r.cfg.Model, Breaker: state.String(),
		Calls: r.calls.Load(), Requests: r.requests.Load(), Retries: r.retries.Load(), Failures: r.failures.Load(),
		Rejected: r.rejected.Load(), TokensIn: r.tokensIn.Load(), TokensOut: r.tokensOut.Load(),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s.Condition = r.conditionLocked(state)
	s.ConsecutiveFailures, s.HeartbeatFailures = r.consecutive, r.beatFailures
	s.LastError, s.LastErrorAt, s.LastSuccess, s.LastHeartbeat = r.lastErr, r.lastErrAt, r.lastOK, r.lastBeat
	return s
}

// FailuresByClass counts the failed requests and heartbeats by class
// since the agent was made (what Status counts as Failures); classes that
// never failed are absent.
func (r *Runner) FailuresByClass() map[Class]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[Class]uint64, len(r.byClass))
	for c, n := range r.byClass {
		out[c] = n
	}
	return out
}

// errUnhealthy is the failure fed to the breaker to force it open.
var errUnhealthy = &Error{Class: ClassServer, Message: "heartbeats failed"}

// Heartbeat checks the provider without spending tokens (the models
// endpoint; the probe command), under the per-attempt timeout, and
// records the outcome. While the breaker is closed, HeartbeatFailures
// failures in a row mark the agent unhealthy by forcing the breaker open,
// so that calls go to other agents. Once the cooldown has passed, the
// heartbeat is the half-open probe: its success closes the breaker again.
// An agent marked auth_failed is not checked: it stays so until
// [Runner.Reset]. A successful call counts as a successful heartbeat.
func (r *Runner) Heartbeat(ctx context.Context) error {
	if err := r.refuseAuth(); err != nil {
		return err
	}
	eng := r.engine.Load()
	var done func(error)
	if eng.breaker.State() != gobreaker.StateClosed {
		d, err := eng.breaker.Allow()
		if err != nil {
			e := r.openError(err, true)
			e.Agent = r.id
			return e
		}
		done = d
	}
	actx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	err := r.attemptError(ctx, actx, eng.provider.Heartbeat(actx))
	cancel()
	if done != nil {
		done(err)
	}
	if err == nil {
		r.mu.Lock()
		r.consecutive, r.beatFailures, r.lastOK, r.lastBeat = 0, 0, time.Now(), time.Now()
		r.mu.Unlock()
		r.refresh()
		return nil
	}
	e := asError(err)
	if e.Class == ClassCanceled {
		return r.final(e, nil, 1, "")
	}
	r.mu.Lock()
	r.lastBeat = time.Now()
	r.beatFailures++
	trip := r.beatFailures >= r.cfg.HeartbeatFailures && e.Class != ClassAuth
	r.mu.Unlock()
	r.failed(e, "heartbeat: ")
	if trip {
		r.forceOpen()
	}
	return r.final(e, nil, 1, "")
}

// forceOpen opens a closed breaker at once, by feeding it a failure that
// ReadyToTrip cannot refuse.
func (r *Runner) forceOpen() {
	eng := r.engine.Load()
	if eng.breaker.State() == gobreaker.StateOpen {
		return
	}
	r.forcing.Store(true)
	if done, err := eng.breaker.Allow(); err == nil {
		done(errUnhealthy)
	}
	r.forcing.Store(false)
	r.log.Warn("agent marked unhealthy after failed heartbeats", "failures", r.cfg.HeartbeatFailures)
	r.refresh()
}

// nextBeat is the wait before the next heartbeat: the interval, or less
// if the breaker's cooldown ends sooner, so that the probe is not late.
func (r *Runner) nextBeat() time.Duration {
	if r.engine.Load().breaker.State() != gobreaker.StateOpen {
		return r.cfg.HeartbeatInterval
	}
	r.mu.Lock()
	left := time.Until(r.openedAt.Add(r.cfg.BreakerCooldown))
	r.mu.Unlock()
	// The breaker turns half-open only once the cooldown has passed.
	return min(r.cfg.HeartbeatInterval, max(left, 0)+time.Millisecond)
}

// Monitor sends the heartbeats of a set of agents, each at its own
// interval, and reports their health. It implements [nexus.HealthChecker]
// for the agents component.
type Monitor struct {
	runners []*Runner

	mu     sync.Mutex
	cancel context.CancelFunc // nil until Start
	wg     sync.WaitGroup
}

var _ nexus.HealthChecker = (*Monitor)(nil)

// NewMonitor returns a monitor of runners. It sends nothing until Start.
func NewMonitor(runners ...*Runner) *Monitor {
	return &Monitor{runners: runners}
}

// Start begins the heartbeats: one goroutine per agent whose
// HeartbeatInterval is not negative, beating at once and then every
// interval. Calling it again does nothing.
func (m *Monitor) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	for _, r := range m.runners {
		if r.cfg.HeartbeatInterval < 0 {
			continue
		}
		m.wg.Go(func() { watch(ctx, r) })
	}
}

func watch(ctx context.Context, r *Runner) {
	for {
		_ = r.Heartbeat(ctx) // the outcome is in r's status
		t := time.NewTimer(r.nextBeat())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Close stops the heartbeats and waits for those in flight.
func (m *Monitor) Close() error {
	m.mu.Lock()
	cancel := m.cancel
	m.mu.Unlock()
	if cancel != nil {
		cancel()
		m.wg.Wait()
	}
	return nil
}

// Status returns a snapshot of every agent, in the order given.
func (m *Monitor) Status() []Status {
	out := make([]Status, len(m.runners))
	for i, r := range m.runners {
		out[i] = r.Status()
	}
	return out
}

// CheckHealth reports the agents component: healthy when every agent is,
// unhealthy when none can answer (all unhealthy or auth_failed), degraded
// in between, and disabled when there are no agents. Details count the
// agents by condition and describe each; Error names those not healthy.
func (m *Monitor) CheckHealth(context.Context) nexus.ComponentHealth {
	now := time.Now().UTC()
	if len(m.runners) == 0 {
		return nexus.ComponentHealth{Status: nexus.StatusDisabled, Details: map[string]any{"agents": 0}, Timestamp: now}
	}
	counts := map[Condition]int{}
	byAgent := map[string]any{}
	var problems []string
	for _, s := range m.Status() {
		counts[s.Condition]++
		byAgent[s.Agent] = map[string]any{
			"status": string(s.Condition), "breaker": s.Breaker,
			"consecutive_failures": s.ConsecutiveFailures, "last_error": s.LastError,
		}
		if s.Condition != Healthy {
			problems = append(problems, fmt.Sprintf("agent %s is %s: %s", s.Agent, s.Condition, cmp.Or(s.LastError, "no error recorded")))
		}
	}
	sort.Strings(problems)
	h := nexus.ComponentHealth{Status: nexus.StatusDegraded, Timestamp: now, Details: map[string]any{
		"agents": len(m.runners), "healthy": counts[Healthy], "degraded": counts[Degraded],
		"unhealthy": counts[Unhealthy], "auth_failed": counts[AuthFailed], "by_agent": byAgent,
	}}
	switch {
	case counts[Healthy] == len(m.runners):
		h.Status = nexus.StatusHealthy
	case counts[Healthy]+counts[Degraded] == 0:
		h.Status = nexus.StatusUnhealthy
	}
	if len(problems) > 0 {
		h.Error = strings.Join(problems, "; ")
	}
	return h
}
