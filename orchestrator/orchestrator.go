// Package orchestrator routes contexts to agents and stores their answers.
// It takes a context and its ancestor chain from the store, hands them to
// an agent (one named, or any agent with a capability), and stores the
// answer as a child context whose metadata holds its provenance: the
// agent asked, the agent that finally answered, the model, tokens in and
// out, latency and attempts. Generate answers a prompt alone and stores
// the answer likewise, as a root or under a parent given. Pipelines feed each answer to the next agent
// as a new child; a broadcast asks several agents the same context.
//
// An agent's state, when an answer changed it, is checkpointed as an
// agent_state context within a bound (a few seconds), the answers
// meanwhile sharing one checkpoint; Close writes the pending ones.
// RestoreStates puts the last checkpoint back, after a restart or when an
// agent recovers. Suspend stops the checkpoints, for a node that can no
// longer write (it stopped leading its cluster), until Resume.
package orchestrator

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

// StateNamespace holds the agent_state checkpoints.
const StateNamespace = "agents"

// Options configure an orchestrator.
type Options struct {
	// MaxChainDepth is how many contexts, the asked one included, go into
	// a prompt (default 32).
	MaxChainDepth int
	// MaxConcurrent bounds the agent calls in flight (default 64); more
	// wait their turn.
	MaxConcurrent int
	// CheckpointEvery bounds how long an answer's change to an agent's
	// state waits for its agent_state checkpoint (default 2s): the first
	// answer after a checkpoint schedules the next one that much later,
	// in the background, and the answers until then share it. Close
	// writes the pending ones. Negative: after every answer, before
	// Process returns.
	CheckpointEvery time.Duration
	Logger          *slog.Logger
}

// Orchestrator holds the agents of a node. Its methods are safe for
// concurrent use.
//
// A call by capability goes to the agents having it in turn; an agent
// that reports itself unavailable (breaker open, auth_failed) is asked
// only after the others, and when the agent asked cannot answer (it is
// unreachable, overloaded, rate limited, timing out, ...) the next one is
// asked. The provenance's trail lists every agent tried.
type Orchestrator struct {
	store nexus.Store
	opts  Options
	sem   chan struct{}

	mu     sync.Mutex
	agents map[string]*member
	order  []string // ids in the order added
	rr     map[string]int

	wg        sync.WaitGroup // scheduled and running background checkpoints
	closed    bool           // by Close, under mu: checkpoints are no longer scheduled
	suspended bool           // by Suspend until Resume, under mu: no checkpoint is written
}

type member struct {
	a     agent.Agent
	caps  []string
	mu    sync.Mutex // serialises checkpoints
	saved []byte     // the state last checkpointed or restored

	pending *time.Timer // the scheduled checkpoint, under the orchestrator's mu
}

// DefaultCheckpointEvery is the default of [Options.CheckpointEvery].
const DefaultCheckpointEvery = 2 * time.Second

// New returns an orchestrator storing answers in store.
func New(store nexus.Store, opts Options) *Orchestrator {
	if opts.MaxChainDepth <= 0 {
		opts.MaxChainDepth = 32
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 64
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = DefaultCheckpointEvery
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Orchestrator{store: store, opts: opts, sem: make(chan struct{}, opts.MaxConcurrent),
		agents: map[string]*member{}, rr: map[string]int{}}
}

// Add makes an agent (or a pool) routable by its id and capabilities.
func (o *Orchestrator) Add(a agent.Agent, capabilities []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, dup := o.agents[a.ID()]; dup {
		return nexus.Errorf(nexus.EConflict, "agent %q is already added", a.ID())
	}
	o.agents[a.ID()] = &member{a: a, caps: slices.Clone(capabilities)}
	o.order = append(o.order, a.ID())
	return nil
}

// Info describes a routable agent.
type Info struct {
	ID           string   `json:"id"`
	Capabilities []string `json:"capabilities"`
}

// Agents lists the routable agents in the order they were added.
func (o *Orchestrator) Agents() []Info {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]Info, 0, len(o.order))
	for _, id := range o.order {
		caps := slices.Clone(o.agents[id].caps)
		if caps == nil {
			caps = []string{}
		}
		out = append(out, Info{ID: id, Capabilities: caps})
	}
	return out
}

// Len is the number of routable agents.
func (o *Orchestrator) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.order)
}

// availability is the health an agent may report: [agent.Runner] and
// [agent.Pool] do.
type availability interface{ Available() bool }

