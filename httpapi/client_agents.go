package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/tasks"
)

// The client side of /v1/agents and /v1/tasks. The methods for external
// agents and tasks have the signatures of the [tasks.Queue] methods they
// call on the server, with a context.

// RegisterAgent registers an external agent, or renews it, with the
// capabilities it serves (none: every task). It holds a lease that
// [Client.Heartbeat] renews.
func (c *Client) RegisterAgent(ctx context.Context, id, name string, capabilities []string) (tasks.Agent, error) {
	var out tasks.Agent
	err := c.do(ctx, http.MethodPost, "/v1/agents", nil, registerRequest{ID: id, Name: name, Capabilities: capabilities}, &out)
	return out, err
}

// Heartbeat renews an external agent's lease and the leases of its
// claims. Code not_found means the server does not know the agent (it
// restarted, or never knew it): register again.
func (c *Client) Heartbeat(ctx context.Context, id string) (tasks.Agent, error) {
	var out tasks.Agent
	err := c.do(ctx, http.MethodPost, agentPath(id, "/heartbeat"), nil, nil, &out)
	return out, err
}

// Agents lists the node's own agents, with their status, and the
// external ones.
func (c *Client) Agents(ctx context.Context) (*AgentList, error) {
	var out AgentList
	if err := c.do(ctx, http.MethodGet, "/v1/agents", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AgentInfo is one agent as [Client.Agent] returns it: one of the node's
// own (Own is set) or an external one (External is set).
type AgentInfo struct {
	Own      *OwnAgent
	External *tasks.Agent
}

// Agent returns one agent, the node's own or external.
func (c *Client) Agent(ctx context.Context, id string) (*AgentInfo, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, agentPath(id, ""), nil, nil, &raw); err != nil {
		return nil, err
	}
	// Only an external agent has a registration time.
	var probe struct {
		Registered *json.RawMessage `json:"registered"`
	}
	var out AgentInfo
	var v any = &out.Own
	if json.Unmarshal(raw, &probe) == nil && probe.Registered != nil {
		v = &out.External
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, nexus.WrapError(nexus.EInternal, err, "GET /v1/agents/%s: malformed response", id)
	}
	return &out, nil
}

// agentPath is /v1/agents/{id} followed by suffix, the id escaped (agent
// ids may hold a slash).
func agentPath(id, suffix string) string {
	return "/v1/agents/" + url.PathEscape(id) + suffix
}

// Process asks one of the node's agents (or pools), req.Agent, or any
// agent with req.Capability, to answer req.ContextID; the answer is stored
// as a child of it, of type req.Type (default result). It has the
// signature of [orchestrator.Orchestrator.Process], which serves it.
func (c *Client) Process(ctx context.Context, req orchestrator.Request) (*orchestrator.Answer, error) {
	switch {
	case req.Agent != "" && req.Capability != "":
		return nil, nexus.Errorf(nexus.EInvalid, "ask an agent or a capability, not both")
	case req.Capability != "":
		res, err := c.ProcessMany(ctx, ProcessRequest{ContextID: req.ContextID, Type: req.Type, Capability: req.Capability})
		if err != nil {
			return nil, err
		}
		if len(res.Answers) != 1 || res.Answers[0] == nil {
			return nil, nexus.Errorf(nexus.EInternal, "POST /v1/agents/process: %d answers to a capability, want 1", len(res.Answers))
		}
		return res.Answers[0], nil
	case req.Agent == "":
		return nil, nexus.Errorf(nexus.EInvalid, "name an agent or a capability")
	}
	var out orchestrator.Answer
	if err := c.do(ctx, http.MethodPost, agentPath(req.Agent, "/process"), nil, ProcessRequest{ContextID: req.ContextID, Type: req.Type, Timeout: timeoutOf(ctx)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ProcessResult is what [Client.ProcessMany] returns.
type ProcessResult struct {
	// Answers: one for a capability; one per step that answered, in order,
	// for a pipeline; one per agent, in the order asked, for a broadcast,
	// nil where the agent failed.
	Answers []*orchestrator.Answer
	// Stopped is why a pipeline stopped before its last step; nil when it
	// ran through.
	Stopped error
	// Failed are the agents of a broadcast that failed, and why.
	Failed []AgentFailure
}

// AgentFailure is an agent of a broadcast that did not answer.
type AgentFailure struct {
	Agent string
	Err   error
}

// Generate has one of the node's agents (req.Agent), or any agent with
// req.Capability, answer req.Prompt; the answer is stored as a new
// context.
func (c *Client) Generate(ctx context.Context, req orchestrator.GenerateRequest) (*orchestrator.Answer, error) {
	body := GenerateRequest{Prompt: req.Prompt, Namespace: req.Namespace, Type: req.Type, ParentID: req.ParentID, Timeout: timeoutOf(ctx)}
	path := "/v1/agents/generate"
	switch {
	case req.Agent != "" && req.Capability != "":
		return nil, nexus.Errorf(nexus.EInvalid, "ask an agent or a capability, not both")
	case req.Agent != "":
		path = agentPath(req.Agent, "/generate")
	case req.Capability != "":
		body.Capability = req.Capability
	default:
		return nil, nexus.Errorf(nexus.EInvalid, "name an agent or a capability")
	}
	var out orchestrator.Answer
	if err := c.do(ctx, http.MethodPost, path, nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ProcessMany asks any agent with req.Capability, or req.Agents as a
// pipeline or a broadcast (req.Mode). A pipeline that fails at its first
// step, or a broadcast where every agent fails, is an error.
func (c *Client) ProcessMany(ctx context.Context, req ProcessRequest) (*ProcessResult, error) {
	if req.Timeout == "" {
		req.Timeout = timeoutOf(ctx)
	}
	var wire processResult
	if err := c.do(ctx, http.MethodPost, "/v1/agents/process", nil, req, &wire); err != nil {
		return nil, err
	}
	out := &ProcessResult{Answers: wire.Answers}
	if wire.Error != nil {
		out.Stopped = &nexus.Error{Code: wire.Error.Code, Message: wire.Error.Message}
	}
	for _, f := range wire.Errors {
		out.Failed = append(out.Failed, AgentFailure{Agent: f.Agent, Err: &nexus.Error{Code: f.Error.Code, Message: f.Error.Message}})
	}
	return out, nil
}

// CreateTask queues a task for external agents.
func (c *Client) CreateTask(ctx context.Context, n tasks.NewTask) (tasks.Task, error) {
	var out tasks.Task
	err := c.do(ctx, http.MethodPost, "/v1/tasks", nil, n, &out)
	return out, err
}

// Tasks lists the tasks in a state (tasks.Queued, ...; "" for all),
// oldest first, at most limit of them (0: all).
func (c *Client) Tasks(ctx context.Context, status string, limit int) ([]tasks.Task, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out taskList
	if err := c.do(ctx, http.MethodGet, "/v1/tasks", q, nil, &out); err != nil {
		return nil, err
	}
	return out.Tasks, nil
}

// Task returns one task.
func (c *Client) Task(ctx context.Context, id nexus.ID) (tasks.Task, error) {
	var out tasks.Task
	err := c.do(ctx, http.MethodGet, "/v1/tasks/"+id.String(), nil, nil, &out)
	return out, err
}

// ClaimTask claims the oldest queued task the agent can serve; ok is false
// when none waits. Keep the task's Claim, the claim's token: completing
// or failing it takes the token, and no other answer shows it.
func (c *Client) ClaimTask(ctx context.Context, agentID string) (t tasks.Task, ok bool, err error) {
	if err := c.do(ctx, http.MethodPost, "/v1/tasks/claim", nil, claimRequest{AgentID: agentID}, &t); err != nil {
		return tasks.Task{}, false, err
	}
	return t, !t.ID.IsZero(), nil
}

// CompleteTask completes a claimed task with its result, stored as a child
// context of the task. Code conflict means the claim is no longer the
// agent's (its lease lapsed) or the task is already done or failed; code
// forbidden, that another principal claimed it.
func (c *Client) CompleteTask(ctx context.Context, id nexus.ID, agentID, claim string, ans tasks.Answer) (tasks.Task, *nexus.Context, error) {
	if len(ans.Metadata) > 0 && !json.Valid(ans.Metadata) {
		return tasks.Task{}, nil, nexus.Errorf(nexus.EInvalid, "metadata is not valid JSON")
	}
	req := completeRequest{AgentID: agentID, Claim: claim, Content: ans.Content, Type: ans.Type, Metadata: ans.Metadata}
	var out completeResult
	if err := c.do(ctx, http.MethodPost, "/v1/tasks/"+id.String()+"/complete", nil, req, &out); err != nil {
		return tasks.Task{}, nil, err
	}
	return out.Task, out.Result, nil
}

// FailTask records a failed attempt at a claimed task: with retry it goes
// back to the queue while it has attempts left, otherwise it fails.
func (c *Client) FailTask(ctx context.Context, id nexus.ID, agentID, claim string, f tasks.Failure) (tasks.Task, error) {
	var out tasks.Task
	err := c.do(ctx, http.MethodPost, "/v1/tasks/"+id.String()+"/fail", nil, failRequest{AgentID: agentID, Claim: claim, Reason: f.Reason, Retry: f.Retry}, &out)
	return out, err
}

// timeoutOf is the timeout field of a call to the node's agents: what is
// left of ctx's deadline, to the nearest second, at most MaxAgentTimeout;
// none (the server's default) without a deadline or with less than a
// second left.
func timeoutOf(ctx context.Context) string {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ""
	}
	left := min(time.Until(deadline).Round(time.Second), MaxAgentTimeout)
	if left < time.Second {
		return ""
	}
	return left.String()
}
