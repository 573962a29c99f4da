package mcpserver

import (
	"context"
	"encoding/json"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/tasks"
)

// Agents is what the agent and task tools need: the task queue of
// external agents and the node's own agents. httpapi.Client implements it
// over a running server (what `nexus mcp` uses); [LocalAgents] implements
// it over a queue and an orchestrator in the same process. The methods
// are those of the client.
type Agents interface {
	RegisterAgent(ctx context.Context, id, name string, capabilities []string) (tasks.Agent, error)
	Heartbeat(ctx context.Context, id string) (tasks.Agent, error)
	CreateTask(ctx context.Context, n tasks.NewTask) (tasks.Task, error)
	ClaimTask(ctx context.Context, agentID string) (tasks.Task, bool, error)
	CompleteTask(ctx context.Context, id nexus.ID, agentID, claim string, ans tasks.Answer) (tasks.Task, *nexus.Context, error)
	FailTask(ctx context.Context, id nexus.ID, agentID, claim string, f tasks.Failure) (tasks.Task, error)
	Process(ctx context.Context, req orchestrator.Request) (*orchestrator.Answer, error)
	Generate(ctx context.Context, req orchestrator.GenerateRequest) (*orchestrator.Answer, error)
}

// LocalAgents returns [Agents] over a node's task queue and orchestrator.
// Either may be nil: the calls that need it then fail with not_found, as
// the HTTP API does.
func LocalAgents(q *tasks.Queue, o *orchestrator.Orchestrator) Agents {
	return localAgents{q: q, o: o}
}

type localAgents struct {
	q *tasks.Queue
	o *orchestrator.Orchestrator
}

var (
	errNoQueue  = nexus.Errorf(nexus.ENotFound, "the task queue is not enabled on this server")
	errNoAgents = nexus.Errorf(nexus.ENotFound, "this node runs no agents (serve --config names them)")
)

func (l localAgents) RegisterAgent(ctx context.Context, id, name string, caps []string) (tasks.Agent, error) {
	if l.q == nil {
		return tasks.Agent{}, errNoQueue
	}
	if l.o != nil && l.o.Has(id) {
		return tasks.Agent{}, nexus.Errorf(nexus.EConflict, "agent id %q is taken by one of this node's own agents: register under another id", clip(id, 80))
	}
	return l.q.Register(ctx, id, name, caps)
}

func (l localAgents) Heartbeat(ctx context.Context, id string) (tasks.Agent, error) {
	if l.q == nil {
		return tasks.Agent{}, errNoQueue
	}
	return l.q.Heartbeat(ctx, id)
}

func (l localAgents) CreateTask(ctx context.Context, n tasks.NewTask) (tasks.Task, error) {
	if l.q == nil {
		return tasks.Task{}, errNoQueue
	}
	return l.q.Create(ctx, n)
}

func (l localAgents) ClaimTask(ctx context.Context, agentID string) (tasks.Task, bool, error) {
	if l.q == nil {
		return tasks.Task{}, false, errNoQueue
	}
	return l.q.Claim(ctx, agentID)
}

func (l localAgents) CompleteTask(ctx context.Context, id nexus.ID, agentID, claim string, ans tasks.Answer) (tasks.Task, *nexus.Context, error) {
	if l.q == nil {
		return tasks.Task{}, nil, errNoQueue
	}
	return l.q.Complete(ctx, id, agentID, claim, ans)
}

func (l localAgents) FailTask(ctx context.Context, id nexus.ID, agentID, claim string, f tasks.Failure) (tasks.Task, error) {
	if l.q == nil {
		return tasks.Task{}, errNoQueue
	}
	return l.q.Fail(ctx, id, agentID, claim, f)
}

func (l localAgents) Process(ctx context.Context, req orchestrator.Request) (*orchestrator.Answer, error) {
	if l.o == nil {
		return nil, errNoAgents
	}
	return l.o.Process(ctx, req)
}

func (l localAgents) Generate(ctx context.Context, req orchestrator.GenerateRequest) (*orchestrator.Answer, error) {
	if l.o == nil {
		return nil, errNoAgents
	}
	return l.o.Generate(ctx, req)
}

