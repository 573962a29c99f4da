package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/retry"
)

// Runner is one agent: a [Provider] behind per-call timeouts, retries with
// backoff and full jitter that honour Retry-After, a circuit breaker, rate
// limits and a health record. It implements [Agent] and is safe for
// concurrent use.
//
// A rejected key (401, 403) is never retried: the agent is marked
// auth_failed and refuses every call, without sending it, until [Runner.Reset].
type Runner struct {
	cfg     Config // defaults filled in
	id      string
	policy  retry.Policy
	limits  limits
	log     *slog.Logger
	rebuild func() (Provider, error) // makes the provider again on Reset; nil: keep it
	engine  atomic.Pointer[engine]
	forcing atomic.Bool // the next failure trips the breaker, whatever the count
	notify  sync.Mutex  // serializes OnChange calls

	calls, requests, retries, failures, rejected, tokensIn, tokensOut atomic.Uint64

	mu           sync.Mutex
	authErr      *Error // the rejection that marked the agent auth_failed
	consecutive  int    // failed attempts and heartbeats in a row
	beatFailures int    // failed heartbeats in a row
	lastErr      string
	lastErrAt    time.Time
	lastOK       time.Time
	lastBeat     time.Time
	openedAt     time.Time
	condition    Condition        // the last one reported to OnChange
	byClass      map[Class]uint64 // failed requests and heartbeats by class
	mem          memory
}

// engine is what Reset replaces: the provider and a fresh breaker.
type engine struct {
	provider Provider
	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
}

var _ Agent = (*Runner)(nil)

// New returns the agent cfg describes, with its provider from
// [NewProvider]. Errors have code invalid.
func New(cfg Config) (*Runner, error) {
	p, err := NewProvider(cfg)
	if err != nil {
		return nil, err
	}
	r, err := NewRunner(cfg, p)
	if err != nil {
		return nil, err
	}
	r.rebuild = func() (Provider, error) { return NewProvider(cfg) }
	return r, nil
}

// NewRunner returns an agent that calls p with the resilience settings of
// cfg. cfg.Provider and the provider's fields are not used beyond
// reporting, so p may be any implementation.
func NewRunner(cfg Config, p Provider) (*Runner, error) {
	if err := nexus.ValidateAgentID(cfg.ID); err != nil {
		return nil, err
	}
	if err := cfg.validateNumbers(func(format string, args ...any) error {
		return nexus.Errorf(nexus.EInvalid, "agent %s: %s", cfg.ID, fmt.Sprintf(format, args...))
	}); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &Runner{
		cfg:       cfg,
		id:        cfg.ID,
		policy:    retry.Policy{Backoff: retry.Backoff{Base: cfg.RetryBase, Max: cfg.RetryMax}},
		limits:    newLimits(cfg),
		log:       cfg.Logger.With("agent", cfg.ID),
		condition: Healthy,
	}
	r.engine.Store(r.newEngine(p))
	return r, nil
}

func (r *Runner) newEngine(p Provider) *engine {
	e := &engine{provider: p}
	e.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "agent " + r.id,
		MaxRequests: uint32(r.cfg.BreakerProbes),
		Timeout:     r.cfg.BreakerCooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= uint32(r.cfg.BreakerFailures) || r.forcing.Load()
		},
		IsSuccessful:  func(err error) bool { return err == nil || !countsAgainst(ClassOf(err)) },
		IsExcluded:    func(err error) bool { return ClassOf(err) == ClassCanceled },
		OnStateChange: func(_ string, from, to gobreaker.State) { r.breakerChanged(e, from, to) },
	})
	return e
}

// countsAgainst reports whether a failure of class c says the provider is
// failing: not a request it refused on purpose, a rejected key (which
// auth_failed handles) or the caller's cancellation.
func countsAgainst(c Class) bool {
	switch c {
	case ClassBadRequest, ClassAuth, ClassCanceled:
		return false
	}
	return true
}

// ID returns the agent's id.
func (r *Runner) ID() string { return r.id }

// Model returns the configured model.
func (r *Runner) Model() string { return r.cfg.Model }

