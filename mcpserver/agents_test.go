package mcpserver_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/agent/agenttest"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/mcpserver"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/tasks"
)

var _ mcpserver.Agents = (*httpapi.Client)(nil)

// clock is the injected clock of a task queue.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// node is the agent side of a node: a task queue on a clock of its own,
// and an orchestrator with writer (capability docs) and broken (its
// provider answers 503), both calling fake OpenAI-compatible servers.
type node struct {
	queue *tasks.Queue
	orch  *orchestrator.Orchestrator
	clock *clock
}

const lease = 30 * time.Second

func newNode(t *testing.T, store nexus.Store) *node {
	t.Helper()
	n := &node{clock: &clock{now: time.Now()}}
	var err error
	n.queue, err = tasks.Open(t.Context(), store, tasks.Options{AgentLease: lease, ClaimLease: 2 * lease, Now: n.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	n.orch = orchestrator.New(store, orchestrator.Options{CheckpointEvery: -1})
	broken := agenttest.NewProvider(t, "broken")
	broken.SetDown(true)
	if err := n.orch.Add(agenttest.NewRunner(t, "writer", agenttest.NewProvider(t, "writer")), []string{"docs"}); err != nil {
		t.Fatal(err)
	}
	if err := n.orch.Add(agenttest.NewRunner(t, "broken", broken), nil); err != nil {
		t.Fatal(err)
	}
	return n
}

// Tool outputs, as the tests read them.
type (
	agentResult struct {
		AgentID      string `json:"agent_id"`
		Status       string
		Capabilities []string
		LeaseSeconds float64   `json:"lease_seconds"`
		LeaseExpires time.Time `json:"lease_expires"`
		Claims       []string
	}
	taskResult struct {
		ID          string
		Namespace   string
		Capability  string
		Content     string
		Creator     string
		Status      string
		Attempts    int
		MaxAttempts int    `json:"max_attempts"`
		ClaimedBy   string `json:"claimed_by"`
		Attempt     int
		Claim       string
		Result      string
		Error       string
	}
	claimResult struct {
		Claimed bool
		Task    *taskResult
	}
	completeResult struct {
		Task   taskResult
		Result nexus.Context
	}
)

// An external agent registers, claims, heartbeats and completes through
// MCP; a claim that lapsed gives code conflict as a tool error; failures
// go back to the queue or fail the task.
func checkTasks(t *testing.T, cs *mcp.ClientSession, n *node) {
	var a agentResult
	call(t, cs, "register_agent", map[string]any{"agent_id": "worker-a", "name": "Coding assistant", "capabilities": []string{"code"}}, &a)
	if a.AgentID != "worker-a" || a.Status != tasks.Active || a.LeaseSeconds != lease.Seconds() || len(a.Claims) != 0 || a.Capabilities[0] != "code" {
		t.Fatalf("register_agent: %+v", a)
	}
	var claim claimResult
	call(t, cs, "claim_task", map[string]any{"agent_id": "worker-a"}, &claim)
	if claim.Claimed || claim.Task != nil {
		t.Fatalf("claim_task with nothing queued: %+v", claim)
	}
	var task taskResult
	call(t, cs, "create_task", map[string]any{"content": "Fix the parser.", "capability": "code", "namespace": "ledger", "max_attempts": 2}, &task)
	if task.Status != tasks.Queued || task.Creator != "tester" || task.Namespace != "ledger" || task.MaxAttempts != 2 {
		t.Fatalf("create_task: %+v", task)
	}
	call(t, cs, "claim_task", map[string]any{"agent_id": "worker-a"}, &claim)
	if !claim.Claimed || claim.Task.ID != task.ID || claim.Task.Attempt != 1 || len(claim.Task.Claim) != 32 || claim.Task.ClaimedBy != "worker-a" || claim.Task.Status != tasks.Claimed {
		t.Fatalf("claim_task: %v %+v", claim.Claimed, claim.Task)
	}
	call(t, cs, "heartbeat_agent", map[string]any{"agent_id": "worker-a"}, &a)
	if len(a.Claims) != 1 || a.Claims[0] != task.ID {
		t.Errorf("heartbeat_agent: claims %v, want [%s]", a.Claims, task.ID)
	}
	complete := func(agent string, id string, claim string, content string) map[string]any {
		return map[string]any{"task_id": id, "agent_id": agent, "claim": claim, "content": content}
	}
	if code, msg := toolError(t, cs, "complete_task", complete("worker-a", task.ID, "2", "x")); code != nexus.EConflict || !strings.Contains(msg, "not current") {
		t.Errorf("complete_task with another claim number: %s %q", code, msg)
	}
	var done completeResult
	args := complete("worker-a", task.ID, claim.Task.Claim, "Fixed in parse.go.")
	args["metadata"] = map[string]any{"files": []string{"parse.go"}}
	call(t, cs, "complete_task", args, &done)
	if done.Task.Status != tasks.Done || done.Task.Result != done.Result.ID.String() || done.Result.ParentID.String() != task.ID ||
		done.Result.AgentID != "worker-a" || done.Result.Type != nexus.TypeResult || done.Result.Namespace != "ledger" ||
		!strings.Contains(string(done.Result.Metadata), `"files":["parse.go"]`) {
		t.Fatalf("complete_task: %+v", done)
	}
	if code, _ := toolError(t, cs, "complete_task", complete("worker-a", task.ID, claim.Task.Claim, "Again.")); code != nexus.EConflict {
		t.Errorf("complete_task twice: %s", code)
	}

	// worker-a stops heartbeating while it holds a task: the task goes
	// back to the queue, worker-b completes it, and worker-a's late
	// completion is a conflict.
	var review taskResult
	call(t, cs, "create_task", map[string]any{"content": "Review the migration."}, &review)
	call(t, cs, "claim_task", map[string]any{"agent_id": "worker-a"}, &claim)
	if !claim.Claimed || claim.Task.ID != review.ID {
		t.Fatalf("worker-a claims the review: %+v", claim)
	}
	stale := claim.Task.Claim
	n.clock.Add(lease + time.Second)
	call(t, cs, "register_agent", map[string]any{"agent_id": "worker-b"}, &a)
	if got := n.queue.Reap(); got != 1 {
		t.Fatalf("Reap sent %d tasks back, want 1", got)
	}
	call(t, cs, "claim_task", map[string]any{"agent_id": "worker-b"}, &claim)
	if !claim.Claimed || claim.Task.ID != review.ID || claim.Task.Attempt != 2 || claim.Task.Claim == stale {
		t.Fatalf("worker-b claims the review: %+v", claim)
	}
	if code, msg := toolError(t, cs, "complete_task", complete("worker-a", review.ID, stale, "LGTM")); code != nexus.EConflict || !strings.Contains(msg, "claim it again") {
		t.Errorf("complete_task on a lapsed claim: %s %q", code, msg)
	}
	call(t, cs, "complete_task", complete("worker-b", review.ID, claim.Task.Claim, "Two nits."), &done)
	if done.Result.AgentID != "worker-b" || done.Task.Status != tasks.Done {
		t.Errorf("worker-b completes: %+v", done)
	}
	if code, msg := toolError(t, cs, "claim_task", map[string]any{"agent_id": "worker-a"}); code != nexus.ENotFound || !strings.Contains(msg, "register it again") {
		t.Errorf("claim_task by a lost agent: %s %q", code, msg)
	}
	if code, msg := toolError(t, cs, "heartbeat_agent", map[string]any{"agent_id": "stranger"}); code != nexus.ENotFound || !strings.Contains(msg, "call register_agent again") {
		t.Errorf("heartbeat_agent of an unknown agent: %s %q", code, msg)
	}

	// fail_task: with retry the task is queued again; without, it fails.
	var docs taskResult
	call(t, cs, "create_task", map[string]any{"content": "Translate the README.", "parent_id": done.Result.ID.String()}, &docs)
	if docs.Namespace != nexus.DefaultNamespace {
		t.Errorf("a task under %s: namespace %q, want its parent's", done.Result.ID, docs.Namespace)
	}
	call(t, cs, "claim_task", map[string]any{"agent_id": "worker-b"}, &claim)
	call(t, cs, "fail_task", map[string]any{"task_id": docs.ID, "agent_id": "worker-b", "claim": claim.Task.Claim, "reason": "no glossary", "retry": true}, &task)
	if task.Status != tasks.Queued || task.Error != "no glossary" {
		t.Errorf("fail_task with retry: %+v", task)
	}
	call(t, cs, "claim_task", map[string]any{"agent_id": "worker-b"}, &claim)
	call(t, cs, "fail_task", map[string]any{"task_id": docs.ID, "agent_id": "worker-b", "claim": claim.Task.Claim, "reason": "still no glossary"}, &task)
	if task.Status != tasks.Failed || task.Attempts != 2 {
		t.Errorf("fail_task: %+v", task)
	}
	if code, _ := toolError(t, cs, "fail_task", map[string]any{"task_id": docs.ID, "agent_id": "worker-b", "claim": claim.Task.Claim, "reason": "x"}); code != nexus.EConflict {
		t.Errorf("fail_task of a failed task: %s", code)
	}

	for _, c := range []struct {
		tool string
		args map[string]any
		code nexus.Code
		msg  string
	}{
		{"register_agent", map[string]any{"agent_id": "-x"}, nexus.EInvalid, "agent_id: pattern"},
		{"register_agent", map[string]any{"agent_id": "x", "capabilities": []string{"a b"}}, nexus.EInvalid, "pattern"},
		{"register_agent", map[string]any{}, nexus.EInvalid, `missing properties: ["agent_id"]`},
		{"register_agent", map[string]any{"agent_id": "writer"}, nexus.EConflict, "taken by one of this node's own agents"},
		{"create_task", map[string]any{"content": ""}, nexus.EInvalid, "content: minLength"},
		{"create_task", map[string]any{"content": "x", "max_attempts": 500}, nexus.EInvalid, "max_attempts: maximum: 500 is greater than 100"},
		{"create_task", map[string]any{"content": "x", "parent_id": newID()}, nexus.EInvalid, "does not exist"},
		{"complete_task", complete("worker-b", "nope", "1", "x"), nexus.EInvalid, "task_id: invalid id"},
		{"complete_task", complete("worker-b", newID(), "1", "x"), nexus.ENotFound, "not found"},
		{"complete_task", complete("worker-b", docs.ID, "", "x"), nexus.EInvalid, "claim: minLength"},
		{"fail_task", map[string]any{"task_id": docs.ID, "agent_id": "worker-b", "claim": "1"}, nexus.EInvalid, `missing properties: ["reason"]`},
	} {
		code, msg := toolError(t, cs, c.tool, c.args)
		if code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s %v: %s %q, want %s containing %q", c.tool, c.args, code, msg, c.code, c.msg)
		}
	}
}

// process_context asks the node's agents by id or capability and stores
// their answers with provenance.
func checkProcess(t *testing.T, cs *mcp.ClientSession, th thread) {
	var out struct {
		Context    nexus.Context
		Provenance struct {
			Agent      string
			FinalAgent string `json:"final_agent"`
			Model      string
			TokensIn   int `json:"tokens_in"`
			TokensOut  int `json:"tokens_out"`
			Attempts   int
			Trail      []struct{ Agent string }
		}
	}
	call(t, cs, "process_context", map[string]any{"context_id": th.child.ID.String(), "agent": "writer", "type": "analysis"}, &out)
	c, p := out.Context, out.Provenance
	if c.ParentID != th.child.ID || c.Namespace != "ledger" || c.Type != nexus.TypeAnalysis || c.AgentID != "writer" ||
		c.Content != agenttest.Answer("writer", th.child.Content) {
		t.Errorf("process_context: %+v", c)
	}
	if p.Agent != "writer" || p.FinalAgent != "writer" || p.Model != agenttest.Model || p.TokensIn != 42 || p.TokensOut != 7 || p.Attempts != 1 || len(p.Trail) != 1 {
		t.Errorf("provenance: %+v", p)
	}
	call(t, cs, "process_context", map[string]any{"context_id": th.leaf.ID.String(), "capability": "docs"}, &out)
	if out.Context.ParentID != th.leaf.ID || out.Context.Type != nexus.TypeResult || out.Provenance.FinalAgent != "writer" {
		t.Errorf("process_context by capability: %+v", out)
	}
	for _, c := range []struct {
		args map[string]any
		code nexus.Code
		msg  string
	}{
		{map[string]any{"context_id": th.leaf.ID.String()}, nexus.EInvalid, "name an agent or a capability"},
		{map[string]any{"context_id": th.leaf.ID.String(), "agent": "writer", "capability": "docs"}, nexus.EInvalid, "not both"},
		{map[string]any{"context_id": th.leaf.ID.String(), "agent": "nobody"}, nexus.ENotFound, `no agent "nobody"`},
		{map[string]any{"context_id": th.leaf.ID.String(), "capability": "poetry"}, nexus.ENotFound, "poetry"},
		{map[string]any{"context_id": newID(), "agent": "writer"}, nexus.ENotFound, "not found"},
		{map[string]any{"context_id": th.leaf.ID.String(), "agent": "broken"}, nexus.EUnavailable, "503"},
		{map[string]any{"context_id": "x", "agent": "writer"}, nexus.EInvalid, "context_id: invalid id"},
		{map[string]any{"context_id": th.leaf.ID.String(), "agent": "writer", "type": "poem"}, nexus.EInvalid, "type: enum"},
	} {
		code, msg := toolError(t, cs, "process_context", c.args)
		if code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("process_context %v: %s %q, want %s containing %q", c.args, code, msg, c.code, c.msg)
		}
	}
}