// available reports whether m might take a call now; an agent that does
// not say is taken to.
func (m *member) available() bool {
	a, ok := m.a.(availability)
	return !ok || a.Available()
}

// member finds the agent named id.
func (o *Orchestrator) member(id string) (*member, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.memberLocked(id)
}

func (o *Orchestrator) memberLocked(id string) (*member, error) {
	m, ok := o.agents[id]
	if !ok {
		return nil, nexus.Errorf(nexus.ENotFound, "no agent %q on this node (GET /v1/agents lists them)", id)
	}
	return m, nil
}

// members finds every agent of ids, or fails on the first unknown one.
func (o *Orchestrator) members(ids []string) ([]*member, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]*member, len(ids))
	for i, id := range ids {
		m, err := o.memberLocked(id)
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

// Has reports whether the orchestrator holds an agent or pool named id.
func (o *Orchestrator) Has(id string) bool {
	_, err := o.member(id)
	return err == nil
}

// route returns the agents to ask, in order: the agent named id, or,
// with a capability, every agent having it, starting with the next in
// turn, those available (breaker not open, not auth_failed) first.
func (o *Orchestrator) route(id, capability string) ([]*member, error) {
	switch {
	case id != "" && capability != "":
		return nil, nexus.Errorf(nexus.EInvalid, "ask an agent or a capability, not both")
	case id != "":
		m, err := o.member(id)
		if err != nil {
			return nil, err
		}
		return []*member{m}, nil
	case capability == "":
		return nil, nexus.Errorf(nexus.EInvalid, "name an agent or a capability")
	}
	o.mu.Lock()
	var able []*member
	for _, aid := range o.order {
		if slices.Contains(o.agents[aid].caps, capability) {
			able = append(able, o.agents[aid])
		}
	}
	if len(able) == 0 {
		o.mu.Unlock()
		return nil, nexus.Errorf(nexus.ENotFound, "no agent on this node has the capability %q", capability)
	}
	i := o.rr[capability] % len(able)
	o.rr[capability]++
	o.mu.Unlock()
	var up, down []*member
	for _, m := range slices.Concat(able[i:], able[:i]) {
		if m.available() {
			up = append(up, m)
		} else {
			down = append(down, m)
		}
	}
	return append(up, down...), nil
}

// failsOver reports whether a call that failed with class c goes on to
// the next agent able to answer: when the agent could not be reached or
// could not answer now. A request the provider refused (bad_request) would
// be refused elsewhere too, and a canceled call is over.
func failsOver(c agent.Class) bool {
	return c != agent.ClassBadRequest && c != agent.ClassCanceled
}

// ask calls the agents of ms in order until one answers, going on to the
// next when one fails in a way [failsOver] allows. When it went on, the
// provenance names the first agent asked as Agent, and its trail starts
// with the agents that failed. It returns the member that answered.
func (o *Orchestrator) ask(ctx context.Context, ms []*member, call func(agent.Agent) (*agent.Response, error)) (*agent.Response, *member, error) {
	select {
	case o.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	defer func() { <-o.sem }()
	start := time.Now()
	var (
		trail []agent.Attempt
		sent  int
	)
	for i, m := range ms {
		began := time.Now()
		resp, err := call(m.a)
		if err == nil {
			if len(trail) > 0 {
				p := &resp.Provenance
				p.Agent, p.Trail = ms[0].a.ID(), append(trail, p.Trail...)
				p.Attempts += sent
				p.Latency = time.Since(start)
			}
			return resp, m, nil
		}
		var e *agent.Error
		if i+1 == len(ms) || !errors.As(err, &e) || !failsOver(e.Class) || ctx.Err() != nil {
			return nil, nil, err
		}
		trail = append(trail, agent.Attempt{Agent: m.a.ID(), Requests: e.Attempts, Class: e.Class, Error: e.Message, Latency: time.Since(began)})
		sent += e.Attempts
		o.opts.Logger.Warn("agent failed; asking the next one", "from", m.a.ID(), "to", ms[i+1].a.ID(), "class", string(e.Class), "err", e.Message)
	}
	return nil, nil, nexus.Errorf(nexus.ENotFound, "no agent to ask")
}

// Request asks for one answer.
type Request struct {
	ContextID  nexus.ID   `json:"context_id"`
	Agent      string     `json:"agent,omitempty"`
	Capability string     `json:"capability,omitempty"`
	Type       nexus.Type `json:"type,omitempty"` // of the answer; default result
}

// Answer is a stored answer and where it came from.
type Answer struct {
	Context    *nexus.Context   `json:"context"`
	Provenance agent.Provenance `json:"provenance"`
}

// Process answers one context: the agent gets the context and its
// ancestors, and its answer is stored as the context's child. Asked by
// capability, it fails over to the next agent having it when one could
// not answer (see [Orchestrator] for the order).
func (o *Orchestrator) Process(ctx context.Context, req Request) (*Answer, error) {
	typ, err := answerType(req.Type)
	if err != nil {
		return nil, err
	}
	if req.ContextID.IsZero() {
		return nil, nexus.Errorf(nexus.EInvalid, "context_id is required")
	}
	ms, err := o.route(req.Agent, req.Capability)
	if err != nil {
		return nil, err
	}
	return o.process(ctx, ms, req.ContextID, typ)
}

// answerType is the type of an answer: typ, result by default.
func answerType(typ nexus.Type) (nexus.Type, error) {
	if typ == "" {
		return nexus.TypeResult, nil
	}
	if !typ.Valid() {
		return "", nexus.Errorf(nexus.EInvalid, "type %q is not a context type", typ)
	}
	return typ, nil
}

func (o *Orchestrator) process(ctx context.Context, ms []*member, id nexus.ID, typ nexus.Type) (*Answer, error) {
	chain, err := o.store.Chain(ctx, id, o.opts.MaxChainDepth)
	if err != nil {
		return nil, err
	}
	if err := o.mayStore(ctx, chain[0].Namespace, typ); err != nil {
		return nil, err
	}
	resp, m, err := o.ask(ctx, ms, func(a agent.Agent) (*agent.Response, error) { return a.Process(ctx, chain) })
	if err != nil {
		return nil, err
	}
	return o.keep(ctx, m, resp, nexus.Draft{Namespace: chain[0].Namespace, Type: typ, ParentID: id})
}

// writeChecker is a store that checks, before any write, whether the
// caller of ctx may write a context of type t in namespace ns (the
// node's store behind its access checks is one).
type writeChecker interface {
	CheckWrite(ctx context.Context, ns string, t nexus.Type) error
}

// mayStore fails before any agent is asked when its answer, of type t
// in namespace ns, could not be stored for the caller of ctx.
func (o *Orchestrator) mayStore(ctx context.Context, ns string, t nexus.Type) error {
	if w, ok := o.store.(writeChecker); ok {
		return w.CheckWrite(ctx, ns, t)
	}
	return nil
}

// keep stores resp, the answer of m, as d with its provenance.
func (o *Orchestrator) keep(ctx context.Context, m *member, resp *agent.Response, d nexus.Draft) (*Answer, error) {
	meta, err := json.Marshal(map[string]any{"provenance": resp.Provenance})
	if err != nil {
		return nil, err
	}
	d.AgentID = cmp.Or(resp.Provenance.FinalAgent, m.a.ID())
	d.Content, d.Metadata = resp.Content, meta
	c, err := o.store.Put(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("store the answer of %s: %w", d.AgentID, err)
	}
	o.checkpointLater(ctx, m)
	return &Answer{Context: c, Provenance: resp.Provenance}, nil
}

// GenerateRequest asks for an answer to a prompt that stands alone.
type GenerateRequest struct {
	Agent      string `json:"agent,omitempty"`
	Capability string `json:"capability,omitempty"`
	Prompt     string `json:"prompt"`
	// Namespace of the answer; default the parent's, else
	// [nexus.DefaultNamespace].
	Namespace string     `json:"namespace,omitempty"`
	Type      nexus.Type `json:"type,omitempty"`     // of the answer; default result
	ParentID  nexus.ID   `json:"parent_id,omitzero"` // the answer's parent; none: a root
}

// Generate asks an agent (or, by capability, the agents having it, as
// Process does) to answer a prompt alone, without a chain, and stores the
// answer as a new context with its provenance: a root, or a child of
// ParentID. The prompt is checked, and the parent looked up, before any
// agent is asked.
func (o *Orchestrator) Generate(ctx context.Context, req GenerateRequest) (*Answer, error) {
	typ, err := answerType(req.Type)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Prompt) == "" {
		return nil, nexus.Errorf(nexus.EInvalid, "prompt is required")
	}
	ms, err := o.route(req.Agent, req.Capability)
	if err != nil {
		return nil, err
	}
	ns := req.Namespace
	if !req.ParentID.IsZero() {
		parent, err := o.store.Get(ctx, req.ParentID)
		if err != nil {
			return nil, fmt.Errorf("parent_id: %w", err)
		}
		ns = cmp.Or(ns, parent.Namespace)
	}
	ns = cmp.Or(ns, nexus.DefaultNamespace)
	if err := nexus.ValidateNamespace(ns); err != nil {
		return nil, err
	}
	if err := o.mayStore(ctx, ns, typ); err != nil {
		return nil, err
	}
	resp, m, err := o.ask(ctx, ms, func(a agent.Agent) (*agent.Response, error) { return a.Generate(ctx, req.Prompt) })
	if err != nil {
		return nil, err
	}
	return o.keep(ctx, m, resp, nexus.Draft{Namespace: ns, Type: typ, ParentID: req.ParentID})
}

// checkpointLater sees that m's state is checkpointed after an answer:
// at once when CheckpointEvery is negative or the orchestrator is closed,
// else by the checkpoint scheduled CheckpointEvery from now, unless one is
// already.
func (o *Orchestrator) checkpointLater(ctx context.Context, m *member) {
	o.mu.Lock()
	if o.suspended {
		o.mu.Unlock()
		return
	}
	now := o.opts.CheckpointEvery < 0 || o.closed
	if !now && m.pending == nil {
		o.scheduleLocked(m)
	}
	o.mu.Unlock()
	if now {
		o.checkpointLogged(context.WithoutCancel(ctx), m)
	}
}

// scheduleLocked schedules a checkpoint of m CheckpointEvery from now.
// A failed one is scheduled again: the state it missed is still unsaved.
func (o *Orchestrator) scheduleLocked(m *member) {
	o.wg.Add(1)
	m.pending = time.AfterFunc(o.opts.CheckpointEvery, func() {
		defer o.wg.Done()
		o.mu.Lock()
		m.pending = nil
		o.mu.Unlock()
		if !o.checkpointLogged(context.Background(), m) {
			o.mu.Lock()
			if !o.closed && !o.suspended && m.pending == nil {
				o.scheduleLocked(m)
			}
			o.mu.Unlock()
		}
	})
}

// checkpointLogged checkpoints m, logging a failure; it reports whether
// it succeeded.
func (o *Orchestrator) checkpointLogged(ctx context.Context, m *member) bool {
	if err := o.checkpoint(ctx, m); err != nil {
		o.opts.Logger.Warn("agent state checkpoint failed", "agent", m.a.ID(), "err", err)
		return false
	}
	return true
}

// Suspend cancels the scheduled checkpoints and waits for those running,
// without writing what they would have; until Resume, answers schedule
// none and a failed one is not tried again. A node of a cluster suspends
// its orchestrator when it stops leading: its writes would fail, and the
// next leader restores the agents' states from the store.
func (o *Orchestrator) Suspend() {
	o.mu.Lock()
	o.suspended = true
	for _, m := range o.agents {
		if m.pending != nil && m.pending.Stop() {
			o.wg.Done()
		}
		m.pending = nil
	}
	o.mu.Unlock()
	o.wg.Wait()
}

// Resume lets answers schedule checkpoints again after Suspend.
func (o *Orchestrator) Resume() {
	o.mu.Lock()
	o.suspended = false
	o.mu.Unlock()
}

// Close cancels the scheduled checkpoints, waits for those running, then
// checkpoints every agent whose state changed since. Answers after Close
// are checkpointed at once.
func (o *Orchestrator) Close(ctx context.Context) error {
	o.mu.Lock()
	o.closed = true
	for _, m := range o.agents {
		if m.pending != nil && m.pending.Stop() {
			o.wg.Done()
		}
		m.pending = nil
	}
	o.mu.Unlock()
	o.wg.Wait()
	var first error
	for _, info := range o.Agents() {
		if err := o.Checkpoint(ctx, info.ID); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Pipeline runs the agents in order: the first answers the context, each
// next one answers the previous answer. Every agent must exist before
// any is asked. It returns the answers made before any failure, with the
// error.
func (o *Orchestrator) Pipeline(ctx context.Context, id nexus.ID, agents []string, typ nexus.Type) ([]*Answer, error) {
	if len(agents) == 0 {
		return nil, nexus.Errorf(nexus.EInvalid, "a pipeline needs at least one agent")
	}
	typ, err := answerType(typ)
	if err != nil {
		return nil, err
	}
	ms, err := o.members(agents)
	if err != nil {
		return nil, err
	}
	var out []*Answer
	cur := id
	for i, m := range ms {
		a, err := o.process(ctx, ms[i:i+1], cur, typ)
		if err != nil {
			return out, fmt.Errorf("pipeline step %d (%s): %w", len(out)+1, m.a.ID(), err)
		}
		out = append(out, a)
		cur = a.Context.ID
	}
	return out, nil
}

// Broadcast asks every agent the same context at once; each answer is a
// child of it. Answers and errors are in the order of agents. If an agent
// is unknown (or the type invalid), none is asked and every error is that
// one.
func (o *Orchestrator) Broadcast(ctx context.Context, id nexus.ID, agents []string, typ nexus.Type) ([]*Answer, []error) {
	out := make([]*Answer, len(agents))
	errs := make([]error, len(agents))
	typ, err := answerType(typ)
	var ms []*member
	if err == nil {
		ms, err = o.members(agents)
	}
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return out, errs
	}
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			out[i], errs[i] = o.process(ctx, []*member{m}, id, typ)
		})
	}
	wg.Wait()
	return out, errs
}