// Process answers chain[0] with the rest of chain as its history, in a
// prompt made by [BuildPrompt] under the system prompt of the
// configuration ([DefaultSystem] if none).
func (r *Runner) Process(ctx context.Context, chain []*nexus.Context) (*Response, error) {
	q, err := chainRequest(r.id, chain)
	if err != nil {
		return nil, err
	}
	return r.answer(ctx, q)
}

// Generate answers prompt alone, under the configured system prompt.
func (r *Runner) Generate(ctx context.Context, prompt string) (*Response, error) {
	q, err := textRequest(r.id, prompt)
	if err != nil {
		return nil, err
	}
	return r.answer(ctx, q)
}

// request is what Process and Generate ask; each agent of a pool makes
// its own prompt of it.
type request struct {
	chain []*nexus.Context
	text  string
}

func chainRequest(id string, chain []*nexus.Context) (request, error) {
	if len(chain) == 0 || chain[0] == nil {
		return request{}, &Error{Agent: id, Class: ClassBadRequest, Message: "nothing to process: the chain is empty"}
	}
	return request{chain: chain}, nil
}

func textRequest(id, prompt string) (request, error) {
	if strings.TrimSpace(prompt) == "" {
		return request{}, &Error{Agent: id, Class: ClassBadRequest, Message: "nothing to generate: the prompt is empty"}
	}
	return request{text: prompt}, nil
}

func (r *Runner) prompt(q request) Prompt {
	if q.chain != nil {
		return Prompt{System: cmp.Or(r.cfg.System, DefaultSystem), MaxTokens: r.cfg.MaxTokens,
			Messages: []Message{{Role: "user", Content: BuildPrompt(q.chain, r.cfg.PromptBudget)}}}
	}
	return Prompt{System: r.cfg.System, MaxTokens: r.cfg.MaxTokens, Messages: []Message{{Role: "user", Content: q.text}}}
}

// answer runs q and wraps the answer with its provenance.
func (r *Runner) answer(ctx context.Context, q request) (*Response, error) {
	start := time.Now()
	comp, tried, err := r.run(ctx, q)
	if err != nil {
		return nil, err
	}
	return &Response{Content: comp.Content, Provenance: Provenance{
		Agent: r.id, FinalAgent: r.id, Model: comp.Model, TokensIn: comp.TokensIn, TokensOut: comp.TokensOut,
		Latency: time.Since(start), Attempts: tried.Requests, Trail: []Attempt{tried},
	}}, nil
}

// run asks the provider for an answer to q, retrying as the failures
// allow, and says what it did.
func (r *Runner) run(ctx context.Context, q request) (*Completion, Attempt, error) {
	start := time.Now()
	r.calls.Add(1)
	p := r.prompt(q)
	comp, sent, err := r.attempts(ctx, p)
	tried := Attempt{Agent: r.id, Requests: sent, Latency: time.Since(start)}
	if err != nil {
		e := asError(err)
		tried.Class, tried.Error = e.Class, e.Message
		return nil, tried, err
	}
	if comp.Model == "" {
		comp.Model = r.cfg.Model
	}
	if comp.TokensIn == 0 && comp.TokensOut == 0 {
		comp.TokensIn, comp.TokensOut = estimateTokens(p), len(comp.Content)/4+1
	}
	r.tokensIn.Add(uint64(comp.TokensIn))
	r.tokensOut.Add(uint64(comp.TokensOut))
	r.remember(q, comp)
	return comp, tried, nil
}

