package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/supervisor"
	"github.com/nexus-mem/nexus/tasks"
)

// Agents: the node's own (package orchestrator, configured in serve's
// config file) and external ones with their task queue (package tasks).
//
//	POST /v1/agents                  register an external agent {"id", "name", "capabilities"} → 201
//	GET  /v1/agents                  {"agents": [the node's own, with status], "external": [...], "processes": [supervised]}
//	GET  /v1/agents/{id}             one agent, either kind
//	POST /v1/agents/{id}/heartbeat   renew an external agent's lease and its claims' (404: register again)
//	POST /v1/agents/{id}/process     {"context_id", "type", "timeout"} → 201 answer, stored as a child
//	POST /v1/agents/process          {"context_id", "capability"} or {"context_id", "agents", "mode": "pipeline"|"broadcast"}, and "timeout"
//	POST /v1/agents/{id}/generate    {"prompt", "namespace", "type", "parent_id", "timeout"} → 201 answer, stored as a new context
//	POST /v1/agents/generate         the same with "capability"
//
// A call to the node's agents lasts at most its timeout (default 2m, at
// most 10m); the write deadline of its response is moved past it. A rate
// limited agent that said how long to wait answers 429 with Retry-After;
// other agent failures answer 503, with Retry-After when the wait is known.
//	POST /v1/tasks                   create {"content", "namespace", "capability", "parent_id", "agent_id", "max_attempts"} → 201
//	GET  /v1/tasks?status=&limit=    {"tasks": [...]}
//	GET  /v1/tasks/{id}              one task
//	POST /v1/tasks/claim             {"agent_id"} → 200 task with its claim token, or 204 when none waits
//	POST /v1/tasks/{id}/complete     {"agent_id", "claim", "content", "type", "metadata"} → {"task", "result"}
//	POST /v1/tasks/{id}/fail         {"agent_id", "claim", "reason", "retry"} → task

type registerRequest struct {
	ID           string   `json:"id"`
	Name         string   `json:"name,omitempty"`
	Capabilities []string `json:"capabilities,omitempty"`
}

type claimRequest struct {
	AgentID string `json:"agent_id"`
}

