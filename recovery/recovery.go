// Package recovery runs a node's cascading recovery: its components are
// checked in a fixed order (git repository → context manager → cache →
// index → agents) and each one found failing is recovered, reporting
// recovered or failed with the reason and the time it took. A critical
// component that cannot be recovered stops the cascade: nothing above it
// can be trusted, and the node must stop.
//
// The same cascade serves `nexus recover` on a stopped node and a Manager
// inside a running server, which runs it every interval and whenever a
// check elsewhere (a scrub, a read that failed its hash) asks for it.
//
// Each episode of a component's failure (found failing, the attempts,
// recovered or not) is reported as events ([Options.OnEvent]), which a
// node records in its memory as an incident: the record format, its
// reading and the post-mortem are [Incident]'s.
package recovery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
)

// Status is the outcome of one component's step. Its text is the
// "status" of a step in JSON.
type Status string

// Step results.
const (
	OK        Status = "ok"        // the component was not failing
	Recovered Status = "recovered" // it was failing and now works
	Failed    Status = "failed"    // it was failing and could not be recovered
	Skipped   Status = "skipped"   // a critical component below it failed
	Disabled  Status = "disabled"  // not configured on this node
)

// A Component is one layer of the cascade.
type Component struct {
	Name string
	// Critical components stop the cascade (and the node) when they
	// cannot be recovered.
	Critical bool
	// Health reports the component; nil means it is disabled.
	Health nexus.HealthChecker
	// Failing says why the component needs recovering, or "" when it does
	// not. Nil: it needs recovering when Health says unhealthy.
	Failing func(ctx context.Context, h nexus.ComponentHealth) string
	// Recover repairs the component and says what it did; nil means it
	// cannot be recovered while the node runs.
	Recover func(ctx context.Context) (string, error)
}

// Step is one component's outcome in a cascade.
type Step struct {
	Component string        `json:"component"`
	Status    Status        `json:"status"`
	Reason    string        `json:"reason,omitempty"`
	Took      time.Duration `json:"took_ns"`
	At        time.Time     `json:"at"`
}

func (s Step) String() string {
	return fmt.Sprintf("%s %s after %s: %s", s.Component, s.Status, s.Took.Round(time.Millisecond), s.Reason)
}

// Options configure a Manager.
type Options struct {
	// Interval between cascades run by Watch (default 10s).
	Interval time.Duration
	// OnFatal is called once when a critical component could not be
	// recovered; the node should stop.
	OnFatal func(Step)
	// OnFailure is called each time a component is newly found failing.
	OnFailure func(component string)
	// OnRecovery is called after each recovery attempt.
	OnRecovery func(component string, ok bool, took time.Duration)
	// OnEvent, if set, is called for each event of a component's episode
	// of failure: found failing, each recovery attempt, found well again
	// without one (see [Event]). It is called from the cascade, in order,
	// and must not block.
	OnEvent func(Event)
	Logger  *slog.Logger
}

// EventKind is what happened to a failing component.
type EventKind string

// The events of an episode: Detected opens it; an Attempt that recovered
// the component, or Cleared, closes it; a failed Attempt leaves it open
// (the next cascade tries again) unless the component is critical (the
// node stops).
const (
	Detected EventKind = "detected" // newly found failing
	Attempt  EventKind = "attempt"  // a recovery attempt ended (Step)
	Cleared  EventKind = "cleared"  // found well again with no successful attempt
)

// Event is one event of a component's episode of failure.
type Event struct {
	Kind      EventKind
	Component string
	Critical  bool
	// Cause is why the component was found failing (Detected).
	Cause string
	// FoundBy is what ran the cascade that found it (Detected): see
	// [WithTrigger].
	FoundBy string
	// Step is the attempt's outcome (Attempt) or the check that found the
	// component well (Cleared).
	Step Step
	// At is when it happened; of Detected, when the check that found the
	// component failing began (the Step of an attempt starts then too).
	At time.Time
}

type triggerKey struct{}

// WithTrigger names, for the events of the cascades run with ctx, what
// ran them ("the scrubber's deep check", "an operator: POST
// /v1/admin/recover").
func WithTrigger(ctx context.Context, what string) context.Context {
	return context.WithValue(ctx, triggerKey{}, what)
}