// attempts sends p until it is answered or a failure is final, and
// returns the number of requests sent.
func (r *Runner) attempts(ctx context.Context, p Prompt) (*Completion, int, error) {
	if err := r.refuseAuth(); err != nil {
		r.rejected.Add(1)
		return nil, 0, err
	}
	est := estimateTokens(p)
	sent := 0
	var last *Error
	for attempt := 1; ; attempt++ {
		if err := r.limits.wait(ctx, est); err != nil {
			e := asError(err)
			if e.Class == ClassRateLimit {
				r.rejected.Add(1)
			}
			return nil, sent, r.final(e, last, sent, "")
		}
		eng := r.engine.Load()
		done, err := eng.breaker.Allow()
		if err != nil {
			r.rejected.Add(1)
			return nil, sent, r.final(r.openError(err, last == nil), last, sent, "")
		}
		sent++
		r.requests.Add(1)
		if attempt > 1 {
			r.retries.Add(1)
		}
		comp, err := r.once(ctx, eng.provider, p)
		done(err)
		if err == nil {
			r.succeeded(comp, est)
			return comp, sent, nil
		}
		e := asError(err)
		r.failed(e, "")
		switch {
		case e.Class == ClassCanceled:
			return nil, sent, r.final(e, last, sent, "")
		case !e.Class.Retryable() || attempt > r.cfg.MaxRetries:
			return nil, sent, r.final(e, nil, sent, "")
		case e.RetryAfter > r.cfg.RetryMax:
			return nil, sent, r.final(e, nil, sent, fmt.Sprintf("; not retried: the provider asked to wait %v, over the retry cap of %v",
				e.RetryAfter, r.cfg.RetryMax))
		}
		d := r.policy.Delay(attempt, e.RetryAfter)
		if werr := r.policy.Wait(ctx, d); errors.Is(werr, retry.ErrDeadline) {
			return nil, sent, r.final(e, nil, sent, "; not retried: "+werr.Error())
		} else if werr != nil {
			return nil, sent, r.final(r.stopped(ctx), e, sent, "")
		}
		r.log.Warn("retrying a failed call", "attempt", attempt+1, "waited", d, "class", string(e.Class), "err", e.Message)
		last = e
	}
}

// once sends one attempt under the per-attempt timeout.
func (r *Runner) once(ctx context.Context, p Provider, prompt Prompt) (*Completion, error) {
	actx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	comp, err := p.Complete(actx, prompt)
	if err == nil && (comp == nil || comp.Content == "") {
		err = errorf(ClassMalformed, "the provider returned an empty answer")
	}
	if err != nil {
		return nil, r.attemptError(ctx, actx, err)
	}
	return comp, nil
}

// attemptError tells the caller's cancellation, the attempt's timeout and
// the provider's own failures apart.
func (r *Runner) attemptError(ctx, actx context.Context, err error) error {
	if err == nil {
		return nil
	}
	e := *asError(err)
	e.Message = r.cfg.Redactor.Redact(e.Message)
	switch {
	case ctx.Err() != nil:
		return r.stopped(ctx)
	case errors.Is(actx.Err(), context.DeadlineExceeded):
		e.Class, e.Err = ClassTimeout, nil // not the caller's deadline
		e.Message = fmt.Sprintf("%s (attempt timeout %v)", e.Message, r.cfg.Timeout)
	case e.Class == ClassCanceled: // the provider gave up by itself
		e.Class = ClassServer
	}
	return &e
}

// stopped is the error of a call that the caller's context ended.
func (r *Runner) stopped(ctx context.Context) *Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{Class: ClassCanceled, Err: ctx.Err(), Message: "stopped by the caller's deadline"}
	}
	return &Error{Class: ClassCanceled, Err: ctx.Err(), Message: "canceled by the caller"}
}

// final is the error a call returns: e with the agent, the count of
// requests and a note; last is the failure before e, if e says nothing of
// the provider (a cancellation, an open circuit).
func (r *Runner) final(e, last *Error, sent int, note string) *Error {
	out := *e
	out.Agent, out.Attempts = r.id, sent
	out.Message += note
	if last != nil {
		out.Message += "; the last failure: " + last.Message
	}
	return &out
}

// openError is the error of a call that the breaker refused, quoting the
// agent's last error if withLast.
func (r *Runner) openError(err error, withLast bool) *Error {
	r.mu.Lock()
	opened, last := r.openedAt, r.lastErr
	r.mu.Unlock()
	what := "circuit half-open: a probe is in flight"
	if !errors.Is(err, gobreaker.ErrTooManyRequests) {
		next := max(time.Until(opened.Add(r.cfg.BreakerCooldown)), 0).Round(time.Millisecond)
		what = fmt.Sprintf("circuit open; next probe in %v", next)
	}
	if withLast {
		what += "; last error: " + cmp.Or(last, "none recorded")
	}
	return errorf(ClassUnavailable, "%s", what)
}

