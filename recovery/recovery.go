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
	Logger     *slog.Logger
}

// Manager runs the cascade over its components and keeps, per component,
// how often it failed and how its recoveries went. Its methods are safe
// for concurrent use; cascades never overlap.
type Manager struct {
	comps []Component
	opts  Options
	kick  chan struct{}

	run   sync.Mutex // one cascade at a time
	mu    sync.Mutex // guards stats and fatal
	stats map[string]*stats
	fatal bool
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
		st.failing = false
		m.mu.Unlock()
		step.Status, step.Reason, step.Took = OK, h.Status, time.Since(start)
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
	if c.Recover == nil {
		step.Status, step.Reason, step.Took = Failed, why+"; it cannot be recovered while the node runs", time.Since(start)
		m.record(c.Name, step, false)
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
		m.record(c.Name, step, false)
		return step
	}
	step.Status, step.Reason = Recovered, why+"; "+did
	m.mu.Lock()
	st.failing = false
	m.mu.Unlock()
	m.record(c.Name, step, true)
	return step
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

func (m *Manager) record(name string, step Step, ok bool) {
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
}

// Trigger asks Watch to run a cascade now. It never blocks.
func (m *Manager) Trigger() {
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
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
		m.Run(ctx)
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