// TriggerOf is what WithTrigger put in ctx, or "".
func TriggerOf(ctx context.Context) string {
	s, _ := ctx.Value(triggerKey{}).(string)
	return s
}

// Manager runs the cascade over its components and keeps, per component,
// how often it failed and how its recoveries went. Its methods are safe
// for concurrent use; cascades never overlap.
type Manager struct {
	comps []Component
	opts  Options
	kick  chan struct{}

	run   sync.Mutex // one cascade at a time
	mu    sync.Mutex // guards stats, fatal and why
	stats map[string]*stats
	fatal bool
	why   string // what asked for the next cascade of Watch (TriggerFor)
}

type stats struct {
	failing     bool // found failing by the last cascade
	failures    int64
	attempts    int64
	recovered   int64
	failed      int64
	lastFailure time.Time
	lastError   string
	last        *Step // the last recovery attempt
}

// New returns a manager over comps, which must be in cascade order.
func New(comps []Component, opts Options) *Manager {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{comps: comps, opts: opts, kick: make(chan struct{}, 1), stats: map[string]*stats{}}
	for _, c := range comps {
		m.stats[c.Name] = &stats{}
	}
	return m
}

// Run checks every component in order now and recovers those failing. It
// returns one step per component.
func (m *Manager) Run(ctx context.Context) []Step {
	m.run.Lock()
	defer m.run.Unlock()
	steps := make([]Step, 0, len(m.comps))
	stop := ""
	if TriggerOf(ctx) == "" {
		ctx = WithTrigger(ctx, "a recovery cascade")
	}
	for _, c := range m.comps {
		if stop != "" {
			steps = append(steps, Step{Component: c.Name, Status: Skipped, Reason: stop, At: time.Now().UTC()})
			continue
		}
		s := m.visit(ctx, c)
		steps = append(steps, s)
		if s.Status == Failed && c.Critical {
			stop = c.Name + " failed"
			m.mu.Lock()
			first := !m.fatal
			m.fatal = true
			m.mu.Unlock()
			if first && m.opts.OnFatal != nil {
				m.opts.OnFatal(s)
			}
		}
	}
	return steps
}

// visit checks one component and recovers it if it is failing.
func (m *Manager) visit(ctx context.Context, c Component) Step {
	start := time.Now()
	step := Step{Component: c.Name, At: start.UTC()}
	if c.Health == nil {
		step.Status, step.Reason = Disabled, "not configured on this node"
		return step
	}
	h := c.Health.CheckHealth(ctx)
	if h.Status == nexus.StatusDisabled {
		step.Status, step.Reason = Disabled, h.Error
		return step
	}
	why := failing(ctx, c, h)
	st := m.stats[c.Name]
	if why == "" {
		m.mu.Lock()
		was := st.failing
		st.failing = false
		m.mu.Unlock()
		step.Status, step.Reason, step.Took = OK, h.Status, time.Since(start)
		if was {
			m.event(Event{Kind: Cleared, Component: c.Name, Critical: c.Critical, Step: step})
		}
		return step
	}
	m.mu.Lock()
	newly := !st.failing
	st.failing = true
	if newly {
		st.failures++
		st.lastFailure, st.lastError = time.Now().UTC(), why
	}
	m.mu.Unlock()
	if newly && m.opts.OnFailure != nil {
		m.opts.OnFailure(c.Name)
	}
	if newly {
		m.event(Event{Kind: Detected, Component: c.Name, Critical: c.Critical, Cause: why, FoundBy: TriggerOf(ctx), At: step.At})
	}
	if c.Recover == nil {
		step.Status, step.Reason, step.Took = Failed, why+"; it cannot be recovered while the node runs", time.Since(start)
		m.record(c, step, false)
		return step
	}
	m.opts.Logger.Warn("recovering", "component", c.Name, "reason", why)
	did, err := c.Recover(ctx)
	if err == nil {
		// Recovered only if the component now passes its own check.
		if again := failing(ctx, c, c.Health.CheckHealth(ctx)); again != "" {
			err = fmt.Errorf("still failing after recovery (%s): %s", did, again)
		}
	}
	step.Took = time.Since(start)
	if err != nil {
		step.Status, step.Reason = Failed, why+"; recovery failed: "+err.Error()
		m.record(c, step, false)
		return step
	}
	step.Status, step.Reason = Recovered, why+"; "+did
	m.mu.Lock()
	st.failing = false
	m.mu.Unlock()
	m.record(c, step, true)
	return step
}

