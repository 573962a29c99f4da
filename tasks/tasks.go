// Package tasks is the work queue of agents that Nexus does not run (a
// coding assistant, a script on another machine): they register, hold a
// lease they renew with heartbeats, claim tasks with a lease of their own,
// and complete them with a result context or fail them. When an agent's
// lease lapses (it crashed, hung, or lost the network) its claims go back
// to the queue and a healthy agent takes them.
//
// Everything durable lives in the store, so nothing here can be lost or
// done twice by a crash. The children of a task are its journal:
//
//   - a task is an instruction context whose metadata holds
//     {"task": {"capability": ..., "max_attempts": ...}}; its id is the
//     task's id;
//   - a claim is an observation context, child of the task, with
//     {"task": {"id": ..., "claim": ..., "claimed": true}}, written
//     before the claim is given out;
//   - a completion is a result context, child of the task, whose metadata
//     holds {"task": {"id": ..., "claim": ...}}: the task is done exactly
//     when such a child exists, and the queue writes it once, under the
//     claim that is current;
//   - a failed attempt is an error context, child of the task, with
//     {"task": {"id": ..., "claim": ..., "final": ...}}; so is a claim
//     lost to a lapsed lease.
//
// Claims are numbered 1, 2, ... per task, and the number is the attempt's:
// a task fails once max_attempts claims were made. A claim is given out
// as a token (128 random bits) that only its claimer gets: completing or
// failing the task takes it, and only the principal that claimed may.
// The claim's journal entry holds a SHA-256 of the token (never the token:
// readers of the namespace see the entry), the agent, its principal and
// its registration (name, capabilities).
//
// Leases live in memory. Open (a restart) ends them all: every
// unfinished task is queued again, agents register again when a
// heartbeat answers not_found, the numbering goes on from the highest
// claim journaled, and a claim that was held when the queue stopped
// counts as an attempt lost. Reload (a queue taken over by another
// process while its agents live on: the new leader of a cluster) keeps
// them instead: a claim held when the queue was last served stays held by
// the same agent under the same token, with a whole claim lease from the
// reload, and its agent is registered again with a whole agent lease, so
// that no lease lapses because of the takeover. A claim journaled
// without a token's hash (by an earlier version) is lost as at a restart.
// A claim is fenced by its token: an agent whose claim lapsed, before a
// restart or not, cannot complete the task another agent has since
// claimed.
//
// The queue applies the access of the principal in a request's context
// (nexus.PrincipalFrom) to what it serves from memory: tasks of a
// namespace the principal may not read are not found, and an agent is
// only given tasks of namespaces its principal may write. An agent id
// belongs to the principal that registered it. Its writes go through the
// store it is given, which checks them (the node gives it the authz
// store). A result being
// written holds the task past its lease, as a write cannot be recalled.
package tasks

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
)

// Task states.
const (
	Queued     = "queued"     // waiting for an agent
	Claimed    = "claimed"    // an agent holds it under a lease
	Completing = "completing" // its result is being written
	Done       = "done"       // a result context holds the answer
	Failed     = "failed"     // every attempt failed, or an agent gave up
)

// Agent states.
const (
	Active = "active" // its lease is current
	Lost   = "lost"   // its lease lapsed; its claims went back to the queue
)

// Options configure a queue. Zero fields take the defaults.
type Options struct {
	// AgentLease is how long an agent stays active without a heartbeat
	// (default 30s).
	AgentLease time.Duration
	// ClaimLease is how long a claim holds without a heartbeat of its
	// agent (default 60s); each heartbeat renews it.
	ClaimLease time.Duration
	// MaxAttempts is the number of claims a task gets before it fails
	// (default 3).
	MaxAttempts int
	// MaxQueued bounds the tasks waiting for an agent: Create refuses a
	// task past it with code unavailable (0: no bound).
	MaxQueued int
	// Now is the clock (default time.Now), injectable for tests.
	Now func() time.Time
	// OnEvent, if set, is told of agent status changes and task
	// transitions, in order. It must not block.
	OnEvent func(Event)
	Logger  *slog.Logger
}