// The agent tools are offered only with a backend for them, and say why
// they fail when the node has no queue or no agents.
func TestNew_agentTools(t *testing.T) {
	m := newMemory(t)
	names := func(cs *mcp.ClientSession) string {
		res, err := cs.ListTools(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tool := range res.Tools {
			out = append(out, tool.Name)
		}
		return strings.Join(out, " ")
	}
	if got := names(connect(t, mcpserver.New(m.store, nil, mcpserver.Options{}))); strings.Contains(got, "task") || strings.Contains(got, "agent") {
		t.Errorf("a store alone offers %s", got)
	}
	cs := connect(t, mcpserver.New(m.store, nil, mcpserver.Options{Agents: mcpserver.LocalAgents(nil, nil)}))
	if got := names(cs); !strings.Contains(got, "claim_task") || !strings.Contains(got, "process_context") {
		t.Errorf("with Agents: %s", got)
	}
	if ins := cs.InitializeResult().Instructions; !strings.Contains(ins, "heartbeat_agent more often than lease_seconds") {
		t.Errorf("instructions: %s", ins)
	}
	if code, msg := toolError(t, cs, "claim_task", map[string]any{"agent_id": "a"}); code != nexus.ENotFound || !strings.Contains(msg, "task queue is not enabled") {
		t.Errorf("claim_task without a queue: %s %q", code, msg)
	}
	if code, msg := toolError(t, cs, "process_context", map[string]any{"context_id": newID(), "agent": "a"}); code != nexus.ENotFound || !strings.Contains(msg, "runs no agents") {
		t.Errorf("process_context without agents: %s %q", code, msg)
	}
}

// generate_context has the node's agents answer a prompt alone and stores
// the answer as a root or under a parent, with provenance.
func checkGenerate(t *testing.T, cs *mcp.ClientSession, th thread) {
	var out struct {
		Context    nexus.Context
		Provenance struct {
			FinalAgent string `json:"final_agent"`
			TokensIn   int    `json:"tokens_in"`
		}
	}
	call(t, cs, "generate_context", map[string]any{"prompt": "Name the parser.", "agent": "writer", "namespace": "names"}, &out)
	if c := out.Context; !c.ParentID.IsZero() || c.Namespace != "names" || c.Type != nexus.TypeResult || c.AgentID != "writer" ||
		c.Content != agenttest.Answer("writer", "Name the parser.") || out.Provenance.FinalAgent != "writer" || out.Provenance.TokensIn != 42 {
		t.Errorf("generate_context: %+v", out)
	}
	call(t, cs, "generate_context", map[string]any{"prompt": "Describe it.", "capability": "docs", "type": "document", "parent_id": th.leaf.ID.String()}, &out)
	if c := out.Context; c.ParentID != th.leaf.ID || c.Namespace != th.leaf.Namespace || c.Type != nexus.TypeDocument {
		t.Errorf("generate_context by capability under a parent: %+v", out)
	}
	for _, c := range []struct {
		args map[string]any
		code nexus.Code
		msg  string
	}{
		{map[string]any{"prompt": "x"}, nexus.EInvalid, "name an agent or a capability"},
		{map[string]any{"prompt": "", "agent": "writer"}, nexus.EInvalid, "prompt: minLength"},
		{map[string]any{"prompt": "x", "agent": "nobody"}, nexus.ENotFound, `no agent "nobody"`},
		{map[string]any{"prompt": "x", "agent": "writer", "parent_id": newID()}, nexus.ENotFound, "not found"},
		{map[string]any{"prompt": "x", "agent": "broken"}, nexus.EUnavailable, "503"},
	} {
		code, msg := toolError(t, cs, "generate_context", c.args)
		if code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("generate_context %v: %s %q, want %s containing %q", c.args, code, msg, c.code, c.msg)
		}
	}
}