// event passes e to OnEvent, if set.
func (m *Manager) event(e Event) {
	if m.opts.OnEvent == nil {
		return
	}
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	m.opts.OnEvent(e)
}

func failing(ctx context.Context, c Component, h nexus.ComponentHealth) string {
	if c.Failing != nil {
		return c.Failing(ctx, h)
	}
	if h.Status == nexus.StatusUnhealthy {
		if h.Error == "" {
			return "unhealthy"
		}
		return h.Error
	}
	return ""
}

func (m *Manager) record(c Component, step Step, ok bool) {
	name := c.Name
	m.mu.Lock()
	st := m.stats[name]
	st.attempts++
	if ok {
		st.recovered++
	} else {
		st.failed++
	}
	st.last = &step
	m.mu.Unlock()
	if ok {
		m.opts.Logger.Warn("recovered", "component", name, "took", step.Took, "reason", step.Reason)
	} else {
		m.opts.Logger.Error("recovery failed", "component", name, "took", step.Took, "reason", step.Reason)
	}
	if m.opts.OnRecovery != nil {
		m.opts.OnRecovery(name, ok, step.Took)
	}
	m.event(Event{Kind: Attempt, Component: name, Critical: c.Critical, Step: step})
}

// MarkFailing says that a component was failing before the manager
// existed (its incident was left unresolved when the node last stopped):
// the next check that finds it well reports it Cleared, one that finds it
// failing goes on with the episode (no Detected, no failure counted).
func (m *Manager) MarkFailing(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.stats[name]; ok {
		st.failing = true
	}
}

// Trigger asks Watch to run a cascade now. It never blocks.
func (m *Manager) Trigger() { m.TriggerFor("") }

// TriggerFor asks Watch to run a cascade now, naming what asked (for the
// events of the components it finds failing; see [WithTrigger]). It never
// blocks.
func (m *Manager) TriggerFor(what string) {
	if what != "" {
		m.mu.Lock()
		m.why = what
		m.mu.Unlock()
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Watch runs a cascade every interval and on each Trigger until ctx ends
// or a critical component could not be recovered.
func (m *Manager) Watch(ctx context.Context) {
	t := time.NewTicker(m.opts.Interval)
	defer t.Stop()
	for {
		why := fmt.Sprintf("the periodic check (every %s)", m.opts.Interval)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
			why = "a check that asked for a cascade"
		}
		m.mu.Lock()
		if m.why != "" {
			why, m.why = m.why, ""
		}
		m.mu.Unlock()
		m.Run(WithTrigger(ctx, why))
		if m.Fatal() {
			return
		}
	}
}

// Fatal reports whether a critical component could not be recovered.
func (m *Manager) Fatal() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fatal
}

// Checkers returns the components' health checkers, each adding to its
// details the component's failure count and its recoveries.
func (m *Manager) Checkers() map[string]nexus.HealthChecker {
	out := map[string]nexus.HealthChecker{}
	for _, c := range m.comps {
		if c.Health == nil {
			continue
		}
		out[c.Name] = nexus.HealthFunc(func(ctx context.Context) nexus.ComponentHealth {
			h := c.Health.CheckHealth(ctx)
			if h.Status == nexus.StatusDisabled {
				return h
			}
			if h.Details == nil {
				h.Details = map[string]any{}
			}
			m.mu.Lock()
			st := *m.stats[c.Name]
			m.mu.Unlock()
			h.Details["failures"] = st.failures
			rec := map[string]any{"attempts": st.attempts, "recovered": st.recovered, "failed": st.failed}
			if st.last != nil {
				rec["last"] = *st.last
			}
			h.Details["recoveries"] = rec
			if !st.lastFailure.IsZero() {
				h.Details["last_failure"] = map[string]any{"at": st.lastFailure, "error": st.lastError}
			}
			return h
		})
	}
	return out
}