// agentInstructions are added to the instructions when the agent tools
// are offered.
const agentInstructions = `
- To work on shared tasks: register_agent once with a unique agent_id, then claim_task; do the work; complete_task (or fail_task) with the task id and the claim token claim_task returned. While you hold a task, call heartbeat_agent more often than lease_seconds, or the task goes back to the queue.
- process_context asks one of the node's own agents (by agent id or capability) to answer a context; the answer is stored as its child. generate_context asks one to answer a prompt alone; the answer is stored as a new context.`

// Patterns of the tools' agent ids and capabilities, as the API checks
// them.
const (
	agentIDPattern    = `^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}$`
	capabilityPattern = `^[A-Za-z0-9._:/-]{1,64}$`
)

// registerAgents adds the agent and task tools to s.
func (t *tools) registerAgents(s *mcp.Server) {
	write := func(idempotent bool) *mcp.ToolAnnotations {
		return &mcp.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: idempotent, OpenWorldHint: ptr(false)}
	}
	add(s, &mcp.Tool{
		Name:  "register_agent",
		Title: "Register as a worker agent",
		Description: "Register yourself as an agent that takes tasks from the shared task queue, with the kinds of task (capabilities) you take. " +
			"Use an agent_id that no other agent uses (e.g. the tool, the project and a random suffix) and keep using it for heartbeat_agent, claim_task, complete_task and fail_task. " +
			"Registration holds for lease_seconds (30 by default): call heartbeat_agent more often than that, or you are marked lost and the tasks you hold go back to the queue for other agents. " +
			"Registering again with the same agent_id renews the lease and replaces name and capabilities.",
		Annotations: write(true),
	}, func(p props) {
		p.get("agent_id").Pattern = agentIDPattern
		p.of("capabilities").s.Pattern = capabilityPattern
	}, agentSchema, t.registerAgent)
	add(s, &mcp.Tool{
		Name:  "heartbeat_agent",
		Title: "Renew an agent's lease",
		Description: "Tell the task queue you are still alive: renews your registration and the claims on the tasks you hold for another lease. " +
			"Call it more often than lease_seconds (every third of it is safe) while you hold a task, including while you work on it. " +
			"Code not_found means the server no longer knows you (it restarted, or your lease lapsed long ago): call register_agent again; " +
			"tasks you held may have gone to other agents, so claim again before completing anything.",
		Annotations: write(true),
	}, func(p props) { p.get("agent_id").Pattern = agentIDPattern }, agentSchema, t.heartbeat)
	add(s, &mcp.Tool{
		Name:  "create_task",
		Title: "Queue a task for agents",
		Description: "Put a task in the shared queue for a worker agent to claim: what to do in content, and optionally the capability an agent needs to take it. " +
			"The task is stored as an instruction context (its id is the task id); the agent that completes it stores its result as a child of it. " +
			"A task gets max_attempts claims (3 by default) before it fails.",
		Annotations: write(false),
	}, func(p props) {
		p.get("capability").Pattern = capabilityPattern
		p.get("agent_id").Pattern = agentIDPattern
		p.bounds("max_attempts", 1, 100)
		p.get("content").MinLength = ptr(1)
	}, taskSchema, t.createTask)
	add(s, &mcp.Tool{
		Name:  "claim_task",
		Title: "Claim the next task",
		Description: "Take the oldest queued task you can serve (its capability is one you registered, or it has none). " +
			"The answer says claimed true with the task, or claimed false when no task waits (try again later). " +
			"Keep the task's id and its claim token: complete_task and fail_task need both, and no other answer shows the token. " +
			"The claim holds while you heartbeat (heartbeat_agent more often than lease_seconds); when it lapses the task goes back to the queue and completing it then fails with code conflict. " +
			"Requires register_agent first (code not_found otherwise).",
		Annotations: write(false),
	}, func(p props) { p.get("agent_id").Pattern = agentIDPattern }, func(p props) { taskSchema(props{p.get("task")}) }, t.claimTask)
	add(s, &mcp.Tool{
		Name:  "complete_task",
		Title: "Complete a claimed task",
		Description: "Finish a task you claimed: content is your result, stored as a context that is a child of the task (type result unless you say otherwise), and the task is done. " +
			"Pass the task id and the claim token claim_task returned. " +
			"Code conflict means the claim is no longer yours (your lease lapsed and the task went back to the queue or to another agent) or the task is already done: nothing was stored; do not retry with the same claim.",
		Annotations: write(false),
	}, func(p props) {
		p.get("agent_id").Pattern = agentIDPattern
		p.get("claim").MinLength = ptr(1)
		p.get("content").MinLength = ptr(1)
		p.contextType("type")
	}, func(p props) {
		taskSchema(props{p.get("task")})
		contextSchema(props{p.get("result")})
	}, t.completeTask)
	add(s, &mcp.Tool{
		Name:  "fail_task",
		Title: "Give up a claimed task",
		Description: "Report that you could not do a task you claimed; reason is stored as an error context, child of the task. " +
			"With retry true the task goes back to the queue for another attempt (while it has attempts left); otherwise it fails for good. " +
			"Pass the task id and the claim token claim_task returned; code conflict means the claim is no longer yours.",
		Annotations: write(false),
	}, func(p props) {
		p.get("agent_id").Pattern = agentIDPattern
		p.get("claim").MinLength = ptr(1)
		p.get("reason").MinLength = ptr(1)
	}, taskSchema, t.failTask)
	add(s, &mcp.Tool{
		Name:  "process_context",
		Title: "Ask one of the node's agents",
		Description: "Have one of the agents this Nexus node runs (LLM workers configured on the server) answer a context: " +
			"name the agent with agent, or give a capability to let any agent that has it answer. " +
			"The agent reads the context and its thread (its ancestors); its answer is stored as a child of the context and returned with its provenance (the agent that answered, the model, tokens, latency). " +
			"Code not_found: no such agent or capability, or the node runs no agents; code unavailable: the agent did not answer (nothing was stored).",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(true)},
	}, func(p props) {
		p.get("agent").Pattern = agentIDPattern
		p.get("capability").Pattern = capabilityPattern
		p.contextType("type")
	}, func(p props) {
		contextSchema(props{p.get("context")})
		props{p.get("provenance").Properties["trail"].Items}.enum("class", "auth", "rate_limit", "overload", "server", "timeout",
			"network", "malformed", "bad_request", "config", "unavailable", "canceled")
	}, t.process)
	add(s, &mcp.Tool{
		Name:  "generate_context",
		Title: "Have one of the node's agents write a context",
		Description: "Have one of the agents this Nexus node runs (LLM workers configured on the server) answer a prompt on its own, without a thread: " +
			"name the agent with agent, or give a capability to let any agent that has it answer. " +
			"The answer is stored as a new context (type result unless you say otherwise; a root, or a child of parent_id) and returned with its provenance. " +
			"To have an agent answer a stored context and its thread, use process_context instead. " +
			"Code not_found: no such agent, capability or parent, or the node runs no agents; code unavailable: no agent answered (nothing was stored).",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(true)},
	}, func(p props) {
		p.get("agent").Pattern = agentIDPattern
		p.get("capability").Pattern = capabilityPattern
		p.get("prompt").MinLength = ptr(1)
		p.contextType("type")
	}, func(p props) {
		contextSchema(props{p.get("context")})
		props{p.get("provenance").Properties["trail"].Items}.enum("class", "auth", "rate_limit", "overload", "server", "timeout",
			"network", "malformed", "bad_request", "config", "unavailable", "canceled")
	}, t.generate)
}