func (o *Options) setDefaults() {
	if o.AgentLease <= 0 {
		o.AgentLease = 30 * time.Second
	}
	if o.ClaimLease <= 0 {
		o.ClaimLease = 60 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Event is a change of an agent's status or of a task's state.
type Event struct {
	Kind   string    `json:"kind"` // "agent" or "task"
	ID     string    `json:"id"`
	Status string    `json:"status"`
	Agent  string    `json:"agent,omitempty"` // for a task: the agent concerned
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Agent is an external agent as the queue knows it.
type Agent struct {
	ID            string     `json:"id"`
	Name          string     `json:"name,omitempty"`
	Capabilities  []string   `json:"capabilities"`
	Status        string     `json:"status"`
	Registered    time.Time  `json:"registered"`
	LastHeartbeat time.Time  `json:"last_heartbeat"`
	LeaseExpires  time.Time  `json:"lease_expires"`
	Claims        []nexus.ID `json:"claims"`
	// Principal registered the agent; only it may heartbeat, claim,
	// complete and fail as the agent. Empty: the node.
	Principal string `json:"principal,omitempty"`
}

// Task is one unit of work.
type Task struct {
	ID          nexus.ID  `json:"id"`
	Namespace   string    `json:"namespace"`
	Capability  string    `json:"capability,omitempty"`
	Content     string    `json:"content"`
	Creator     string    `json:"creator,omitempty"`
	Created     time.Time `json:"created"`
	Status      string    `json:"status"`
	Attempts    int       `json:"attempts"` // claims made so far
	MaxAttempts int       `json:"max_attempts"`
	ClaimedBy   string    `json:"claimed_by,omitempty"`
	Attempt     int       `json:"attempt,omitempty"` // the number of the current (or last) claim
	// Claim is the token of the claim, for completing or failing the
	// task: only the answer to the claim itself carries it.
	Claim        string    `json:"claim,omitempty"`
	LeaseExpires time.Time `json:"lease_expires,omitzero"`
	Result       nexus.ID  `json:"result,omitzero"`
	Error        string    `json:"error,omitempty"`
}

// NewTask is what a task is created from.
type NewTask struct {
	Namespace   string   `json:"namespace,omitempty"`
	Content     string   `json:"content"`
	Capability  string   `json:"capability,omitempty"`
	ParentID    nexus.ID `json:"parent_id,omitzero"`
	Creator     string   `json:"agent_id,omitempty"`
	MaxAttempts int      `json:"max_attempts,omitempty"`
}

// Answer is what an agent completes a task with.
type Answer struct {
	Content  string          `json:"content"`
	Type     nexus.Type      `json:"type,omitempty"` // default result
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// taskMeta is the "task" key of the metadata of task, result and error
// contexts.
type taskMeta struct {
	ID          nexus.ID `json:"id,omitzero"`
	Capability  string   `json:"capability,omitempty"`
	MaxAttempts int      `json:"max_attempts,omitempty"`
	Claim       int      `json:"claim,omitempty"`
	Claimed     bool     `json:"claimed,omitempty"` // a claim's journal entry
	Final       bool     `json:"final,omitempty"`
	// Holder is, in a claim's journal entry, who holds the claim: what a
	// queue that takes over (Reload) needs to keep it held.
	Holder *claimHolder `json:"holder,omitempty"`
}

// claimHolder is the holder of a claim as its journal entry records it.
type claimHolder struct {
	Agent        string   `json:"agent"`
	Principal    string   `json:"principal,omitempty"` // "": the node
	Name         string   `json:"name,omitempty"`      // the agent's registration
	Capabilities []string `json:"capabilities"`
	// TokenSHA256 is the hex SHA-256 of the claim's token.
	TokenSHA256 string `json:"token_sha256"`
}

// Queue holds the tasks and the external agents. Its methods are safe
// for concurrent use.
type Queue struct {
	store nexus.Store
	opts  Options

	// gate is held shared by every operation that changes the queue, for
	// its whole length, and exclusively by Reload.
	gate sync.RWMutex

	mu       sync.Mutex
	paused   error // set: operations that change the queue answer it
	tasks    map[nexus.ID]*Task
	order    []nexus.ID // queued tasks, oldest first (may hold stale ids)
	agents   map[string]*Agent
	claiming map[nexus.ID]bool   // tasks whose claim is being journaled
	holders  map[nexus.ID]holder // the current claim of each claimed task
	pending  int                 // tasks being created, counted against MaxQueued
}

// Open returns a queue over store, rebuilt from the tasks it holds and
// their journals (claims, failed attempts, results): unfinished tasks are
// queued again, and the claims held when the queue stopped count as
// attempts lost.
func Open(ctx context.Context, store nexus.Store, opts Options) (*Queue, error) {
	opts.setDefaults()
	q := &Queue{store: store, opts: opts}
	st, err := q.load(ctx, false)
	if err != nil {
		return nil, err
	}
	q.tasks, q.order, q.agents, q.claiming, q.holders = st.tasks, st.order, st.agents, map[nexus.ID]bool{}, st.holders
	return q, nil
}

// Reload rebuilds the queue in place from the store, for a process that
// takes the queue over while its agents live on (the new leader of a
// cluster, whose store holds every write of the one before). Unlike
// Open, it keeps the claims held: each stays with its agent under the
// same token, with a whole claim lease from now, and each agent holding
// one is registered again (as its newest claim's journal entry says) with
// a whole agent lease; other agents register again when a heartbeat
// answers not_found. Claims journaled without a token's hash are lost as
// at a restart. Reload waits for the operations in flight, and those that
// arrive meanwhile wait for it; once it succeeds the queue serves again
// if it was paused. On error the queue is left as it was.
func (q *Queue) Reload(ctx context.Context) error {
	q.gate.Lock()
	st, err := q.load(ctx, true)
	if err != nil {
		q.gate.Unlock()
		return err
	}
	q.mu.Lock()
	q.tasks, q.order, q.agents, q.claiming, q.holders = st.tasks, st.order, st.agents, map[nexus.ID]bool{}, st.holders
	q.paused = nil
	q.mu.Unlock()
	q.gate.Unlock()
	for _, a := range st.restored {
		q.emit(Event{Kind: "agent", ID: a, Status: Active, Reason: "taken over with its claims"})
	}
	return nil
}

// Pause makes the operations that change the queue (Register, Heartbeat,
// Create, Claim, Complete, Fail, Reap) answer err, and change nothing,
// until the next Reload that succeeds: a node of a cluster pauses its
// queue while it does not lead. Reads still answer, from the queue as it
// was.
func (q *Queue) Pause(err error) {
	q.mu.Lock()
	q.paused = err
	q.mu.Unlock()
}

// enter lets an operation that changes the queue in, unless the queue is
// paused; the caller leaves with q.gate.RUnlock.
func (q *Queue) enter() error {
	q.gate.RLock()
	q.mu.Lock()
	err := q.paused
	q.mu.Unlock()
	if err != nil {
		q.gate.RUnlock()
	}
	return err
}

// loaded is a queue's state read from the store.
type loaded struct {
	tasks    map[nexus.ID]*Task
	order    []nexus.ID
	agents   map[string]*Agent
	holders  map[nexus.ID]holder
	restored []string // the agents registered again with their claims, by id
}

// load reads the tasks and their journals; keep keeps the claims held
// (Reload), else they count as attempts lost (Open).
func (q *Queue) load(ctx context.Context, keep bool) (*loaded, error) {
	st := &loaded{tasks: map[nexus.ID]*Task{}, agents: map[string]*Agent{}, holders: map[nexus.ID]holder{}}
	now := q.opts.Now()
	newest := map[string]nexus.ID{} // the newest held claim's entry of each agent
	f := nexus.Filter{Type: nexus.TypeInstruction, Order: nexus.Oldest, Limit: nexus.MaxLimit}
	for {
		page, err := q.store.List(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("rebuild the task queue: %w", err)
		}
		for _, c := range page.Contexts {
			m, ok := metaOf(c)
			if !ok {
				continue
			}
			t, held, err := q.rebuild(ctx, c, m, keep)
			if err != nil {
				return nil, err
			}
			st.tasks[t.ID] = t
			if t.Status == Queued {
				st.order = append(st.order, t.ID)
			}
			if held != nil {
				st.hold(t, held, now, q.opts, newest)
			}
		}
		if page.NextCursor == "" {
			break
		}
		f.Cursor = page.NextCursor
	}
	for id := range st.agents {
		st.restored = append(st.restored, id)
	}
	slices.Sort(st.restored)
	return st, nil
}

// hold keeps task t claimed by the holder its claim's journal entry
// names, with a whole lease from now, and registers the agent again (as
// its newest held claim's entry says).
func (st *loaded) hold(t *Task, held *journaled, now time.Time, opts Options, newest map[string]nexus.ID) {
	h := held.holder
	t.Status, t.ClaimedBy, t.Attempt = Claimed, h.Agent, t.Attempts
	t.LeaseExpires = now.Add(opts.ClaimLease)
	st.holders[t.ID] = holder{sum: held.sum, principal: h.Principal}
	a := st.agents[h.Agent]
	if a == nil {
		a = &Agent{ID: h.Agent, Status: Active, Registered: now, LastHeartbeat: now, LeaseExpires: now.Add(opts.AgentLease)}
		st.agents[h.Agent] = a
	}
	a.Claims = append(a.Claims, t.ID)
	if prev, ok := newest[h.Agent]; !ok || held.entry.Compare(prev) > 0 {
		newest[h.Agent] = held.entry
		a.Name, a.Principal = h.Name, h.Principal
		a.Capabilities = slices.Clone(h.Capabilities)
		if a.Capabilities == nil {
			a.Capabilities = []string{}
		}
	}
}

// journaled is a claim held when the queue was last served, as its
// journal entry records it.
type journaled struct {
	entry  nexus.ID // the journal entry's id
	holder claimHolder
	sum    [sha256.Size]byte
}

// rebuild finds a task's state in its children: claims, failed
// attempts and the result. Attempts are the highest claim number
// journaled, so numbering goes on after it. A claim with no outcome was
// held when the queue stopped: with keep, and a holder journaled with
// its token's hash, it is returned (the caller keeps it held); else it
// counts as an attempt lost.
func (q *Queue) rebuild(ctx context.Context, c *nexus.Context, m taskMeta, keep bool) (*Task, *journaled, error) {
	t := taskOf(c, m)
	kids, err := q.store.Children(ctx, c.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("rebuild task %s: %w", c.ID, err)
	}
	settled := map[int]bool{}          // claims with a recorded outcome
	claims := map[int]*nexus.Context{} // the journal entry of each claim (the newest)
	for _, k := range kids {
		km, ok := metaOf(k)
		if !ok || km.ID != c.ID {
			continue
		}
		t.Attempts = max(t.Attempts, km.Claim)
		switch {
		case km.Claimed:
			if prev := claims[km.Claim]; prev == nil || k.ID.Compare(prev.ID) > 0 {
				claims[km.Claim] = k
			}
			continue
		case k.Type == nexus.TypeError:
			t.Error = k.Content
			if km.Final {
				t.Status = Failed
			}
		default:
			t.Status, t.Result, t.Error = Done, k.ID, ""
			return t, nil, nil
		}
		settled[km.Claim] = true
	}
	if t.Status != Queued {
		return t, nil, nil
	}
	held := t.Attempts > 0 && !settled[t.Attempts]
	if held && keep {
		if j := journalOf(claims[t.Attempts]); j != nil {
			return t, j, nil
		}
	}
	const why = "the queue stopped while it was held"
	if held {
		t.Error = fmt.Sprintf("claim %d lost: %s", t.Attempts, why)
	}
	if t.Attempts >= t.MaxAttempts {
		t.Status = Failed
		if held {
			t.Error = fmt.Sprintf("%d attempts, the last lost: %s", t.Attempts, why)
		}
	}
	return t, nil, nil
}

// journalOf reads the holder of a claim's journal entry; nil when the
// entry records none that can be kept (an earlier version's, without the
// token's hash).
func journalOf(k *nexus.Context) *journaled {
	if k == nil {
		return nil
	}
	km, _ := metaOf(k)
	h := km.Holder
	if h == nil || nexus.ValidateAgentID(h.Agent) != nil {
		return nil
	}
	b, err := hex.DecodeString(h.TokenSHA256)
	if err != nil || len(b) != sha256.Size {
		return nil
	}
	j := &journaled{entry: k.ID, holder: *h}
	copy(j.sum[:], b)
	return j
}

func taskOf(c *nexus.Context, m taskMeta) *Task {
	return &Task{
		ID: c.ID, Namespace: c.Namespace, Capability: m.Capability, Content: c.Content, Creator: c.AgentID,
		Created: c.Timestamp, Status: Queued, MaxAttempts: max(m.MaxAttempts, 1),
	}
}

// metaOf reads the "task" key of a context's metadata.
func metaOf(c *nexus.Context) (taskMeta, bool) {
	var m struct {
		Task *taskMeta `json:"task"`
	}
	if len(c.Metadata) == 0 || json.Unmarshal(c.Metadata, &m) != nil || m.Task == nil {
		return taskMeta{}, false
	}
	return *m.Task, true
}

func (q *Queue) emit(e Event) {
	if q.opts.OnEvent != nil {
		e.At = q.opts.Now().UTC()
		q.opts.OnEvent(e)
	}
}

// Register adds an agent (or renews it, if the id is known) with the
// capabilities it serves; an empty list serves every task.
func (q *Queue) Register(ctx context.Context, id, name string, caps []string) (Agent, error) {
	if err := nexus.ValidateAgentID(id); err != nil {
		return Agent{}, err
	}
	for _, c := range caps {
		if err := validCapability(c); err != nil {
			return Agent{}, err
		}
	}
	if err := q.enter(); err != nil {
		return Agent{}, err
	}
	defer q.gate.RUnlock()
	now := q.opts.Now()
	who := principalName(ctx)
	q.mu.Lock()
	a, ok := q.agents[id]
	if ok && !owns(ctx, a) {
		q.mu.Unlock()
		return Agent{}, errNotYours(id)
	}
	if !ok {
		a = &Agent{ID: id, Registered: now, Principal: who}
		q.agents[id] = a
	}
	was := a.Status
	a.Name, a.Capabilities = name, slices.Clone(caps)
	if a.Capabilities == nil {
		a.Capabilities = []string{}
	}
	a.Status, a.LastHeartbeat, a.LeaseExpires = Active, now, now.Add(q.opts.AgentLease)
	out := a.snapshot()
	q.mu.Unlock()
	if was != Active {
		q.emit(Event{Kind: "agent", ID: id, Status: Active, Reason: "registered"})
	}
	return out, nil
}

func validCapability(c string) error {
	if c == "" || len(c) > 64 {
		return nexus.Errorf(nexus.EInvalid, "capability %q: want 1-64 characters", c)
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':' || r == '/') {
			return nexus.Errorf(nexus.EInvalid, "capability %q: want letters, digits and - _ . : /", c)
		}
	}
	return nil
}

func (a *Agent) snapshot() Agent {
	out := *a
	out.Capabilities = slices.Clone(a.Capabilities)
	out.Claims = slices.Clone(a.Claims)
	if out.Claims == nil {
		out.Claims = []nexus.ID{}
	}
	return out
}

// Heartbeat renews an agent's lease and the leases of its claims. An
// agent the queue does not know (never registered, or forgotten by a
// restart) gets not_found and registers again.
func (q *Queue) Heartbeat(ctx context.Context, id string) (Agent, error) {
	if err := q.enter(); err != nil {
		return Agent{}, err
	}
	defer q.gate.RUnlock()
	now := q.opts.Now()
	q.mu.Lock()
	a, ok := q.agents[id]
	if !ok {
		q.mu.Unlock()
		return Agent{}, nexus.Errorf(nexus.ENotFound, "agent %q is not registered (or the server restarted): register it again with POST /v1/agents", id)
	}
	if !owns(ctx, a) {
		q.mu.Unlock()
		return Agent{}, errNotYours(id)
	}
	revived := a.Status != Active
	a.Status, a.LastHeartbeat, a.LeaseExpires = Active, now, now.Add(q.opts.AgentLease)
	for _, tid := range a.Claims {
		if t := q.tasks[tid]; t != nil && t.Status == Claimed {
			t.LeaseExpires = now.Add(q.opts.ClaimLease)
		}
	}
	out := a.snapshot()
	q.mu.Unlock()
	if revived {
		q.emit(Event{Kind: "agent", ID: id, Status: Active, Reason: "heartbeat after its lease lapsed"})
	}
	return out, nil
}

// Agents lists the registered agents, by id.
func (q *Queue) Agents() []Agent {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Agent, 0, len(q.agents))
	for _, a := range q.agents {
		out = append(out, a.snapshot())
	}
	slices.SortFunc(out, func(a, b Agent) int { return cmpString(a.ID, b.ID) })
	return out
}

// Agent returns one agent.
func (q *Queue) Agent(id string) (Agent, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	a, ok := q.agents[id]
	if !ok {
		return Agent{}, nexus.Errorf(nexus.ENotFound, "agent %q is not registered", id)
	}
	return a.snapshot(), nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Create stores a new task (an instruction context) and queues it.
func (q *Queue) Create(ctx context.Context, n NewTask) (Task, error) {
	if n.Capability != "" {
		if err := validCapability(n.Capability); err != nil {
			return Task{}, err
		}
	}
	if n.MaxAttempts < 0 || n.MaxAttempts > 100 {
		return Task{}, nexus.Errorf(nexus.EInvalid, "max_attempts %d: want 1-100 (0: the default %d)", n.MaxAttempts, q.opts.MaxAttempts)
	}
	if n.MaxAttempts == 0 {
		n.MaxAttempts = q.opts.MaxAttempts
	}
	if err := q.enter(); err != nil {
		return Task{}, err
	}
	defer q.gate.RUnlock()
	if err := q.reserve(); err != nil {
		return Task{}, err
	}
	meta, _ := json.Marshal(map[string]taskMeta{"task": {Capability: n.Capability, MaxAttempts: n.MaxAttempts}})
	// Not cancelled with the request: once submitted, the write's outcome
	// must be known, or a task could exist in the store but not the queue.
	c, err := q.store.Put(context.WithoutCancel(ctx), nexus.Draft{
		Namespace: n.Namespace, Type: nexus.TypeInstruction, Content: n.Content,
		Metadata: meta, AgentID: n.Creator, ParentID: n.ParentID,
	})
	q.mu.Lock()
	q.pending--
	q.mu.Unlock()
	if err != nil {
		return Task{}, err
	}
	t := taskOf(c, taskMeta{Capability: n.Capability, MaxAttempts: n.MaxAttempts})
	q.mu.Lock()
	q.tasks[t.ID] = t
	q.order = append(q.order, t.ID)
	out := *t
	q.mu.Unlock()
	q.emit(Event{Kind: "task", ID: t.ID.String(), Status: Queued, Reason: "created"})
	return out, nil
}

// reserve counts a task being created against MaxQueued, or refuses it.
func (q *Queue) reserve() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.opts.MaxQueued > 0 {
		waiting := q.pending
		for _, t := range q.tasks {
			if t.Status == Queued {
				waiting++
			}
		}
		if waiting >= q.opts.MaxQueued {
			return nexus.Errorf(nexus.EUnavailable, "the task queue is full: %d tasks wait for an agent (the most allowed); try again once agents have claimed some", waiting)
		}
	}
	q.pending++
	return nil
}

// Get returns one task, if the caller of ctx may read its namespace.
func (q *Queue) Get(ctx context.Context, id nexus.ID) (Task, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	t, ok := q.tasks[id]
	if !ok || !canRead(ctx, t.Namespace) {
		return Task{}, nexus.Errorf(nexus.ENotFound, "task %s not found", id)
	}
	return *t, nil
}

// List returns the tasks in a state ("" for all) of the namespaces the
// caller of ctx may read, oldest first, at most limit of them (0: all).
func (q *Queue) List(ctx context.Context, status string, limit int) ([]Task, error) {
	switch status {
	case "", Queued, Claimed, Completing, Done, Failed:
	default:
		return nil, nexus.Errorf(nexus.EInvalid, "status %q: want queued, claimed, completing, done or failed", status)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	out := []Task{}
	for _, t := range q.tasks {
		if (status == "" || t.Status == status) && canRead(ctx, t.Namespace) {
			out = append(out, *t)
		}
	}
	slices.SortFunc(out, func(a, b Task) int { return a.ID.Compare(b.ID) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Claim gives the oldest queued task the agent can serve to the agent,
// under a lease; ok is false when there is none. Only tasks of the
// namespaces the caller of ctx may write are given. The claim is
// journaled in the store before it is given out, so that its number is
// never given again and its attempt counts after a restart; if that
// write fails the task stays queued and the error is returned. The task
// returned carries the claim's token, which no other answer shows.
func (q *Queue) Claim(ctx context.Context, agentID string) (t Task, ok bool, err error) {
	if err := q.enter(); err != nil {
		return Task{}, false, err
	}
	defer q.gate.RUnlock()
	q.mu.Lock()
	cur, at, token, err := q.take(ctx, agentID)
	if cur == nil {
		q.mu.Unlock()
		return Task{}, false, err
	}
	id, ns, claim := cur.ID, cur.Namespace, cur.Attempt
	h := claimHolder{Agent: agentID, Principal: principalName(ctx), TokenSHA256: hashHex(token)}
	if a := q.agents[agentID]; a != nil {
		h.Name, h.Capabilities = a.Name, slices.Clone(a.Capabilities)
	}
	q.mu.Unlock()
	err = q.journalClaim(id, ns, claim, h)
	now := q.opts.Now() // the claim's lease starts once it is given out
	q.mu.Lock()
	delete(q.claiming, id)
	if err != nil {
		q.putBack(cur, at)
		q.mu.Unlock()
		return Task{}, false, fmt.Errorf("journal claim %d of task %s: %w", claim, id, err)
	}
	cur.LeaseExpires = now.Add(q.opts.ClaimLease)
	t = *cur
	t.Claim = token
	q.mu.Unlock()
	q.emit(Event{Kind: "task", ID: t.ID.String(), Status: Claimed, Agent: agentID})
	return t, true, nil
}

// take reserves the oldest queued task agentID can serve for its next
// claim while the claim is journaled, and returns it with its index in
// the queue and the claim's token; nil when there is none. The caller
// holds q.mu.
func (q *Queue) take(ctx context.Context, agentID string) (*Task, int, string, error) {
	a, known := q.agents[agentID]
	if !known || a.Status != Active {
		return nil, 0, "", nexus.Errorf(nexus.ENotFound, "agent %q is not registered or its lease lapsed: register it again", agentID)
	}
	if !owns(ctx, a) {
		return nil, 0, "", errNotYours(agentID)
	}
	cur, at := q.next(ctx, a)
	if cur == nil {
		return nil, 0, "", nil
	}
	token, err := newToken()
	if err != nil {
		return nil, 0, "", err
	}
	now := q.opts.Now()
	q.order = slices.Delete(q.order, at, at+1)
	cur.Status, cur.ClaimedBy = Claimed, agentID
	cur.Attempts++
	cur.Attempt = cur.Attempts
	q.holders[cur.ID] = holder{sum: sha256.Sum256([]byte(token)), principal: principalName(ctx)}
	a.Claims = append(a.Claims, cur.ID)
	a.LastHeartbeat, a.LeaseExpires = now, now.Add(q.opts.AgentLease) // claiming is a sign of life
	q.claiming[cur.ID] = true
	return cur, at, token, nil
}

// putBack undoes take after the claim's journal write failed: the task
// goes back where it was in the queue, its attempt not spent. The caller
// holds q.mu.
func (q *Queue) putBack(t *Task, at int) {
	q.release(t)
	t.Status, t.ClaimedBy = Queued, ""
	t.Attempts--
	t.Attempt = t.Attempts // the claim before, as after a lapse or a failure
	q.order = slices.Insert(q.order, min(at, len(q.order)), t.ID)
}

// next finds the oldest queued task a can serve and its index in the
// queue, dropping stale entries on the way; nil when there is none.
func (q *Queue) next(ctx context.Context, a *Agent) (*Task, int) {
	for i := 0; i < len(q.order); i++ {
		cur := q.tasks[q.order[i]]
		if cur == nil || cur.Status != Queued {
			q.order = slices.Delete(q.order, i, i+1) // stale entry
			i--
			continue
		}
		if cur.Capability != "" && len(a.Capabilities) > 0 && !slices.Contains(a.Capabilities, cur.Capability) {
			continue
		}
		if !canWrite(ctx, cur.Namespace) { // its result could not be written
			continue
		}
		return cur, i
	}
	return nil, 0
}

// journalClaim stores claim number claim of task id, taken by h.Agent,
// as an observation context, child of the task, with its holder. Not
// cancellable: its outcome must be known before the claim is given out
// or put back.
func (q *Queue) journalClaim(id nexus.ID, ns string, claim int, h claimHolder) error {
	if h.Capabilities == nil {
		h.Capabilities = []string{}
	}
	meta, _ := json.Marshal(map[string]taskMeta{"task": {ID: id, Claim: claim, Claimed: true, Holder: &h}})
	_, err := q.store.Put(context.Background(), nexus.Draft{
		Namespace: ns, Type: nexus.TypeObservation, Content: fmt.Sprintf("claim %d of task %s taken by %s", claim, id, h.Agent),
		Metadata: meta, AgentID: h.Agent, ParentID: id,
	})
	return err
}

// hold checks that the caller of ctx, as agentID, holds the current
// claim of task id and moves the task to Completing; the caller writes,
// then settles. A task held under another principal's claim is
// forbidden to it, whatever the token.
func (q *Queue) hold(ctx context.Context, id nexus.ID, agentID, claim string) (*Task, error) {
	t, ok := q.tasks[id]
	if !ok || !canRead(ctx, t.Namespace) {
		return nil, nexus.Errorf(nexus.ENotFound, "task %s not found", id)
	}
	h, held := q.holders[id]
	if held && principal(ctx) != nil && h.principal != principalName(ctx) {
		return nil, nexus.Errorf(nexus.EForbidden, "task %s is held by another principal's claim: only the principal that claimed it may complete or fail it", id)
	}
	sum := sha256.Sum256([]byte(claim))
	current := held && t.ClaimedBy == agentID && subtle.ConstantTimeCompare(h.sum[:], sum[:]) == 1
	switch {
	case q.claiming[id]:
		return nil, nexus.Errorf(nexus.EConflict, "task %s: the claim of %q is not current (the task is being claimed)", id, agentID)
	case t.Status == Done:
		return nil, nexus.Errorf(nexus.EConflict, "task %s is already done (result %s)", id, t.Result)
	case t.Status == Failed:
		return nil, nexus.Errorf(nexus.EConflict, "task %s has failed: %s", id, t.Error)
	case t.Status == Completing && current:
		return nil, nexus.Errorf(nexus.EConflict, "task %s: this claim is already being completed", id)
	case t.Status != Claimed || !current:
		return nil, nexus.Errorf(nexus.EConflict, "task %s: this claim of %q is not current (the lease lapsed and the task went back to the queue, or another agent holds it): claim it again", id, agentID)
	}
	t.Status = Completing
	return t, nil
}

// release drops task id from its agent's claims and forgets its claim.
func (q *Queue) release(t *Task) {
	delete(q.holders, t.ID)
	if a := q.agents[t.ClaimedBy]; a != nil {
		a.Claims = slices.DeleteFunc(a.Claims, func(x nexus.ID) bool { return x == t.ID })
	}
}

// Complete stores the answer as a result context, child of the task, and
// marks it done; only the agent holding the current claim can, and only
// once.
func (q *Queue) Complete(ctx context.Context, id nexus.ID, agentID, claim string, ans Answer) (Task, *nexus.Context, error) {
	if ans.Type == "" {
		ans.Type = nexus.TypeResult
	}
	if err := q.enter(); err != nil {
		return Task{}, nil, err
	}
	defer q.gate.RUnlock()
	q.mu.Lock()
	t, err := q.hold(ctx, id, agentID, claim)
	if err != nil {
		q.mu.Unlock()
		return Task{}, nil, err
	}
	ns, attempt := t.Namespace, t.Attempt
	q.mu.Unlock()
	meta, err := withTask(ans.Metadata, taskMeta{ID: id, Claim: attempt})
	if err != nil {
		q.mu.Lock()
		t.Status = Claimed
		q.mu.Unlock()
		return Task{}, nil, err
	}
	// Not cancelled with the request: a write cut off by a client that
	// went away may still commit, and the claim must not be given back
	// while a result may exist (it would be completed twice).
	c, err := q.store.Put(context.WithoutCancel(ctx), nexus.Draft{Namespace: ns, Type: ans.Type, Content: ans.Content, Metadata: meta, AgentID: agentID, ParentID: id})
	if err != nil {
		c = q.stored(id, attempt, err)
	}
	q.mu.Lock()
	if c == nil {
		t.Status = Claimed // the claim still holds; the agent may try again
		q.mu.Unlock()
		return Task{}, nil, err
	}
	q.release(t)
	t.Status, t.Result, t.Error, t.LeaseExpires = Done, c.ID, "", time.Time{}
	out := *t
	q.mu.Unlock()
	q.emit(Event{Kind: "task", ID: id.String(), Status: Done, Agent: agentID})
	return out, c, nil
}

// stored looks for the result of claim claim of task id after its write
// failed: a store may fail a write it committed (it crashed, or lost
// track of its outcome), and the claim must not be given back then, or
// the task would be completed twice. Nil when there is none.
func (q *Queue) stored(id nexus.ID, claim int, werr error) *nexus.Context {
	kids, err := q.store.Children(context.Background(), id)
	if err != nil {
		q.opts.Logger.Warn("a result write failed and the task's children cannot be read: the claim is given back", "task", id, "claim", claim, "write_err", werr, "err", err)
		return nil
	}
	for _, k := range kids {
		if km, ok := metaOf(k); ok && km.ID == id && km.Claim == claim && !km.Claimed && k.Type != nexus.TypeError {
			q.opts.Logger.Warn("a result write failed but the result is stored: the task is done", "task", id, "claim", claim, "result", k.ID, "err", werr)
			return k
		}
	}
	return nil
}

// Failure is why an attempt at a task failed, and whether the task
// should go back to the queue.
type Failure struct {
	Reason string `json:"reason"`
	Retry  bool   `json:"retry"`
}

// Fail records a failed attempt as an error context, child of the task.
// With f.Retry, the task goes back to the queue while attempts remain;
// otherwise (or on the last attempt) it fails for good.
func (q *Queue) Fail(ctx context.Context, id nexus.ID, agentID, claim string, f Failure) (Task, error) {
	reason, retry := f.Reason, f.Retry
	if reason == "" {
		return Task{}, nexus.Errorf(nexus.EInvalid, "reason is required: say why the task failed")
	}
	if err := q.enter(); err != nil {
		return Task{}, err
	}
	defer q.gate.RUnlock()
	q.mu.Lock()
	t, err := q.hold(ctx, id, agentID, claim)
	if err != nil {
		q.mu.Unlock()
		return Task{}, err
	}
	final := !retry || t.Attempts >= t.MaxAttempts
	ns, attempt := t.Namespace, t.Attempt
	q.mu.Unlock()
	meta, _ := json.Marshal(map[string]taskMeta{"task": {ID: id, Claim: attempt, Final: final}})
	_, err = q.store.Put(context.WithoutCancel(ctx), nexus.Draft{Namespace: ns, Type: nexus.TypeError, Content: reason, Metadata: meta, AgentID: agentID, ParentID: id})
	q.mu.Lock()
	if err != nil {
		t.Status = Claimed
		q.mu.Unlock()
		return Task{}, err
	}
	q.release(t)
	t.Error, t.ClaimedBy, t.LeaseExpires = reason, "", time.Time{}
	status := Queued
	if final {
		status = Failed
	} else {
		q.order = append(q.order, t.ID)
	}
	t.Status = status
	out := *t
	q.mu.Unlock()
	q.emit(Event{Kind: "task", ID: id.String(), Status: status, Agent: agentID, Reason: reason})
	return out, nil
}

// withTask adds the "task" key to user metadata, which must not have one.
func withTask(raw json.RawMessage, m taskMeta) (json.RawMessage, error) {
	obj := map[string]json.RawMessage{}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, nexus.Errorf(nexus.EInvalid, "metadata must be a JSON object: %v", err)
		}
	}
	if _, ok := obj["task"]; ok {
		return nil, nexus.Errorf(nexus.EInvalid, `metadata key "task" is reserved for the task queue`)
	}
	b, _ := json.Marshal(m)
	obj["task"] = b
	return json.Marshal(obj)
}

// lapse is a claim lost to a lapsed lease, recorded in the store as a
// failed attempt so that attempts survive a restart.
type lapse struct {
	task  nexus.ID
	ns    string
	agent string
	claim int
	final bool
	why   string
}

// Reap expires lapsed leases: an agent without a heartbeat is lost and
// its claims go back to the queue; so does a claim whose own lease lapsed.
// Each lost claim is stored as a failed attempt (an error context, child
// of the task). It returns how many tasks went back; a paused queue
// reaps nothing.
func (q *Queue) Reap() int {
	if q.enter() != nil {
		return 0
	}
	defer q.gate.RUnlock()
	now := q.opts.Now()
	var events []Event
	var lapses []lapse
	n := 0
	q.mu.Lock()
	for _, a := range q.agents {
		if a.Status == Active && now.After(a.LeaseExpires) {
			a.Status = Lost
			events = append(events, Event{Kind: "agent", ID: a.ID, Status: Lost, Reason: "no heartbeat within its lease"})
		}
	}
	// Oldest first, so that tasks lost together go back in the order
	// they were created (the map's order is random).
	var claimed []*Task
	for _, t := range q.tasks {
		if t.Status == Claimed && !q.claiming[t.ID] { // a claim being journaled is not given out yet
			claimed = append(claimed, t)
		}
	}
	slices.SortFunc(claimed, func(a, b *Task) int { return a.ID.Compare(b.ID) })
	for _, t := range claimed {
		a := q.agents[t.ClaimedBy]
		why := ""
		switch {
		case a == nil || a.Status != Active:
			why = "its agent's lease lapsed"
		case now.After(t.LeaseExpires):
			why = "its claim's lease lapsed"
		default:
			continue
		}
		q.release(t)
		agent := t.ClaimedBy
		t.ClaimedBy, t.LeaseExpires = "", time.Time{}
		final := t.Attempts >= t.MaxAttempts
		if final {
			t.Status, t.Error = Failed, fmt.Sprintf("%d attempts, the last lost: %s", t.Attempts, why)
		} else {
			t.Status, t.Error = Queued, "claim "+fmt.Sprint(t.Attempt)+" lost: "+why
			q.order = append(q.order, t.ID)
		}
		lapses = append(lapses, lapse{task: t.ID, ns: t.Namespace, agent: agent, claim: t.Attempt, final: final, why: why})
		n++
		events = append(events, Event{Kind: "task", ID: t.ID.String(), Status: t.Status, Agent: agent, Reason: why})
	}
	q.mu.Unlock()
	for _, e := range events {
		q.opts.Logger.Warn("lease lapsed", "kind", e.Kind, "id", e.ID, "status", e.Status, "reason", e.Reason)
		q.emit(e)
	}
	for _, l := range lapses {
		meta, _ := json.Marshal(map[string]taskMeta{"task": {ID: l.task, Claim: l.claim, Final: l.final}})
		d := nexus.Draft{Namespace: l.ns, Type: nexus.TypeError, Content: "claim lost: " + l.why, Metadata: meta, AgentID: l.agent, ParentID: l.task}
		if _, err := q.store.Put(context.Background(), d); err != nil {
			q.opts.Logger.Warn("recording a lost claim failed; after a restart the task gets that attempt back", "task", l.task, "err", err)
		}
	}
	return n
}

// Run reaps lapsed leases every interval until ctx ends.
func (q *Queue) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			q.Reap()
		}
	}
}

// Health reports the external agents for the agents component of
// /health: how many are active and lost, and the tasks by state.
func (q *Queue) Health() map[string]any {
	q.mu.Lock()
	defer q.mu.Unlock()
	agents := map[string]int{Active: 0, Lost: 0}
	for _, a := range q.agents {
		agents[a.Status]++
	}
	tasks := map[string]int{Queued: 0, Claimed: 0, Completing: 0, Done: 0, Failed: 0}
	for _, t := range q.tasks {
		tasks[t.Status]++
	}
	return map[string]any{"external_agents": agents, "tasks": tasks}
}

// holder is the current claim of a task: the SHA-256 of its token (the
// token itself is only in the claim's answer) and the principal that
// claimed ("" for the node).
type holder struct {
	sum       [sha256.Size]byte
	principal string
}

// hashHex is the hex SHA-256 of a claim's token, as its journal entry
// records it.
func hashHex(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newToken returns a claim token: 128 random bits, in hex.
func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", nexus.WrapError(nexus.EInternal, err, "drawing a claim token")
	}
	return hex.EncodeToString(b), nil
}

// principal returns the caller of ctx, or nil for the node itself.
func principal(ctx context.Context) *nexus.Principal {
	p, _ := nexus.PrincipalFrom(ctx)
	return p
}

// principalName is the name of the caller of ctx, "" for the node.
func principalName(ctx context.Context) string {
	if p := principal(ctx); p != nil {
		return p.Name
	}
	return ""
}

func canRead(ctx context.Context, ns string) bool {
	p := principal(ctx)
	return p == nil || p.CanRead(ns)
}

func canWrite(ctx context.Context, ns string) bool {
	p := principal(ctx)
	return p == nil || p.CanWrite(ns)
}

// owns reports whether the caller of ctx may act as agent a: it is the
// principal that registered a, or the node.
func owns(ctx context.Context, a *Agent) bool {
	p := principal(ctx)
	return p == nil || a.Principal == p.Name
}

func errNotYours(id string) error {
	return nexus.Errorf(nexus.EForbidden, "agent %q was registered by another principal: use an agent id of your own", id)
}