// process_context and generate_context return the provenance in the shape
// of the HTTP answer and of the stored metadata: the same keys, the same
// kinds of values (latency_ns in nanoseconds, an integer), trail entries
// of a failover included.
func TestProcessContext_provenanceAsHTTP(t *testing.T) {
	m := newMemory(t)
	// relay routes to broken (its provider answers 503) first, then to
	// writer: a trail of two.
	relay := func() *orchestrator.Orchestrator {
		o := orchestrator.New(m.store, orchestrator.Options{CheckpointEvery: -1})
		broken := agenttest.NewProvider(t, "broken")
		broken.SetDown(true)
		for _, r := range []*agent.Runner{agenttest.NewRunner(t, "broken", broken), agenttest.NewRunner(t, "writer", agenttest.NewProvider(t, "writer"))} {
			if err := o.Add(r, []string{"relay"}); err != nil {
				t.Fatal(err)
			}
		}
		return o
	}
	q, err := m.store.Put(t.Context(), nexus.Draft{Namespace: "ledger", Type: nexus.TypeInstruction, Content: "Write the README."})
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		Context    struct{ Metadata struct{ Provenance any } }
		Provenance any
	}
	for _, c := range []struct{ tool, path, body string }{
		{"process_context", "/v1/agents/process", fmt.Sprintf(`{"context_id":%q,"capability":"relay"}`, q.ID)},
		{"generate_context", "/v1/agents/generate", `{"prompt":"Name the parser.","capability":"relay"}`},
	} {
		srv := httptest.NewServer(httpapi.NewServer(m.store, httpapi.Options{Agents: relay()}))
		t.Cleanup(srv.Close)
		cs := connect(t, mcpserver.New(m.store, nil, mcpserver.Options{Agents: mcpserver.LocalAgents(nil, relay())}))
		resp, err := http.Post(srv.URL+c.path, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		var overHTTP struct {
			answer
			Answers []answer // by capability, POST /v1/agents/process answers a list
		}
		err = json.NewDecoder(resp.Body).Decode(&overHTTP)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s: %d %v", c.path, resp.StatusCode, err)
		}
		if len(overHTTP.Answers) == 1 {
			overHTTP.answer = overHTTP.Answers[0]
		}
		var args map[string]any
		if err := json.Unmarshal([]byte(c.body), &args); err != nil {
			t.Fatal(err)
		}
		var overMCP struct{ Provenance any }
		call(t, cs, c.tool, args, &overMCP)

		want := shape(overHTTP.Provenance)
		if stored := shape(overHTTP.Context.Metadata.Provenance); stored != want {
			t.Errorf("%s: the answer's provenance %s, the stored one %s", c.path, want, stored)
		}
		if got := shape(overMCP.Provenance); got != want {
			t.Errorf("%s: provenance %s, over HTTP %s", c.tool, got, want)
		}
		for _, key := range []string{"latency_ns:integer", "trail[0].class:string", "trail[1].latency_ns:integer"} {
			if !strings.Contains(want, key) {
				t.Errorf("%s: provenance %s has no %s", c.path, want, key)
			}
		}
	}
}

// shape lists the keys of a JSON value decoded into any, with the kind of
// each value, sorted: "attempts:integer trail[0].agent:string ...".
func shape(v any) string {
	var keys []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(strings.TrimPrefix(prefix+"."+k, "."), e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", prefix, i), e)
			}
		case float64:
			kind := "number"
			if x == math.Trunc(x) {
				kind = "integer"
			}
			keys = append(keys, prefix+":"+kind)
		default:
			keys = append(keys, fmt.Sprintf("%s:%T", prefix, x))
		}
	}
	walk("", v)
	slices.Sort(keys)
	return strings.Join(keys, " ")
}