type agentOut struct {
	AgentID      string    `json:"agent_id" jsonschema:"the agent's id"`
	Name         string    `json:"name,omitempty" jsonschema:"its name for people"`
	Capabilities []string  `json:"capabilities" jsonschema:"the kinds of task it takes; empty: every task"`
	Status       string    `json:"status" jsonschema:"active: its lease is current; lost: its lease lapsed and the tasks it held went back to the queue"`
	LeaseExpires time.Time `json:"lease_expires" jsonschema:"when the lease lapses unless heartbeat_agent renews it"`
	LeaseSeconds float64   `json:"lease_seconds" jsonschema:"how long a lease lasts: call heartbeat_agent more often than this"`
	Claims       []string  `json:"claims" jsonschema:"ids of the tasks it holds"`
}

func agentSchema(p props) {
	p.enum("status", tasks.Active, tasks.Lost)
	p.of("claims").s.Pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$"
}

func newAgent(a tasks.Agent) *agentOut {
	out := &agentOut{AgentID: a.ID, Name: a.Name, Capabilities: a.Capabilities, Status: a.Status,
		LeaseExpires: a.LeaseExpires, LeaseSeconds: a.LeaseExpires.Sub(a.LastHeartbeat).Seconds(), Claims: []string{}}
	if out.Capabilities == nil {
		out.Capabilities = []string{}
	}
	for _, id := range a.Claims {
		out.Claims = append(out.Claims, id.String())
	}
	return out
}