type completeRequest struct {
	AgentID  string          `json:"agent_id"`
	Claim    string          `json:"claim"`
	Content  string          `json:"content"`
	Type     nexus.Type      `json:"type,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// taskList is the answer of GET /v1/tasks.
type taskList struct {
	Tasks []tasks.Task `json:"tasks"`
}

// completeResult is the answer of POST /v1/tasks/{id}/complete.
type completeResult struct {
	Task   tasks.Task     `json:"task"`
	Result *nexus.Context `json:"result"`
}

type failRequest struct {
	AgentID string `json:"agent_id"`
	Claim   string `json:"claim"`
	Reason  string `json:"reason"`
	Retry   bool   `json:"retry,omitempty"`
}

var (
	registerFields = jsonFields[registerRequest]()
	claimFields    = jsonFields[claimRequest]()
	completeFields = jsonFields[completeRequest]()
	failFields     = jsonFields[failRequest]()
	newTaskFields  = jsonFields[tasks.NewTask]()
)

var errNoTasks = nexus.Errorf(nexus.ENotFound, "the task queue is not enabled on this server")

// decodeBody reads a JSON object body into v, refusing unknown fields.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any, fields []string) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	body, err := s.readJSONBody(w, r)
	if err != nil {
		return err
	}
	return decodeObject(body, v, fields)
}

func (s *Server) registerAgent(w http.ResponseWriter, r *http.Request) error {
	if s.tasks == nil {
		return errNoTasks
	}
	var req registerRequest
	if err := s.decodeBody(w, r, &req, registerFields); err != nil {
		return err
	}
	if s.agents != nil && s.agents.Has(req.ID) {
		return errOwnAgent(req.ID)
	}
	a, err := s.tasks.Register(r.Context(), req.ID, req.Name, req.Capabilities)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, a)
}

// errOwnAgent refuses to register an external agent under the id of one
// of the node's own agents or pools.
func errOwnAgent(id string) error {
	return nexus.Errorf(nexus.EConflict, "agent id %q is taken by one of this node's own agents (GET /v1/agents lists them): register under another id", clip(id, 80))
}

// OwnAgent is one of the node's own agents (or pools), as GET /v1/agents
// lists it.
type OwnAgent struct {
	orchestrator.Info
	Status *agent.Status `json:"status,omitempty"` // absent for a pool
}

// AgentList is the answer of GET /v1/agents: the node's own agents, in
// the order configured, the external ones, by id, and the node's
// supervised processes, by name.
type AgentList struct {
	Agents    []OwnAgent          `json:"agents"`
	External  []tasks.Agent       `json:"external"`
	Processes []supervisor.Status `json:"processes"`
}

func (s *Server) ownAgents() []OwnAgent {
	out := []OwnAgent{}
	if s.agents == nil {
		return out
	}
	status := map[string]agent.Status{}
	if s.agentSt != nil {
		for _, st := range s.agentSt() {
			status[st.Agent] = st
		}
	}
	for _, info := range s.agents.Agents() {
		a := OwnAgent{Info: info}
		if st, ok := status[info.ID]; ok {
			a.Status = &st
		}
		out = append(out, a)
	}
	return out
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	external := []tasks.Agent{}
	if s.tasks != nil {
		external = s.tasks.Agents()
	}
	procs := []supervisor.Status{}
	if s.procs != nil {
		procs = append(procs, s.procs()...)
	}
	return s.writeStatus(w, http.StatusOK, AgentList{Agents: s.ownAgents(), External: external, Processes: procs})
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	for _, a := range s.ownAgents() {
		if a.ID == id {
			return s.writeStatus(w, http.StatusOK, a)
		}
	}
	if s.tasks == nil {
		return nexus.Errorf(nexus.ENotFound, "no agent %q on this node", clip(id, 80))
	}
	a, err := s.tasks.Agent(id)
	if err != nil {
		return err
	}
	return s.writeStatus(w, http.StatusOK, a)
}

var errNoAgents = nexus.Errorf(nexus.ENotFound, "this node runs no agents (serve --config names them)")

// ProcessRequest is the body of POST /v1/agents/process (and, with
// ContextID and Type alone, of POST /v1/agents/{id}/process): a
// capability, or agents with a mode.
type ProcessRequest struct {
	ContextID  nexus.ID   `json:"context_id"`
	Type       nexus.Type `json:"type,omitempty"` // of the answers; default result
	Capability string     `json:"capability,omitempty"`
	Agents     []string   `json:"agents,omitempty"`
	Mode       string     `json:"mode,omitempty"` // ModePipeline or ModeBroadcast, with Agents
	// Timeout bounds the whole call, retries, waits and every step
	// included: a Go duration ("90s", "5m"); default DefaultAgentTimeout,
	// at most MaxAgentTimeout.
	Timeout string `json:"timeout,omitempty"`
}

// How long a call to the node's agents may take: by default, and at most
// (the timeout field of a request).
const (
	DefaultAgentTimeout = 2 * time.Minute
	MaxAgentTimeout     = 10 * time.Minute
)

// agentContext is the context of a call to the node's agents: r's, with
// the deadline the request asked for. The answer is written after the
// call, so the response's write deadline is moved past it (the server's
// WriteTimeout would cut it short).
func agentContext(w http.ResponseWriter, r *http.Request, timeout string) (context.Context, context.CancelFunc, error) {
	d := DefaultAgentTimeout
	if timeout != "" {
		v, err := time.ParseDuration(timeout)
		if err != nil || v <= 0 || v > MaxAgentTimeout {
			return nil, nil, nexus.Errorf(nexus.EInvalid, "timeout %q: want a duration such as 90s or 5m, above 0 and at most %s", clip(timeout, 20), MaxAgentTimeout)
		}
		d = v
	}
	// Not every ResponseWriter has deadlines (a test recorder, HTTP/1
	// hijacked); then there is nothing to extend.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + 30*time.Second))
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return ctx, cancel, nil
}

// agentFailed answers the failure of a call to the node's agents: code
// rate_limited (429) when an agent is rate limited and said for how long,
// else the error's own code; with Retry-After whenever the wait is known.
// A call that ran out of its timeout says so.
func (s *Server) agentFailed(ctx context.Context, w http.ResponseWriter, r *http.Request, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil {
		return nexus.Errorf(nexus.EUnavailable, "the agents did not answer within the timeout (nothing was stored; the timeout field allows up to %s): %s", MaxAgentTimeout, nexus.ErrorMessage(err))
	}
	var e *agent.Error
	if !errors.As(err, &e) || e.RetryAfter <= 0 {
		return err
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	if e.Class != agent.ClassRateLimit {
		return err
	}
	return nexus.WrapError(nexus.ERateLimited, err, "%s", nexus.ErrorMessage(err))
}

// The modes of a [ProcessRequest] with agents.
const (
	ModePipeline  = "pipeline"  // each agent answers the previous answer
	ModeBroadcast = "broadcast" // every agent answers the same context
)

var processFields = jsonFields[ProcessRequest]()

// processResult is the answer of POST /v1/agents/process.
type processResult struct {
	Answers []*orchestrator.Answer `json:"answers"`         // broadcast: null where an agent failed
	Error   *nexus.ErrorDetail     `json:"error,omitempty"` // pipeline: why it stopped
	Errors  []agentError           `json:"errors,omitempty"`
}

type agentError struct {
	Agent string            `json:"agent"`
	Error nexus.ErrorDetail `json:"error"`
}

func (s *Server) processWith(w http.ResponseWriter, r *http.Request) error {
	if s.agents == nil {
		return errNoAgents
	}
	var req ProcessRequest
	if err := s.decodeBody(w, r, &req, processFields); err != nil {
		return err
	}
	if req.Capability != "" || len(req.Agents) > 0 || req.Mode != "" {
		return nexus.Errorf(nexus.EInvalid, "the agent is in the path: capability, agents and mode belong to POST /v1/agents/process")
	}
	ctx, cancel, err := agentContext(w, r, req.Timeout)
	if err != nil {
		return err
	}
	defer cancel()
	a, err := s.agents.Process(ctx, orchestrator.Request{ContextID: req.ContextID, Agent: r.PathValue("id"), Type: req.Type})
	if err != nil {
		return s.agentFailed(ctx, w, r, err)
	}
	return writeJSON(w, http.StatusCreated, a)
}

func (s *Server) processMany(w http.ResponseWriter, r *http.Request) error {
	if s.agents == nil {
		return errNoAgents
	}
	var req ProcessRequest
	if err := s.decodeBody(w, r, &req, processFields); err != nil {
		return err
	}
	switch {
	case req.Capability != "" && (len(req.Agents) > 0 || req.Mode != ""):
		return nexus.Errorf(nexus.EInvalid, "give a capability, or agents with a mode, not both")
	case req.Capability == "" && (len(req.Agents) == 0 || len(req.Agents) > 16):
		return nexus.Errorf(nexus.EInvalid, "agents: want 1-16 agent ids (or a capability)")
	case req.ContextID.IsZero():
		return nexus.Errorf(nexus.EInvalid, "context_id is required")
	case req.Capability == "" && req.Mode != ModePipeline && req.Mode != ModeBroadcast:
		return nexus.Errorf(nexus.EInvalid, "mode %q: want pipeline or broadcast", clip(req.Mode, 20))
	}
	ctx, cancel, err := agentContext(w, r, req.Timeout)
	if err != nil {
		return err
	}
	defer cancel()
	if req.Capability != "" {
		a, err := s.agents.Process(ctx, orchestrator.Request{ContextID: req.ContextID, Capability: req.Capability, Type: req.Type})
		if err != nil {
			return s.agentFailed(ctx, w, r, err)
		}
		return writeJSON(w, http.StatusCreated, processResult{Answers: []*orchestrator.Answer{a}})
	}
	if req.Mode == ModePipeline {
		answers, err := s.agents.Pipeline(ctx, req.ContextID, req.Agents, req.Type)
		if err != nil && len(answers) == 0 {
			return s.agentFailed(ctx, w, r, err)
		}
		out := processResult{Answers: orEmpty(answers)}
		if err != nil {
			d := nexus.DetailOf(err)
			out.Error = &d
		}
		return writeJSON(w, http.StatusCreated, out)
	}
	answers, errs := s.agents.Broadcast(ctx, req.ContextID, req.Agents, req.Type)
	out := processResult{Answers: answers}
	for i, err := range errs {
		if err != nil {
			out.Errors = append(out.Errors, agentError{Agent: req.Agents[i], Error: nexus.DetailOf(err)})
		}
	}
	if len(out.Errors) == len(errs) {
		return s.agentFailed(ctx, w, r, errs[0])
	}
	return writeJSON(w, http.StatusCreated, out)
}

// GenerateRequest is the body of POST /v1/agents/generate (and, without
// Capability, of POST /v1/agents/{id}/generate): a prompt to answer, and
// where to store the answer.
type GenerateRequest struct {
	Capability string     `json:"capability,omitempty"`
	Prompt     string     `json:"prompt"`
	Namespace  string     `json:"namespace,omitempty"` // of the answer; default the parent's, else default
	Type       nexus.Type `json:"type,omitempty"`      // of the answer; default result
	ParentID   nexus.ID   `json:"parent_id,omitzero"`  // none: the answer is a root
	Timeout    string     `json:"timeout,omitempty"`   // as in ProcessRequest
}

var generateFields = jsonFields[GenerateRequest]()

func (s *Server) generateWith(w http.ResponseWriter, r *http.Request) error {
	return s.generate(w, r, r.PathValue("id"))
}

func (s *Server) generateBy(w http.ResponseWriter, r *http.Request) error {
	return s.generate(w, r, "")
}

// generate answers POST /v1/agents/{id}/generate (id set) and
// /v1/agents/generate (by capability).
func (s *Server) generate(w http.ResponseWriter, r *http.Request, id string) error {
	if s.agents == nil {
		return errNoAgents
	}
	var req GenerateRequest
	if err := s.decodeBody(w, r, &req, generateFields); err != nil {
		return err
	}
	switch {
	case id != "" && req.Capability != "":
		return nexus.Errorf(nexus.EInvalid, "the agent is in the path: a capability belongs to POST /v1/agents/generate")
	case id == "" && req.Capability == "":
		return nexus.Errorf(nexus.EInvalid, "capability is required (or POST /v1/agents/{id}/generate to ask one agent)")
	}
	ctx, cancel, err := agentContext(w, r, req.Timeout)
	if err != nil {
		return err
	}
	defer cancel()
	a, err := s.agents.Generate(ctx, orchestrator.GenerateRequest{Agent: id, Capability: req.Capability, Prompt: req.Prompt,
		Namespace: req.Namespace, Type: req.Type, ParentID: req.ParentID})
	if err != nil {
		return s.agentFailed(ctx, w, r, err)
	}
	return writeJSON(w, http.StatusCreated, a)
}

func orEmpty(a []*orchestrator.Answer) []*orchestrator.Answer {
	if a == nil {
		return []*orchestrator.Answer{}
	}
	return a
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	if s.tasks == nil {
		return errNoTasks
	}
	if _, err := parseQuery(r); err != nil {
		return err
	}
	a, err := s.tasks.Heartbeat(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a)
}

func (s *Server) createTask(w http.ResponseWriter, r *http.Request) error {
	if s.tasks == nil {
		return errNoTasks
	}
	var req tasks.NewTask
	if err := s.decodeBody(w, r, &req, newTaskFields); err != nil {
		return err
	}
	t, err := s.tasks.Create(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, t)
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) error {
	if s.tasks == nil {
		return errNoTasks
	}
	q, err := parseQuery(r, "status", "limit")
	if err != nil {
		return err
	}
	limit := 0
	if v := q["limit"]; v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			return nexus.Errorf(nexus.EInvalid, "limit %q: want a number of tasks, 0 or more", clip(v, 20))
		}
	}
	list, err := s.tasks.List(r.Context(), q["status"], limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, taskList{Tasks: list})
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request) error {
	if s.tasks == nil {
		return errNoTasks
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if _, err := parseQuery(r); err != nil {
		return err
	}
	t, err := s.tasks.Get(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

func (s *Server) claimTask(w http.ResponseWriter, r *http.Request) error {
	if s.tasks == nil {
		return errNoTasks
	}
	var req claimRequest
	if err := s.decodeBody(w, r, &req, claimFields); err != nil {
		return err
	}
	if err := nexus.ValidateAgentID(req.AgentID); err != nil {
		return err
	}
	t, ok, err := s.tasks.Claim(r.Context(), req.AgentID)
	if err != nil {
		return err
	}
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return writeJSON(w, http.StatusOK, t)
}

func (s *Server) completeTask(w http.ResponseWriter, r *http.Request) error {
	if s.tasks == nil {
		return errNoTasks
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req completeRequest
	if err := s.decodeBody(w, r, &req, completeFields); err != nil {
		return err
	}
	if err := checkClaim(req.AgentID, req.Claim); err != nil {
		return err
	}
	t, c, err := s.tasks.Complete(r.Context(), id, req.AgentID, req.Claim, tasks.Answer{Content: req.Content, Type: req.Type, Metadata: req.Metadata})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, completeResult{Task: t, Result: c})
}

func (s *Server) failTask(w http.ResponseWriter, r *http.Request) error {
	if s.tasks == nil {
		return errNoTasks
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req failRequest
	if err := s.decodeBody(w, r, &req, failFields); err != nil {
		return err
	}
	if err := checkClaim(req.AgentID, req.Claim); err != nil {
		return err
	}
	t, err := s.tasks.Fail(r.Context(), id, req.AgentID, req.Claim, tasks.Failure{Reason: req.Reason, Retry: req.Retry})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

// checkClaim checks the agent and claim token of a completion or a
// failure before the queue looks for the claim.
func checkClaim(agentID, claim string) error {
	if err := nexus.ValidateAgentID(agentID); err != nil {
		return err
	}
	if claim == "" {
		return nexus.Errorf(nexus.EInvalid, "claim is required: the claim token POST /v1/tasks/claim returned")
	}
	return nil
}
