// Package orchestrator routes contexts to agents and stores their answers.
// It takes a context and its ancestor chain from the store, hands them to
// an agent (one named, or any agent with a capability), and stores the
// answer as a child context whose metadata holds its provenance: the
// agent asked, the agent that finally answered, the model, tokens in and
// out, latency and attempts. Pipelines feed each answer to the next agent
// as a new child; a broadcast asks several agents the same context.
//
// After each answer an agent's state, when it changed, is checkpointed as
// an agent_state context; RestoreStates puts the last checkpoint back,
// after a restart or when an agent recovers.
package orchestrator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
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
	// CheckpointEvery is the least time between two agent_state
	// checkpoints of an agent (default 30s); they are written in the
	// background after an answer, and by Close. Negative: after every
	// answer, before Process returns.
	CheckpointEvery time.Duration
	Logger          *slog.Logger
}

// Orchestrator holds the agents of a node. Its methods are safe for
// concurrent use.
type Orchestrator struct {
	store nexus.Store
	opts  Options
	sem   chan struct{}

	mu     sync.Mutex
	agents map[string]*member
	order  []string // ids in the order added
	rr     map[string]int

	wg sync.WaitGroup // background checkpoints
}

type member struct {
	a       agent.Agent
	caps    []string
	mu      sync.Mutex // serialises checkpoints
	saved   []byte     // the state last checkpointed or restored
	savedAt time.Time
	busy    atomic.Bool // a background checkpoint is running
}