type registerInput struct {
	AgentID      string   `json:"agent_id" jsonschema:"your agent id, used by no other agent: 1-128 of A-Z a-z 0-9 . _ - : @ / +, starting with a letter or digit"`
	Name         string   `json:"name,omitempty" jsonschema:"a name for people, such as the tool and the project"`
	Capabilities []string `json:"capabilities,omitempty" jsonschema:"the kinds of task you take (e.g. code, review, docs); leave out to take every task"`
}

func (t *tools) registerAgent(ctx context.Context, in registerInput) (*agentOut, error) {
	a, err := t.agents.RegisterAgent(ctx, in.AgentID, in.Name, in.Capabilities)
	if err != nil {
		return nil, err
	}
	return newAgent(a), nil
}

type agentInput struct {
	AgentID string `json:"agent_id" jsonschema:"your agent id, as registered"`
}

func (t *tools) heartbeat(ctx context.Context, in agentInput) (*agentOut, error) {
	a, err := t.agents.Heartbeat(ctx, in.AgentID)
	if nexus.ErrorCode(err) == nexus.ENotFound {
		// The API's message names its route; the model calls a tool.
		return nil, nexus.Errorf(nexus.ENotFound, "agent %q is not registered (or the server restarted): call register_agent again, then claim_task; tasks it held may have gone to other agents", clip(in.AgentID, 80))
	}
	if err != nil {
		return nil, err
	}
	return newAgent(a), nil
}

type taskOut struct {
	ID           string    `json:"id" jsonschema:"the task id: pass it as task_id to complete_task or fail_task"`
	Namespace    string    `json:"namespace" jsonschema:"the namespace of the task and of its result"`
	Capability   string    `json:"capability,omitempty" jsonschema:"the capability an agent needs to claim it"`
	Content      string    `json:"content" jsonschema:"what to do"`
	Creator      string    `json:"creator,omitempty" jsonschema:"who created it"`
	Created      time.Time `json:"created" jsonschema:"when it was created"`
	Status       string    `json:"status" jsonschema:"queued: waiting for an agent; claimed: an agent holds it; completing: its result is being stored; done: it has a result; failed: its attempts ran out or an agent gave up"`
	Attempts     int       `json:"attempts" jsonschema:"claims made so far"`
	MaxAttempts  int       `json:"max_attempts" jsonschema:"claims it gets before it fails"`
	ClaimedBy    string    `json:"claimed_by,omitempty" jsonschema:"the agent holding it"`
	Attempt      int       `json:"attempt,omitempty" jsonschema:"the number of the current (or last) claim"`
	Claim        string    `json:"claim,omitempty" jsonschema:"only in claim_task's answer: the claim's token, to pass to complete_task or fail_task"`
	LeaseExpires string    `json:"lease_expires,omitempty" jsonschema:"while claimed: when the claim lapses unless its agent heartbeats"`
	Result       string    `json:"result,omitempty" jsonschema:"when done: the id of the result context"`
	Error        string    `json:"error,omitempty" jsonschema:"why the last attempt failed"`
}

func taskSchema(p props) {
	p.outputID("id", "result")
	p.enum("status", tasks.Queued, tasks.Claimed, tasks.Completing, tasks.Done, tasks.Failed)
	p.time("lease_expires")
}

func newTask(x tasks.Task) *taskOut {
	out := &taskOut{ID: x.ID.String(), Namespace: x.Namespace, Capability: x.Capability, Content: x.Content, Creator: x.Creator,
		Created: x.Created, Status: x.Status, Attempts: x.Attempts, MaxAttempts: x.MaxAttempts, ClaimedBy: x.ClaimedBy,
		Attempt: x.Attempt, Claim: x.Claim, Error: x.Error}
	if !x.LeaseExpires.IsZero() {
		out.LeaseExpires = x.LeaseExpires.Format(time.RFC3339Nano)
	}
	if !x.Result.IsZero() {
		out.Result = x.Result.String()
	}
	return out
}

