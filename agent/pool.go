package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
)

// Member is an agent of a [Pool].
type Member struct {
	Agent *Runner
	// Weight is the agent's share of the calls among the primary members
	// (0: 1). Backups have no share.
	Weight int
	// Backup members are asked, in the order given, only when no primary
	// member answered.
	Backup bool
}

// Pool spreads calls over its primary members by smooth weighted round
// robin and fails over: when the chosen agent fails (after its own
// retries) or cannot be asked (breaker open, auth_failed, its rate limit),
// the other primaries are tried, the available ones by weight, then the
// backups in order. A call fails only when every member did; an answer
// ends the call, so no request that was answered is sent again. It
// implements [Agent] and is safe for concurrent use.
type Pool struct {
	id      string
	backups []*Runner
	log     *slog.Logger

	mu      sync.Mutex
	primary []*slot
}

// slot is a primary member and its round-robin credit.
type slot struct {
	r               *Runner
	weight, current int
}

var _ Agent = (*Pool)(nil)

// NewPool returns a pool named id (an agent id, distinct from its
// members') of members, at least one of them primary. logger receives
// failovers; nil discards them. Errors have code invalid.
func NewPool(id string, logger *slog.Logger, members ...Member) (*Pool, error) {
	if err := nexus.ValidateAgentID(id); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Pool{id: id, log: logger.With("pool", id)}
	seen := map[string]bool{id: true}
	for i, m := range members {
		switch {
		case m.Agent == nil:
			return nil, nexus.Errorf(nexus.EInvalid, "pool %s: member %d has no agent", id, i+1)
		case seen[m.Agent.ID()]:
			return nil, nexus.Errorf(nexus.EInvalid, "pool %s: agent %s is named twice (or names the pool)", id, m.Agent.ID())
		case m.Weight < 0:
			return nil, nexus.Errorf(nexus.EInvalid, "pool %s: agent %s has a negative weight", id, m.Agent.ID())
		case m.Backup && m.Weight != 0:
			return nil, nexus.Errorf(nexus.EInvalid, "pool %s: backup agent %s has a weight; backups are asked in order", id, m.Agent.ID())
		}
		seen[m.Agent.ID()] = true
		if m.Backup {
			p.backups = append(p.backups, m.Agent)
		} else {
			p.primary = append(p.primary, &slot{r: m.Agent, weight: max(m.Weight, 1)})
		}
	}
	if len(p.primary) == 0 {
		return nil, nexus.Errorf(nexus.EInvalid, "pool %s has no primary member", id)
	}
	return p, nil
}

// ID returns the pool's id.
func (p *Pool) ID() string { return p.id }

// Process asks the members, in the pool's order, to answer chain[0].
// Each member builds its own prompt. The provenance names the pool as
// Agent, the member that answered as FinalAgent, and every member tried.
func (p *Pool) Process(ctx context.Context, chain []*nexus.Context) (*Response, error) {
	q, err := chainRequest(p.id, chain)
	if err != nil {
		return nil, err
	}
	return p.answer(ctx, q)
}

// Generate asks the members, in the pool's order, to answer prompt.
func (p *Pool) Generate(ctx context.Context, prompt string) (*Response, error) {
	q, err := textRequest(p.id, prompt)
	if err != nil {
		return nil, err
	}
	return p.answer(ctx, q)
}

func (p *Pool) answer(ctx context.Context, q request) (*Response, error) {
	start := time.Now()
	var (
		trail []Attempt
		errs  []*Error
		sent  int
	)
	order := p.order()
	for i, r := range order {
		comp, tried, err := r.run(ctx, q)
		trail = append(trail, tried)
		sent += tried.Requests
		if err == nil {
			return &Response{Content: comp.Content, Provenance: Provenance{
				Agent: p.id, FinalAgent: r.ID(), Model: comp.Model, TokensIn: comp.TokensIn, TokensOut: comp.TokensOut,
				Latency: time.Since(start), Attempts: sent, Trail: trail,
			}}, nil
		}
		e := asError(err)
		errs = append(errs, e)
		if e.Class == ClassCanceled || ctx.Err() != nil {
			break
		}
		if i+1 < len(order) {
			p.log.Warn("failing over", "from", r.ID(), "to", order[i+1].ID(), "class", string(e.Class), "err", e.Message)
		}
	}
	return nil, p.failure(errs, sent)
}