// refuseAuth returns the error of a call to an agent marked auth_failed.
func (r *Runner) refuseAuth() error {
	r.mu.Lock()
	e := r.authErr
	r.mu.Unlock()
	if e == nil {
		return nil
	}
	return &Error{Agent: r.id, Class: ClassAuth, Status: e.Status,
		Message: "marked auth_failed, not sent (reset the agent or change its key): " + e.Message}
}

func (r *Runner) succeeded(comp *Completion, est int) {
	r.limits.charge(comp.TokensIn+comp.TokensOut, est)
	r.mu.Lock()
	r.consecutive, r.beatFailures, r.lastOK = 0, 0, time.Now()
	r.mu.Unlock()
	r.refresh()
}

// failed records a failed attempt or heartbeat (what says which).
func (r *Runner) failed(e *Error, what string) {
	if e.Class == ClassCanceled {
		return
	}
	r.failures.Add(1)
	r.mu.Lock()
	if r.byClass == nil {
		r.byClass = map[Class]uint64{}
	}
	r.byClass[e.Class]++
	if countsAgainst(e.Class) {
		r.consecutive++
	}
	r.lastErr, r.lastErrAt = what+e.Message, time.Now()
	newAuth := e.Class == ClassAuth && r.authErr == nil
	if e.Class == ClassAuth {
		r.authErr = e
	}
	r.mu.Unlock()
	if newAuth {
		r.log.Error("the provider rejected the key: agent marked auth_failed until reset", "err", e.Message)
	}
	r.refresh()
}

// breakerChanged records a change of e's breaker. It runs under the
// breaker's lock, so it must not call the breaker.
func (r *Runner) breakerChanged(e *engine, from, to gobreaker.State) {
	if r.engine.Load() != e {
		return
	}
	if to == gobreaker.StateOpen {
		r.mu.Lock()
		r.openedAt = time.Now()
		r.mu.Unlock()
	}
	r.log.Warn("agent circuit breaker changed state", "from", from.String(), "to", to.String())
}

// refresh reports a change of condition to the log and to OnChange.
func (r *Runner) refresh() {
	r.notify.Lock()
	defer r.notify.Unlock()
	state := r.engine.Load().breaker.State()
	r.mu.Lock()
	now := r.conditionLocked(state)
	prev := r.condition
	r.condition = now
	r.mu.Unlock()
	if now == prev {
		return
	}
	r.log.Info("agent condition changed", "from", string(prev), "to", string(now))
	if r.cfg.OnChange != nil {
		r.cfg.OnChange(r.id, prev, now)
	}
}

// Reset clears an auth_failed mark and the failure counts and closes the
// breaker. An agent made by [New] reads its key again first, so a key
// fixed in the environment or the secrets file is picked up; the error is
// that of reading it, and then nothing is reset.
func (r *Runner) Reset() error {
	old := r.engine.Load().provider
	p := old
	if r.rebuild != nil {
		var err error
		if p, err = r.rebuild(); err != nil {
			return err
		}
		if from, ok := old.(stateful); ok {
			if to, ok := p.(stateful); ok {
				to.restoreProvider(from.providerState())
			}
		}
	}
	r.engine.Store(r.newEngine(p))
	r.mu.Lock()
	r.authErr, r.consecutive, r.beatFailures = nil, 0, 0
	r.mu.Unlock()
	r.log.Info("agent reset")
	r.refresh()
	return nil
}

// Available reports whether a call might be sent now: the agent is not
// auth_failed and its breaker is not open. Routers use it to skip an
// agent that would refuse the call unsent.
func (r *Runner) Available() bool { return r.available() }

// available reports whether a call might be sent now: the agent is not
// auth_failed and its breaker is not open.
func (r *Runner) available() bool {
	r.mu.Lock()
	auth := r.authErr != nil
	r.mu.Unlock()
	return !auth && r.engine.Load().breaker.State() != gobreaker.StateOpen
}