type createTaskInput struct {
	Content     string `json:"content" jsonschema:"what the agent that claims it should do"`
	Capability  string `json:"capability,omitempty" jsonschema:"only agents that registered this capability (or none at all) may claim it"`
	Namespace   string `json:"namespace,omitempty" jsonschema:"the project or team it belongs to (default: the parent's, else the server's)"`
	ParentID    string `json:"parent_id,omitempty" jsonschema:"id of the context the task continues"`
	AgentID     string `json:"agent_id,omitempty" jsonschema:"who creates it (default: the server's)"`
	MaxAttempts int    `json:"max_attempts,omitempty" jsonschema:"claims it gets before it fails (default 3)"`
}

func (t *tools) createTask(ctx context.Context, in createTaskInput) (*taskOut, error) {
	n := tasks.NewTask{Namespace: in.Namespace, Content: in.Content, Capability: in.Capability, Creator: in.AgentID, MaxAttempts: in.MaxAttempts}
	if n.Creator == "" {
		n.Creator = t.opts.Agent
	}
	var err error
	if n.ParentID, err = optionalID("parent_id", in.ParentID); err != nil {
		return nil, err
	}
	n.Namespace = t.namespace(ctx, n.Namespace, n.ParentID)
	x, err := t.agents.CreateTask(ctx, n)
	if err != nil {
		return nil, err
	}
	return newTask(x), nil
}

type claimOut struct {
	Claimed bool     `json:"claimed" jsonschema:"true: the task is yours; false: no task you can serve waits, try again later"`
	Task    *taskOut `json:"task,omitempty" jsonschema:"the task claimed, with its id and claim token"`
}

func (t *tools) claimTask(ctx context.Context, in agentInput) (*claimOut, error) {
	x, ok, err := t.agents.ClaimTask(ctx, in.AgentID)
	if err != nil || !ok {
		return &claimOut{}, err
	}
	return &claimOut{Claimed: true, Task: newTask(x)}, nil
}

type completeInput struct {
	TaskID   string          `json:"task_id" jsonschema:"the id of the task, as claim_task returned it"`
	AgentID  string          `json:"agent_id" jsonschema:"your agent id, which holds the claim"`
	Claim    string          `json:"claim" jsonschema:"the claim token claim_task returned"`
	Content  string          `json:"content" jsonschema:"the result"`
	Type     string          `json:"type,omitempty" jsonschema:"the type of the result context; result when left out"`
	Metadata json.RawMessage `json:"metadata,omitempty" jsonschema:"a JSON object stored with the result (files, links, tags); the key task is reserved"`
}

type completeOut struct {
	Task   taskOut    `json:"task" jsonschema:"the task, done"`
	Result contextOut `json:"result" jsonschema:"the stored result, a child of the task"`
}

func (t *tools) completeTask(ctx context.Context, in completeInput) (*completeOut, error) {
	id, err := parseID("task_id", in.TaskID)
	if err != nil {
		return nil, err
	}
	x, c, err := t.agents.CompleteTask(ctx, id, in.AgentID, in.Claim, tasks.Answer{Content: in.Content, Type: nexus.Type(in.Type), Metadata: in.Metadata})
	if err != nil {
		return nil, err
	}
	return &completeOut{Task: *newTask(x), Result: newContext(c, true)}, nil
}

type failInput struct {
	TaskID  string `json:"task_id" jsonschema:"the id of the task, as claim_task returned it"`
	AgentID string `json:"agent_id" jsonschema:"your agent id, which holds the claim"`
	Claim   string `json:"claim" jsonschema:"the claim token claim_task returned"`
	Reason  string `json:"reason" jsonschema:"why you could not do it, for whoever reads the task next"`
	Retry   bool   `json:"retry,omitempty" jsonschema:"true: put the task back in the queue for another attempt; false: it fails for good"`
}

func (t *tools) failTask(ctx context.Context, in failInput) (*taskOut, error) {
	id, err := parseID("task_id", in.TaskID)
	if err != nil {
		return nil, err
	}
	x, err := t.agents.FailTask(ctx, id, in.AgentID, in.Claim, tasks.Failure{Reason: in.Reason, Retry: in.Retry})
	if err != nil {
		return nil, err
	}
	return newTask(x), nil
}

type processInput struct {
	ContextID  string `json:"context_id" jsonschema:"the context to answer; its ancestors are read too"`
	Agent      string `json:"agent,omitempty" jsonschema:"the id of the node's agent (or pool) to ask; give this or capability"`
	Capability string `json:"capability,omitempty" jsonschema:"ask any of the node's agents with this capability; give this or agent"`
	Type       string `json:"type,omitempty" jsonschema:"the type of the stored answer; result when left out"`
}