// checkpoint stores the agent's state as an agent_state context when it
// changed since the last checkpoint.
func (o *Orchestrator) checkpoint(ctx context.Context, m *member) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	state, err := m.a.State()
	if err != nil || len(state) == 0 || bytes.Equal(state, m.saved) {
		return err
	}
	content, enc := string(state), "text"
	if !utf8.Valid(state) {
		content, enc = base64.StdEncoding.EncodeToString(state), "base64"
	}
	meta, _ := json.Marshal(map[string]any{"agent_state": map[string]any{"encoding": enc}})
	// The node writes its agents' state, whoever's request led to it: a
	// checkpoint with a principal is never restored.
	ctx = nexus.WithPrincipal(ctx, nil)
	if _, err := o.store.Put(ctx, nexus.Draft{Namespace: StateNamespace, Type: nexus.TypeAgentState, Content: content, Metadata: meta, AgentID: m.a.ID()}); err != nil {
		return err
	}
	m.saved = state
	return nil
}

// Checkpoint stores one agent's state now, if it changed.
func (o *Orchestrator) Checkpoint(ctx context.Context, id string) error {
	m, err := o.member(id)
	if err != nil {
		return err
	}
	return o.checkpoint(ctx, m)
}

// RestoreState puts back an agent's last agent_state checkpoint, if it
// has one; it says whether it did.
func (o *Orchestrator) RestoreState(ctx context.Context, id string) (bool, error) {
	m, err := o.member(id)
	if err != nil {
		return false, err
	}
	c, err := LastCheckpoint(nexus.WithPrincipal(ctx, nil), o.store, id)
	if err != nil || c == nil {
		return false, err
	}
	state := []byte(c.Content)
	var meta struct {
		State struct {
			Encoding string `json:"encoding"`
		} `json:"agent_state"`
	}
	if json.Unmarshal(c.Metadata, &meta) == nil && meta.State.Encoding == "base64" {
		if state, err = base64.StdEncoding.DecodeString(c.Content); err != nil {
			return false, fmt.Errorf("agent_state %s of %s: %w", c.ID, id, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.a.Restore(state); err != nil {
		return false, fmt.Errorf("restore %s from agent_state %s: %w", id, c.ID, err)
	}
	m.saved = state
	return true, nil
}

// LastCheckpoint returns the newest agent_state checkpoint of agent id
// that the node wrote (one with no principal), or nil if there is none.
// A checkpoint a principal wrote (a client got one past the checks, or a
// build before them let it) is never one: restoring it would feed a
// forged state to the agent, for a command agent to its program's stdin.
func LastCheckpoint(ctx context.Context, store nexus.Store, id string) (*nexus.Context, error) {
	f := nexus.Filter{Namespace: StateNamespace, Type: nexus.TypeAgentState, AgentID: id, Limit: 16}
	for {
		page, err := store.List(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, c := range page.Contexts {
			if c.Principal == "" {
				return c, nil
			}
		}
		if page.NextCursor == "" {
			return nil, nil
		}
		f.Cursor = page.NextCursor
	}
}

// RestoreStates restores every agent that has a checkpoint and returns
// how many it restored.
func (o *Orchestrator) RestoreStates(ctx context.Context) (int, error) {
	n := 0
	for _, info := range o.Agents() {
		ok, err := o.RestoreState(ctx, info.ID)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}