// New returns an orchestrator storing answers in store.
func New(store nexus.Store, opts Options) *Orchestrator {
	if opts.MaxChainDepth <= 0 {
		opts.MaxChainDepth = 32
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 64
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = 30 * time.Second
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

// route finds the agent named id, or, with a capability, takes the agents
// having it in turn.
func (o *Orchestrator) route(id, capability string) (*member, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case id != "" && capability != "":
		return nil, nexus.Errorf(nexus.EInvalid, "ask an agent or a capability, not both")
	case id != "":
		m, ok := o.agents[id]
		if !ok {
			return nil, nexus.Errorf(nexus.ENotFound, "no agent %q on this node (GET /v1/agents lists them)", id)
		}
		return m, nil
	case capability != "":
		var able []string
		for _, aid := range o.order {
			if slices.Contains(o.agents[aid].caps, capability) {
				able = append(able, aid)
			}
		}
		if len(able) == 0 {
			return nil, nexus.Errorf(nexus.ENotFound, "no agent on this node has the capability %q", capability)
		}
		i := o.rr[capability] % len(able)
		o.rr[capability]++
		return o.agents[able[i]], nil
	}
	return nil, nexus.Errorf(nexus.EInvalid, "name an agent or a capability")
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
// ancestors, and its answer is stored as the context's child.
func (o *Orchestrator) Process(ctx context.Context, req Request) (*Answer, error) {
	if req.Type == "" {
		req.Type = nexus.TypeResult
	}
	if !req.Type.Valid() {
		return nil, nexus.Errorf(nexus.EInvalid, "type %q is not a context type", req.Type)
	}
	if req.ContextID.IsZero() {
		return nil, nexus.Errorf(nexus.EInvalid, "context_id is required")
	}
	m, err := o.route(req.Agent, req.Capability)
	if err != nil {
		return nil, err
	}
	return o.process(ctx, m, req.ContextID, req.Type)
}

func (o *Orchestrator) process(ctx context.Context, m *member, id nexus.ID, typ nexus.Type) (*Answer, error) {
	chain, err := o.store.Chain(ctx, id, o.opts.MaxChainDepth)
	if err != nil {
		return nil, err
	}
	select {
	case o.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	resp, err := m.a.Process(ctx, chain)
	<-o.sem
	if err != nil {
		return nil, err
	}
	meta, err := json.Marshal(map[string]any{"provenance": resp.Provenance})
	if err != nil {
		return nil, err
	}
	by := resp.Provenance.FinalAgent
	if by == "" {
		by = m.a.ID()
	}
	c, err := o.store.Put(ctx, nexus.Draft{
		Namespace: chain[0].Namespace, Type: typ, Content: resp.Content,
		Metadata: meta, AgentID: by, ParentID: id,
	})
	if err != nil {
		return nil, fmt.Errorf("store the answer of %s: %w", by, err)
	}
	o.checkpointLater(ctx, m)
	return &Answer{Context: c, Provenance: resp.Provenance}, nil
}

// checkpointLater writes a checkpoint of m after an answer: at once when
// CheckpointEvery is negative, else in the background once it is due.
func (o *Orchestrator) checkpointLater(ctx context.Context, m *member) {
	if o.opts.CheckpointEvery < 0 {
		if err := o.checkpoint(ctx, m); err != nil {
			o.opts.Logger.Warn("agent state checkpoint failed", "agent", m.a.ID(), "err", err)
		}
		return
	}
	m.mu.Lock()
	due := time.Since(m.savedAt) >= o.opts.CheckpointEvery
	m.mu.Unlock()
	if !due || !m.busy.CompareAndSwap(false, true) {
		return
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer m.busy.Store(false)
		if err := o.checkpoint(context.WithoutCancel(ctx), m); err != nil {
			o.opts.Logger.Warn("agent state checkpoint failed", "agent", m.a.ID(), "err", err)
		}
	}()
}

// Close waits for background checkpoints, then checkpoints every agent
// whose state changed since.
func (o *Orchestrator) Close(ctx context.Context) error {
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
// next one answers the previous answer. It returns the answers made
// before any failure, with the error.
func (o *Orchestrator) Pipeline(ctx context.Context, id nexus.ID, agents []string, typ nexus.Type) ([]*Answer, error) {
	if len(agents) == 0 {
		return nil, nexus.Errorf(nexus.EInvalid, "a pipeline needs at least one agent")
	}
	var out []*Answer
	cur := id
	for _, aid := range agents {
		a, err := o.Process(ctx, Request{ContextID: cur, Agent: aid, Type: typ})
		if err != nil {
			return out, fmt.Errorf("pipeline step %d (%s): %w", len(out)+1, aid, err)
		}
		out = append(out, a)
		cur = a.Context.ID
	}
	return out, nil
}

// Broadcast asks every agent the same context at once; each answer is a
// child of it. Answers and errors are in the order of agents.
func (o *Orchestrator) Broadcast(ctx context.Context, id nexus.ID, agents []string, typ nexus.Type) ([]*Answer, []error) {
	out := make([]*Answer, len(agents))
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, aid := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = o.Process(ctx, Request{ContextID: id, Agent: aid, Type: typ})
		}()
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
	if _, err := o.store.Put(ctx, nexus.Draft{Namespace: StateNamespace, Type: nexus.TypeAgentState, Content: content, Metadata: meta, AgentID: m.a.ID()}); err != nil {
		return err
	}
	m.saved, m.savedAt = state, time.Now()
	return nil
}

// Checkpoint stores one agent's state now, if it changed.
func (o *Orchestrator) Checkpoint(ctx context.Context, id string) error {
	m, err := o.route(id, "")
	if err != nil {
		return err
	}
	return o.checkpoint(ctx, m)
}

// RestoreState puts back an agent's last agent_state checkpoint, if it
// has one; it says whether it did.
func (o *Orchestrator) RestoreState(ctx context.Context, id string) (bool, error) {
	m, err := o.route(id, "")
	if err != nil {
		return false, err
	}
	page, err := o.store.List(ctx, nexus.Filter{Namespace: StateNamespace, Type: nexus.TypeAgentState, AgentID: id, Limit: 1})
	if err != nil || len(page.Contexts) == 0 {
		return false, err
	}
	c := page.Contexts[0]
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