type attemptOut struct {
	Agent     string `json:"agent" jsonschema:"the agent tried"`
	Requests  int    `json:"requests" jsonschema:"requests sent to it"`
	Class     string `json:"class,omitempty" jsonschema:"why it failed; absent for the agent that answered"`
	Error     string `json:"error,omitempty" jsonschema:"what went wrong"`
	LatencyNS int64  `json:"latency_ns" jsonschema:"nanoseconds spent on it"`
}

// provenanceOut is [agent.Provenance] in the shape the HTTP API answers
// and the store keeps: the same keys, latency_ns in nanoseconds.
type provenanceOut struct {
	Agent      string       `json:"agent" jsonschema:"the agent or pool asked"`
	FinalAgent string       `json:"final_agent" jsonschema:"the agent that answered"`
	Model      string       `json:"model" jsonschema:"the model that answered"`
	TokensIn   int          `json:"tokens_in" jsonschema:"prompt tokens"`
	TokensOut  int          `json:"tokens_out" jsonschema:"answer tokens"`
	LatencyNS  int64        `json:"latency_ns" jsonschema:"nanoseconds from the call to the answer, waits and failovers included"`
	Attempts   int          `json:"attempts" jsonschema:"requests sent, retries and failovers included"`
	Trail      []attemptOut `json:"trail" jsonschema:"the agents tried, in order; the last one answered"`
}

type processOut struct {
	Context    contextOut    `json:"context" jsonschema:"the answer, stored as a child of the context"`
	Provenance provenanceOut `json:"provenance" jsonschema:"who answered and at what cost"`
}

func (t *tools) process(ctx context.Context, in processInput) (*processOut, error) {
	id, err := parseID("context_id", in.ContextID)
	if err != nil {
		return nil, err
	}
	a, err := t.agents.Process(ctx, orchestrator.Request{ContextID: id, Agent: in.Agent, Capability: in.Capability, Type: nexus.Type(in.Type)})
	if err != nil {
		return nil, err
	}
	return newAnswer(a), nil
}

// newAnswer is the output of a stored answer.
func newAnswer(a *orchestrator.Answer) *processOut {
	p := a.Provenance
	out := &processOut{Context: newContext(a.Context, true), Provenance: provenanceOut{
		Agent: p.Agent, FinalAgent: p.FinalAgent, Model: p.Model, TokensIn: p.TokensIn, TokensOut: p.TokensOut,
		LatencyNS: int64(p.Latency), Attempts: p.Attempts, Trail: []attemptOut{},
	}}
	for _, x := range p.Trail {
		out.Provenance.Trail = append(out.Provenance.Trail, attemptOut{Agent: x.Agent, Requests: x.Requests, Class: string(x.Class), Error: x.Error, LatencyNS: int64(x.Latency)})
	}
	return out
}

type generateInput struct {
	Prompt     string `json:"prompt" jsonschema:"what the agent is to answer or write"`
	Agent      string `json:"agent,omitempty" jsonschema:"the id of the node's agent (or pool) to ask; give this or capability"`
	Capability string `json:"capability,omitempty" jsonschema:"ask any of the node's agents with this capability; give this or agent"`
	Namespace  string `json:"namespace,omitempty" jsonschema:"the namespace of the answer: 1-64 of a-z 0-9 . _ - (default: the parent's, else the server's)"`
	Type       string `json:"type,omitempty" jsonschema:"the type of the stored answer; result when left out"`
	ParentID   string `json:"parent_id,omitempty" jsonschema:"id of the context the answer continues; without it the answer is a root"`
}

func (t *tools) generate(ctx context.Context, in generateInput) (*processOut, error) {
	parent, err := optionalID("parent_id", in.ParentID)
	if err != nil {
		return nil, err
	}
	a, err := t.agents.Generate(ctx, orchestrator.GenerateRequest{Agent: in.Agent, Capability: in.Capability, Prompt: in.Prompt,
		Namespace: t.namespace(ctx, in.Namespace, parent), Type: nexus.Type(in.Type), ParentID: parent})
	if err != nil {
		return nil, err
	}
	return newAnswer(a), nil
}