// order returns the members in the order to try them: the primary chosen
// by weighted round robin among the available ones, the other primaries
// (available ones first, by weight), then the backups.
func (p *Pool) order() []*Runner {
	p.mu.Lock()
	defer p.mu.Unlock()
	total := 0
	var best *slot
	avail := make(map[*slot]bool, len(p.primary))
	for _, s := range p.primary {
		if !s.r.available() {
			continue
		}
		avail[s] = true
		s.current += s.weight
		total += s.weight
		if best == nil || s.current > best.current {
			best = s
		}
	}
	rest := make([]*slot, 0, len(p.primary))
	for _, s := range p.primary {
		if s != best {
			rest = append(rest, s)
		}
	}
	slices.SortStableFunc(rest, func(a, b *slot) int {
		if avail[a] != avail[b] {
			if avail[a] {
				return -1
			}
			return 1
		}
		return b.weight - a.weight
	})
	out := make([]*Runner, 0, len(p.primary)+len(p.backups))
	if best != nil {
		best.current -= total
		out = append(out, best.r)
	}
	for _, s := range rest {
		out = append(out, s.r)
	}
	return append(out, p.backups...)
}

// failure is the error of a call that no member answered: of the class
// they share (unavailable if they differ, canceled if the caller stopped
// it), listing each member's failure.
func (p *Pool) failure(errs []*Error, sent int) *Error {
	class := errs[0].Class
	var after time.Duration
	parts := make([]string, len(errs))
	causes := make([]error, len(errs))
	for i, e := range errs {
		if e.Class != class {
			class = ClassUnavailable
		}
		if e.RetryAfter > 0 && (after == 0 || e.RetryAfter < after) {
			after = e.RetryAfter
		}
		parts[i] = e.Error()
		causes[i] = e
	}
	if last := errs[len(errs)-1]; last.Class == ClassCanceled {
		class = ClassCanceled
	}
	msg := fmt.Sprintf("no agent of the pool answered: %s", strings.Join(parts, "; "))
	return &Error{Agent: p.id, Class: class, Message: msg, RetryAfter: after, Attempts: sent, Err: errors.Join(causes...)}
}

// Available reports whether any member might take a call now (see
// [Runner.Available]).
func (p *Pool) Available() bool {
	return slices.ContainsFunc(p.members(), (*Runner).available)
}

// members returns every member, primaries first.
func (p *Pool) members() []*Runner {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Runner, 0, len(p.primary)+len(p.backups))
	for _, s := range p.primary {
		out = append(out, s.r)
	}
	return append(out, p.backups...)
}

// State returns the states of the members, by id, as one JSON object.
func (p *Pool) State() ([]byte, error) {
	s := poolState{Version: stateVersion, Pool: p.id, Members: map[string]json.RawMessage{}}
	for _, r := range p.members() {
		b, err := r.State()
		if err != nil {
			return nil, err
		}
		s.Members[r.ID()] = b
	}
	return json.Marshal(s)
}

// Restore puts back the states of the members from [Pool.State]. Members
// the state does not mention keep theirs, and states of agents no longer
// in the pool are ignored, so a checkpoint survives a change of members.
// If any member's state is refused, nothing changes.
func (p *Pool) Restore(state []byte) error {
	var s poolState
	if err := json.Unmarshal(state, &s); err != nil {
		return nexus.Errorf(nexus.EInvalid, "pool %s: the state is not a pool state: %v", p.id, err)
	}
	if s.Version != stateVersion || s.Pool != p.id {
		return nexus.Errorf(nexus.EInvalid, "pool %s: the state is version %d of pool %q", p.id, s.Version, clip(s.Pool, 128))
	}
	members := p.members()
	states := make([]*runnerState, len(members))
	for i, r := range members {
		if b, ok := s.Members[r.ID()]; ok {
			rs, err := r.parseState(b)
			if err != nil {
				return err
			}
			states[i] = &rs
		}
	}
	for i, r := range members {
		if states[i] != nil {
			r.applyState(*states[i])
		}
	}
	return nil
}
