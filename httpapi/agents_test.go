package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/agent/agenttest"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/storetest"
	"github.com/nexus-mem/nexus/supervisor"
	"github.com/nexus-mem/nexus/tasks"
)

// fakeClock is the injected clock of a task queue.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// agentNode is a server over a store on disk with a task queue and three
// agents of its own calling fake providers: writer (capability docs),
// critic (review) and broken (docs, its provider answers 503), and a
// pool team of writer and critic; it supervises one process, sleeper.
type agentNode struct {
	store  *gitstore.Store
	queue  *tasks.Queue
	orch   *orchestrator.Orchestrator
	clock  *fakeClock
	broken *agenttest.Provider
	srv    *httptest.Server
}

const (
	agentLease = 30 * time.Second
	claimLease = time.Minute
)

func newAgentNode(t *testing.T) *agentNode {
	t.Helper()
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n := &agentNode{store: st, clock: &fakeClock{now: time.Now()}}
	n.queue, err = tasks.Open(t.Context(), st, tasks.Options{AgentLease: agentLease, ClaimLease: claimLease, Now: n.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	n.orch = orchestrator.New(st, orchestrator.Options{CheckpointEvery: -1})
	writer := agenttest.NewRunner(t, "writer", agenttest.NewProvider(t, "writer"))
	critic := agenttest.NewRunner(t, "critic", agenttest.NewProvider(t, "critic"))
	n.broken = agenttest.NewProvider(t, "broken")
	n.broken.SetDown(true)
	broken := agenttest.NewRunner(t, "broken", n.broken)
	team, err := agent.NewPool("team", nil, agent.Member{Agent: writer}, agent.Member{Agent: critic})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		a    agent.Agent
		caps []string
	}{{writer, []string{"docs"}}, {critic, []string{"review"}}, {broken, []string{"docs"}}, {team, nil}} {
		if err := n.orch.Add(a.a, a.caps); err != nil {
			t.Fatal(err)
		}
	}
	runners := []*agent.Runner{writer, critic, broken}
	status := func() []agent.Status {
		var out []agent.Status
		for _, r := range runners {
			out = append(out, r.Status())
		}
		return out
	}
	sup, err := supervisor.New(supervisor.Options{RunDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Close(context.Background()) })
	if err := sup.Start(supervisor.Spec{Name: "sleeper", Command: "sleep", Args: []string{"3600"}, LogDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	n.srv = httptest.NewServer(httpapi.NewServer(st, httpapi.Options{Tasks: n.queue, Agents: n.orch, AgentStatus: status, Processes: sup.Status}))
	t.Cleanup(n.srv.Close)
	return n
}

// decode unmarshals a response body into a value of type T.
func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return v
}

// errCode is the code of an error body.
func errCode(t *testing.T, body []byte) nexus.Code {
	t.Helper()
	return decode[apiError](t, body).Error.Code
}

const js = "application/json"

// The node's own agents: listing with status, one by id, processing by
// agent, by capability, as a pipeline and as a broadcast, and the errors;
// every request and answer as the document says.
func TestAgentsAPI_ownAgents(t *testing.T) {
	n := newAgentNode(t)
	call := newDocCaller(t, loadOpenAPI(t), n.srv).call
	root := mustPut(t, n.store, nexus.Draft{Namespace: "proj", Type: nexus.TypeInstruction, Content: "We are building a parser."})
	leaf := mustPut(t, n.store, nexus.Draft{Namespace: "proj", Type: nexus.TypeInstruction, Content: "Write the README.", ParentID: root.ID})

	t.Run("list", func(t *testing.T) {
		list := decode[struct {
			Agents []struct {
				ID           string        `json:"id"`
				Capabilities []string      `json:"capabilities"`
				Status       *agent.Status `json:"status"`
			} `json:"agents"`
			External  []tasks.Agent       `json:"external"`
			Processes []supervisor.Status `json:"processes"`
		}](t, call("GET", "/v1/agents", "", "", true, 200))
		if len(list.Processes) != 1 || list.Processes[0].Name != "sleeper" || list.Processes[0].Restarts != 0 {
			t.Errorf("processes: %+v", list.Processes)
		}
		var got []string
		for _, a := range list.Agents {
			got = append(got, fmt.Sprintf("%s%v status:%v", a.ID, a.Capabilities, a.Status != nil))
		}
		if want := "writer[docs] status:true critic[review] status:true broken[docs] status:true team[] status:false"; strings.Join(got, " ") != want || len(list.External) != 0 {
			t.Fatalf("agents %q, external %v; want %q and none", got, list.External, want)
		}
		if st := list.Agents[0].Status; st.Agent != "writer" || st.Model != agenttest.Model || st.Breaker != "closed" || st.Condition != agent.Healthy {
			t.Errorf("writer's status: %+v", st)
		}
		call("GET", "/v1/agents?x=1", "", "", false, 400)
	})
	t.Run("get", func(t *testing.T) {
		if a := decode[orchestrator.Info](t, call("GET", "/v1/agents/team", "", "", true, 200)); a.ID != "team" {
			t.Errorf("GET /v1/agents/team: %+v", a)
		}
		call("GET", "/v1/agents/critic", "", "", true, 200)
		if code := errCode(t, call("GET", "/v1/agents/nobody", "", "", true, 404)); code != nexus.ENotFound {
			t.Errorf("unknown agent: %s", code)
		}
	})
	t.Run("process", func(t *testing.T) {
		ans := decode[orchestrator.Answer](t, call("POST", "/v1/agents/writer/process", js, fmt.Sprintf(`{"context_id":%q,"type":"document"}`, leaf.ID), true, 201))
		c, p := ans.Context, ans.Provenance
		if c.ParentID != leaf.ID || c.Namespace != "proj" || c.Type != nexus.TypeDocument || c.AgentID != "writer" || c.Content != agenttest.Answer("writer", "Write the README.") {
			t.Errorf("answer: %+v", c)
		}
		if p.Agent != "writer" || p.FinalAgent != "writer" || p.Model != agenttest.Model || p.TokensIn != 42 || p.TokensOut != 7 || p.Attempts != 1 || len(p.Trail) != 1 {
			t.Errorf("provenance: %+v", p)
		}
		stored, err := n.store.Get(t.Context(), c.ID)
		if err != nil || !strings.Contains(string(stored.Metadata), `"final_agent":"writer"`) {
			t.Errorf("the stored answer (%v): %s", err, stored.Metadata)
		}
		// A pool answers through one of its members.
		if a := decode[orchestrator.Answer](t, call("POST", "/v1/agents/team/process", js, fmt.Sprintf(`{"context_id":%q}`, leaf.ID), true, 201)); a.Provenance.Agent != "team" || a.Context.AgentID != a.Provenance.FinalAgent {
			t.Errorf("pool answer: %+v %+v", a.Context, a.Provenance)
		}
	})
	t.Run("process errors", func(t *testing.T) {
		for _, tc := range []struct {
			target, body string
			valid        bool
			status       int
		}{
			{"/v1/agents/writer/process", fmt.Sprintf(`{"context_id":%q,"capability":"docs"}`, leaf.ID), false, 400},
			{"/v1/agents/writer/process", `{}`, false, 400},
			{"/v1/agents/writer/process", `{"context_id":"01KB2W3G6T0Q5A9QYQ7M3N8C2D"}`, true, 404},
			{"/v1/agents/nobody/process", fmt.Sprintf(`{"context_id":%q}`, leaf.ID), true, 404},
			{"/v1/agents/broken/process", fmt.Sprintf(`{"context_id":%q}`, leaf.ID), true, 503},
		} {
			call("POST", tc.target, js, tc.body, tc.valid, tc.status)
		}
	})
	t.Run("capability", func(t *testing.T) {
		// docs: writer and broken take turns; writer first.
		res := decode[struct {
			Answers []orchestrator.Answer `json:"answers"`
		}](t, call("POST", "/v1/agents/process", js, fmt.Sprintf(`{"context_id":%q,"capability":"docs"}`, leaf.ID), true, 201))
		if len(res.Answers) != 1 || res.Answers[0].Provenance.Agent != "writer" {
			t.Errorf("by capability: %+v", res.Answers)
		}
		// broken's turn: it is overloaded, so writer answers, and the trail says so.
		res = decode[struct {
			Answers []orchestrator.Answer `json:"answers"`
		}](t, call("POST", "/v1/agents/process", js, fmt.Sprintf(`{"context_id":%q,"capability":"docs"}`, leaf.ID), true, 201))
		if p := res.Answers[0].Provenance; p.Agent != "broken" || p.FinalAgent != "writer" || len(p.Trail) != 2 ||
			p.Trail[0].Agent != "broken" || p.Trail[0].Class != agent.ClassOverload || res.Answers[0].Context.AgentID != "writer" {
			t.Errorf("failover by capability: %+v", p)
		}
		call("POST", "/v1/agents/process", js, fmt.Sprintf(`{"context_id":%q,"capability":"poetry"}`, leaf.ID), true, 404)
	})
	t.Run("pipeline", func(t *testing.T) {
		res := decode[struct {
			Answers []orchestrator.Answer `json:"answers"`
			Error   *apiError             `json:"error"`
		}](t, call("POST", "/v1/agents/process", js, fmt.Sprintf(`{"context_id":%q,"agents":["writer","critic"],"mode":"pipeline"}`, leaf.ID), true, 201))
		if len(res.Answers) != 2 || res.Error != nil {
			t.Fatalf("pipeline: %+v", res)
		}
		first, second := res.Answers[0].Context, res.Answers[1].Context
		if first.ParentID != leaf.ID || second.ParentID != first.ID || second.Content != agenttest.Answer("critic", first.Content) {
			t.Errorf("pipeline answers: %+v then %+v", first, second)
		}
		// A failing step ends it: the answers before it and the error.
		body := call("POST", "/v1/agents/process", js, fmt.Sprintf(`{"context_id":%q,"agents":["writer","broken","critic"],"mode":"pipeline"}`, leaf.ID), true, 201)
		var partial struct {
			Answers []orchestrator.Answer `json:"answers"`
			Error   struct {
				Code    nexus.Code `json:"code"`
				Message string     `json:"message"`
			} `json:"error"`
		}
		json.Unmarshal(body, &partial)
		if len(partial.Answers) != 1 || partial.Error.Code != nexus.EUnavailable || !strings.Contains(partial.Error.Message, "agent broken") {
			t.Errorf("pipeline with a failing step: %s", body)
		}
		call("POST", "/v1/agents/process", js, fmt.Sprintf(`{"context_id":%q,"agents":["broken","writer"],"mode":"pipeline"}`, leaf.ID), true, 503)
	})
	t.Run("broadcast", func(t *testing.T) {
		body := call("POST", "/v1/agents/process", js, fmt.Sprintf(`{"context_id":%q,"agents":["critic","broken","writer"],"mode":"broadcast"}`, leaf.ID), true, 201)
		var res struct {
			Answers []*orchestrator.Answer `json:"answers"`
			Errors  []struct {
				Agent string `json:"agent"`
				Error struct {
					Code nexus.Code `json:"code"`
				} `json:"error"`
			} `json:"errors"`
		}
		json.Unmarshal(body, &res)
		if len(res.Answers) != 3 || res.Answers[0] == nil || res.Answers[1] != nil || res.Answers[2] == nil ||
			res.Answers[0].Context.AgentID != "critic" || res.Answers[2].Context.ParentID != leaf.ID ||
			len(res.Errors) != 1 || res.Errors[0].Agent != "broken" || res.Errors[0].Error.Code != nexus.EUnavailable {
			t.Errorf("broadcast: %s", body)
		}
		call("POST", "/v1/agents/process", js, fmt.Sprintf(`{"context_id":%q,"agents":["broken"],"mode":"broadcast"}`, leaf.ID), true, 503)
	})
	t.Run("generate", func(t *testing.T) {
		a := decode[orchestrator.Answer](t, call("POST", "/v1/agents/writer/generate", js, `{"prompt":"Name the parser.","namespace":"names","timeout":"30s"}`, true, 201))
		if c := a.Context; !c.ParentID.IsZero() || c.Namespace != "names" || c.Type != nexus.TypeResult || c.AgentID != "writer" ||
			c.Content != agenttest.Answer("writer", "Name the parser.") || a.Provenance.FinalAgent != "writer" {
			t.Errorf("generate: %+v %+v", c, a.Provenance)
		}
		a = decode[orchestrator.Answer](t, call("POST", "/v1/agents/generate", js, fmt.Sprintf(`{"capability":"docs","prompt":"Describe it.","type":"document","parent_id":%q}`, root.ID), true, 201))
		if c := a.Context; c.ParentID != root.ID || c.Namespace != "proj" || c.Type != nexus.TypeDocument || c.AgentID != "writer" {
			t.Errorf("generate by capability: %+v %+v", c, a.Provenance)
		}
		// The client: by agent, and by capability.
		c := httpapi.NewClient(n.srv.URL)
		if a, err := c.Generate(t.Context(), orchestrator.GenerateRequest{Agent: "critic", Prompt: "Review it."}); err != nil || a.Context.AgentID != "critic" || a.Context.Namespace != nexus.DefaultNamespace {
			t.Errorf("client generate: %v %+v", err, a)
		}
		if a, err := c.Generate(t.Context(), orchestrator.GenerateRequest{Capability: "review", Prompt: "Review it.", ParentID: root.ID}); err != nil || a.Context.ParentID != root.ID {
			t.Errorf("client generate by capability: %v %+v", err, a)
		}
		before := n.store.Len()
		for _, tc := range []struct {
			target, body string
			valid        bool
			status       int
		}{
			{"/v1/agents/writer/generate", `{"prompt":"x","capability":"docs"}`, false, 400},
			{"/v1/agents/writer/generate", `{"prompt":""}`, false, 400},
			{"/v1/agents/writer/generate", `{"prompt":"x","timeout":"1h"}`, false, 400},
			{"/v1/agents/generate", `{"prompt":"x"}`, false, 400},
			{"/v1/agents/nobody/generate", `{"prompt":"x"}`, true, 404},
			{"/v1/agents/writer/generate", `{"prompt":"x","parent_id":"01KB2W3G6T0Q5A9QYQ7M3N8C2D"}`, true, 404},
			{"/v1/agents/generate", `{"prompt":"x","capability":"poetry"}`, true, 404},
			{"/v1/agents/broken/generate", `{"prompt":"x"}`, true, 503},
		} {
			call("POST", tc.target, js, tc.body, tc.valid, tc.status)
		}
		if n.store.Len() != before {
			t.Errorf("failed generations stored %d contexts", n.store.Len()-before)
		}
	})
	t.Run("unknown agent", func(t *testing.T) {
		// Every agent is checked before any is asked: nothing is stored.
		calls, before := n.broken.Calls(), n.store.Len()
		for _, mode := range []string{"pipeline", "broadcast"} {
			body := fmt.Sprintf(`{"context_id":%q,"agents":["broken","writer","ghost"],"mode":%q}`, leaf.ID, mode)
			if code := errCode(t, call("POST", "/v1/agents/process", js, body, true, 404)); code != nexus.ENotFound {
				t.Errorf("%s with an unknown agent: %s", mode, code)
			}
		}
		if n.store.Len() != before || n.broken.Calls() != calls {
			t.Errorf("%d contexts stored, %d calls made", n.store.Len()-before, n.broken.Calls()-calls)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		for _, body := range []string{
			fmt.Sprintf(`{"context_id":%q,"capability":"docs","agents":["writer"],"mode":"pipeline"}`, leaf.ID),
			fmt.Sprintf(`{"context_id":%q,"agents":["writer"],"mode":"relay"}`, leaf.ID),
			fmt.Sprintf(`{"context_id":%q,"agents":[],"mode":"pipeline"}`, leaf.ID),
			fmt.Sprintf(`{"context_id":%q,"agents":["writer"]}`, leaf.ID),
			`{"agents":["writer"],"mode":"broadcast"}`,
			`{"context_id":"nope","capability":"docs"}`,
			fmt.Sprintf(`{"context_id":%q,"capability":"docs","type":"bogus"}`, leaf.ID),
		} {
			if code := errCode(t, call("POST", "/v1/agents/process", js, body, false, 400)); code != nexus.EInvalid {
				t.Errorf("%s: %s", body, code)
			}
		}
		call("POST", "/v1/agents/process", "text/plain", `{}`, false, 415)
	})
	if n.broken.Calls() == 0 {
		t.Error("the broken agent was never called")
	}
}

// External agents and the task queue: register, heartbeat, create, list,
// claim (and 204 when nothing waits), complete, fail, and a claim that
// lapsed (409 for the agent that lost it, which another then completes
// once); every request and answer as the document says.
func TestAgentsAPI_tasks(t *testing.T) {
	n := newAgentNode(t)
	call := newDocCaller(t, loadOpenAPI(t), n.srv).call
	task := func(body []byte) tasks.Task { t.Helper(); return decode[tasks.Task](t, body) }

	// The ids of the node's own agents and pools are taken.
	for _, id := range []string{"writer", "team"} {
		if code := errCode(t, call("POST", "/v1/agents", js, fmt.Sprintf(`{"id":%q}`, id), true, 409)); code != nexus.EConflict {
			t.Errorf("registering %s: %s", id, code)
		}
	}
	// Registration and heartbeats.
	a := decode[tasks.Agent](t, call("POST", "/v1/agents", js, `{"id":"coder","name":"Coding assistant","capabilities":["code"]}`, true, 201))
	if a.ID != "coder" || a.Status != tasks.Active || !a.LeaseExpires.Equal(n.clock.Now().Add(agentLease)) {
		t.Fatalf("registered: %+v", a)
	}
	call("POST", "/v1/agents", js, `{"id":"any"}`, true, 201)
	call("POST", "/v1/agents", js, `{"id":"-bad"}`, false, 400)
	call("POST", "/v1/agents", js, `{"id":"x","capabilities":["no spaces"]}`, false, 400)
	call("POST", "/v1/agents", js, `{"id":"x","role":"extra"}`, false, 400)
	n.clock.Add(10 * time.Second)
	if a := decode[tasks.Agent](t, call("POST", "/v1/agents/coder/heartbeat", js, "", true, 200)); !a.LastHeartbeat.Equal(n.clock.Now()) {
		t.Errorf("after a heartbeat: %+v", a)
	}
	call("POST", "/v1/agents/stranger/heartbeat", js, "", true, 404)
	if a := decode[tasks.Agent](t, call("GET", "/v1/agents/coder", "", "", true, 200)); a.Name != "Coding assistant" {
		t.Errorf("GET /v1/agents/coder: %+v", a)
	}
	list := decode[struct {
		External []tasks.Agent `json:"external"`
	}](t, call("GET", "/v1/agents", "", "", true, 200))
	if len(list.External) != 2 || list.External[0].ID != "any" || list.External[1].ID != "coder" {
		t.Errorf("external agents: %+v", list.External)
	}

	// Tasks: create, list, get.
	parent := mustPut(t, n.store, nexus.Draft{Namespace: "proj", Type: nexus.TypeDecision, Content: "Ship on Friday."})
	code := task(call("POST", "/v1/tasks", js, fmt.Sprintf(`{"namespace":"proj","content":"Fix the parser.","capability":"code","parent_id":%q,"agent_id":"planner","max_attempts":2}`, parent.ID), true, 201))
	if code.Status != tasks.Queued || code.Namespace != "proj" || code.Creator != "planner" || code.MaxAttempts != 2 {
		t.Errorf("created: %+v", code)
	}
	doc := task(call("POST", "/v1/tasks", js, `{"content":"Write the changelog.","capability":"docs"}`, true, 201))
	call("POST", "/v1/tasks", js, `{"content":"x","capability":"a b"}`, false, 400)
	call("POST", "/v1/tasks", js, `{"content":"x","max_attempts":101}`, false, 400)
	call("POST", "/v1/tasks", js, `{"content":""}`, false, 400)
	call("POST", "/v1/tasks", js, `{"content":"x","parent_id":"01KB2W3G6T0Q5A9QYQ7M3N8C2D"}`, true, 400)
	if got := task(call("GET", "/v1/tasks/"+code.ID.String(), "", "", true, 200)); got.Content != "Fix the parser." {
		t.Errorf("GET task: %+v", got)
	}
	call("GET", "/v1/tasks/01KB2W3G6T0Q5A9QYQ7M3N8C2D", "", "", true, 404)
	call("GET", "/v1/tasks/nope", "", "", false, 400)
	listTasks := func(query string) []tasks.Task {
		t.Helper()
		return decode[struct {
			Tasks []tasks.Task `json:"tasks"`
		}](t, call("GET", "/v1/tasks"+query, "", "", true, 200)).Tasks
	}
	if l := listTasks("?status=queued&limit=1"); len(l) != 1 || l[0].ID != code.ID {
		t.Errorf("?status=queued&limit=1: %+v", l)
	}
	call("GET", "/v1/tasks?status=lost", "", "", false, 400)
	call("GET", "/v1/tasks?limit=-1", "", "", false, 400)

	// Claim: coder serves code only; any serves everything.
	claimed := task(call("POST", "/v1/tasks/claim", js, `{"agent_id":"coder"}`, true, 200))
	if claimed.ID != code.ID || claimed.Status != tasks.Claimed || claimed.ClaimedBy != "coder" || claimed.Attempt != 1 || len(claimed.Claim) != 32 {
		t.Fatalf("claimed: %+v", claimed)
	}
	if body := call("POST", "/v1/tasks/claim", js, `{"agent_id":"coder"}`, true, 204); len(body) != 0 {
		t.Errorf("204 with a body: %q", body)
	}
	call("POST", "/v1/tasks/claim", js, `{"agent_id":"stranger"}`, true, 404)
	call("POST", "/v1/tasks/claim", js, `{}`, false, 400)
	if got := task(call("GET", "/v1/tasks/"+code.ID.String(), "", "", true, 200)); got.Claim != "" || got.Attempt != 1 {
		t.Fatalf("GET shows the claim token: %+v", got)
	}
	call("POST", "/v1/tasks/"+code.ID.String()+"/complete", js, `{"claim":"x","content":"x"}`, false, 400)
	call("POST", "/v1/tasks/"+code.ID.String()+"/complete", js, `{"agent_id":"coder","claim":"","content":"x"}`, false, 400)
	call("POST", "/v1/tasks/"+code.ID.String()+"/complete", js, `{"agent_id":"coder","claim":1,"content":"x"}`, false, 400)
	call("POST", "/v1/tasks/"+code.ID.String()+"/fail", js, `{"agent_id":"coder","reason":"x"}`, false, 400)

	// Complete: a wrong claim token is a conflict; the right one stores
	// the result once.
	completeBody := func(agent string, claim string) string {
		return fmt.Sprintf(`{"agent_id":%q,"claim":%q,"content":"Fixed in parse.go.","metadata":{"files":["parse.go"]}}`, agent, claim)
	}
	target := "/v1/tasks/" + code.ID.String() + "/complete"
	call("POST", target, js, completeBody("coder", "2"), true, 409)
	call("POST", target, js, fmt.Sprintf(`{"agent_id":"coder","claim":%q,"content":"x","metadata":{"task":1}}`, claimed.Claim), true, 400)
	done := decode[struct {
		Task   tasks.Task    `json:"task"`
		Result nexus.Context `json:"result"`
	}](t, call("POST", target, js, completeBody("coder", claimed.Claim), true, 200))
	if done.Task.Status != tasks.Done || done.Task.Result != done.Result.ID || done.Result.ParentID != code.ID ||
		done.Result.Type != nexus.TypeResult || done.Result.AgentID != "coder" || done.Result.Namespace != "proj" ||
		!strings.Contains(string(done.Result.Metadata), `"files":["parse.go"]`) {
		t.Errorf("completed: %+v", done)
	}
	if code := errCode(t, call("POST", target, js, completeBody("coder", claimed.Claim), true, 409)); code != nexus.EConflict {
		t.Errorf("completing twice: %s", code)
	}
	call("POST", "/v1/tasks/01KB2W3G6T0Q5A9QYQ7M3N8C2D/complete", js, completeBody("coder", claimed.Claim), true, 404)

	// Fail: with retry the task goes back to the queue; without, it fails.
	first := task(call("POST", "/v1/tasks/claim", js, `{"agent_id":"any"}`, true, 200))
	if first.ID != doc.ID {
		t.Fatalf("any claimed %s, want the docs task %s", first.ID, doc.ID)
	}
	failTarget := "/v1/tasks/" + doc.ID.String() + "/fail"
	failBody := func(claim, reason string, retry bool) string {
		return fmt.Sprintf(`{"agent_id":"any","claim":%q,"reason":%q,"retry":%t}`, claim, reason, retry)
	}
	call("POST", failTarget, js, failBody(first.Claim, "", false), false, 400)
	if back := task(call("POST", failTarget, js, failBody(first.Claim, "no network", true), true, 200)); back.Status != tasks.Queued || back.Error != "no network" {
		t.Errorf("failed with retry: %+v", back)
	}
	call("POST", failTarget, js, failBody(first.Claim, "again", false), true, 409)
	second := task(call("POST", "/v1/tasks/claim", js, `{"agent_id":"any"}`, true, 200))
	if failed := task(call("POST", failTarget, js, failBody(second.Claim, "cannot write docs", false), true, 200)); failed.Status != tasks.Failed || second.Attempt != 2 {
		t.Errorf("failed for good: %+v (claim %d)", failed, second.Attempt)
	}
	call("POST", "/v1/tasks/01KB2W3G6T0Q5A9QYQ7M3N8C2D/fail", js, failBody(second.Claim, "x", false), true, 404)

	// A lapsed claim: slow stops heartbeating, its task goes back to the
	// queue, fast claims and completes it; slow's late completion is a
	// conflict and writes nothing.
	late := task(call("POST", "/v1/tasks", js, `{"content":"Review the PR."}`, true, 201))
	call("POST", "/v1/agents", js, `{"id":"slow"}`, true, 201)
	held := task(call("POST", "/v1/tasks/claim", js, `{"agent_id":"slow"}`, true, 200))
	n.clock.Add(agentLease + time.Second)
	call("POST", "/v1/agents", js, `{"id":"fast"}`, true, 201)
	if got := n.queue.Reap(); got != 1 {
		t.Fatalf("Reap sent %d tasks back, want 1", got)
	}
	if a := decode[tasks.Agent](t, call("GET", "/v1/agents/slow", "", "", true, 200)); a.Status != tasks.Lost || len(a.Claims) != 0 {
		t.Errorf("slow after its lease: %+v", a)
	}
	call("POST", "/v1/tasks/claim", js, `{"agent_id":"slow"}`, true, 404)
	taken := task(call("POST", "/v1/tasks/claim", js, `{"agent_id":"fast"}`, true, 200))
	if taken.ID != late.ID || taken.Attempt != held.Attempt+1 || taken.Claim == held.Claim {
		t.Fatalf("fast claimed %+v, want %s with claim %d", taken, late.ID, held.Attempt+1)
	}
	lateTarget := "/v1/tasks/" + late.ID.String() + "/complete"
	msg := decode[apiError](t, call("POST", lateTarget, js, fmt.Sprintf(`{"agent_id":"slow","claim":%q,"content":"LGTM"}`, held.Claim), true, 409)).Error.Message
	if !strings.Contains(msg, "not current") {
		t.Errorf("late completion: %q", msg)
	}
	call("POST", lateTarget, js, fmt.Sprintf(`{"agent_id":"fast","claim":%q,"content":"Two nits."}`, taken.Claim), true, 200)
	kids, err := n.store.Children(t.Context(), late.ID)
	var results []*nexus.Context
	for _, k := range kids {
		if k.Type == nexus.TypeResult {
			results = append(results, k)
		}
	}
	// Besides the one result, the two claims are journaled (observations)
	// and the lost one is recorded as an error.
	if err != nil || len(results) != 1 || results[0].Content != "Two nits." || results[0].AgentID != "fast" || len(kids) != 4 ||
		kids[0].Type != nexus.TypeObservation || kids[1].Type != nexus.TypeError || kids[2].Type != nexus.TypeObservation {
		t.Errorf("the task's children (%v): %+v", err, kids)
	}
	if l := listTasks("?status=done"); len(l) != 2 {
		t.Errorf("done: %+v", l)
	}
}

// Without a queue or agents, the routes answer 404 (GET /v1/agents:
// empty lists), as the document says.
func TestAgentsAPI_disabled(t *testing.T) {
	srv := httptest.NewServer(httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{}))
	defer srv.Close()
	call := newDocCaller(t, loadOpenAPI(t), srv).call
	if body := string(call("GET", "/v1/agents", "", "", true, 200)); body != `{"agents":[],"external":[],"processes":[]}`+"\n" {
		t.Errorf("GET /v1/agents: %s", body)
	}
	const id = "01KB2W3G6T0Q5A9QYQ7M3N8C2D"
	for _, r := range []struct{ method, target, body, want string }{
		{"POST", "/v1/agents", `{"id":"coder"}`, "task queue is not enabled"},
		{"GET", "/v1/agents/coder", "", `no agent "coder"`},
		{"POST", "/v1/agents/coder/heartbeat", "", "task queue is not enabled"},
		{"POST", "/v1/agents/writer/process", `{"context_id":"` + id + `"}`, "runs no agents"},
		{"POST", "/v1/agents/process", `{"context_id":"` + id + `","capability":"docs"}`, "runs no agents"},
		{"POST", "/v1/tasks", `{"content":"x"}`, "task queue is not enabled"},
		{"GET", "/v1/tasks", "", "task queue is not enabled"},
		{"GET", "/v1/tasks/" + id, "", "task queue is not enabled"},
		{"POST", "/v1/tasks/claim", `{"agent_id":"coder"}`, "task queue is not enabled"},
		{"POST", "/v1/tasks/" + id + "/complete", `{"agent_id":"coder","claim":"1","content":"x"}`, "task queue is not enabled"},
		{"POST", "/v1/tasks/" + id + "/fail", `{"agent_id":"coder","claim":"1","reason":"x"}`, "task queue is not enabled"},
	} {
		ctype := ""
		if r.method == "POST" {
			ctype = js
		}
		e := decode[apiError](t, call(r.method, r.target, ctype, r.body, true, 404))
		if e.Error.Code != nexus.ENotFound || !strings.Contains(e.Error.Message, r.want) {
			t.Errorf("%s %s: %+v, want not_found saying %q", r.method, r.target, e.Error, r.want)
		}
	}
}

// A full queue refuses new tasks with 503 until agents claim some.
func TestAgentsAPI_queueFull(t *testing.T) {
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q, err := tasks.Open(t.Context(), st, tasks.Options{MaxQueued: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.NewServer(st, httpapi.Options{Tasks: q}))
	defer srv.Close()
	call := newDocCaller(t, loadOpenAPI(t), srv).call
	call("POST", "/v1/tasks", js, `{"content":"first"}`, true, 201)
	if msg := decode[apiError](t, call("POST", "/v1/tasks", js, `{"content":"second"}`, true, 503)).Error.Message; !strings.Contains(msg, "queue is full") {
		t.Errorf("a task past the bound: %q", msg)
	}
	call("POST", "/v1/agents", js, `{"id":"a"}`, true, 201)
	call("POST", "/v1/tasks/claim", js, `{"agent_id":"a"}`, true, 200)
	call("POST", "/v1/tasks", js, `{"content":"second"}`, true, 201)
}

// A call to the node's agents is answered although it outlasts the
// server's WriteTimeout; its timeout field bounds it; a rate limited
// agent answers 429 with code rate_limited and an overloaded one 503 with
// code unavailable, both with the provider's Retry-After.
func TestAgentsAPI_longCalls(t *testing.T) {
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	slow := agenttest.NewProvider(t, "slow")
	o := orchestrator.New(st, orchestrator.Options{CheckpointEvery: -1})
	if err := o.Add(agenttest.NewRunner(t, "slow", slow), []string{"docs"}); err != nil {
		t.Fatal(err)
	}
	busy := agenttest.NewProvider(t, "busy") // a breaker of its own
	if err := o.Add(agenttest.NewRunner(t, "busy", busy), nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httpapi.NewServer(st, httpapi.Options{Agents: o}))
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	call := newDocCaller(t, loadOpenAPI(t), srv).call
	q := mustPut(t, st, nexus.Draft{Namespace: "proj", Type: nexus.TypeInstruction, Content: "Write the README."})
	body := func(extra string) string { return fmt.Sprintf(`{"context_id":%q%s}`, q.ID, extra) }

	slow.SetDelay(400 * time.Millisecond)
	if a := decode[orchestrator.Answer](t, call("POST", "/v1/agents/slow/process", js, body(""), true, 201)); a.Context.ParentID != q.ID {
		t.Errorf("slow answer: %+v", a.Context)
	}
	// An agent that would answer in an hour: only the timeout field can
	// end the call, and nothing is stored.
	slow.SetDelay(time.Hour)
	before := st.Len()
	msg := decode[apiError](t, call("POST", "/v1/agents/process", js, body(`,"capability":"docs","timeout":"100ms"`), true, 503)).Error.Message
	if !strings.Contains(msg, "did not answer within the timeout") || st.Len() != before {
		t.Errorf("timeout 100ms: %q, %d stored", msg, st.Len()-before)
	}
	for _, timeout := range []string{"0s", "-1s", "11m", "soon", "90"} {
		if code := errCode(t, call("POST", "/v1/agents/slow/process", js, body(`,"timeout":"`+timeout+`"`), false, 400)); code != nexus.EInvalid {
			t.Errorf("timeout %q: %s", timeout, code)
		}
	}
	slow.SetDelay(0)

	for _, c := range []struct {
		fake   *agenttest.Provider
		status int
		code   nexus.Code
		target string
		extra  string
	}{
		{slow, 429, nexus.ERateLimited, "/v1/agents/slow/process", ""},
		{slow, 429, nexus.ERateLimited, "/v1/agents/process", `,"capability":"docs"`},
		{busy, 503, nexus.EUnavailable, "/v1/agents/process", `,"agents":["busy"],"mode":"pipeline"`},
	} {
		c.fake.Fail(c.status, 7*time.Second)
		if code := errCode(t, call("POST", c.target, js, body(c.extra), true, c.status)); code != c.code {
			t.Errorf("%s %s with the provider answering %d: code %s, want %s", c.target, c.extra, c.status, code, c.code)
		}
		resp := send(t, srv, request{method: "POST", target: c.target, ctype: js, auth: "-", body: strings.NewReader(body(c.extra))})
		if resp.status != c.status || resp.header.Get("Retry-After") != "7" {
			t.Errorf("%s %s with the provider answering %d: %d, Retry-After %q", c.target, c.extra, c.status, resp.status, resp.header.Get("Retry-After"))
		}
	}
	if st.Len() != before {
		t.Errorf("%d answers stored by failed calls", st.Len()-before)
	}
}

// A call refused by the agent's own rate limit, because waiting for it
// would outlast the call's timeout, answers 429 with the wait the limit
// knows as Retry-After (seconds, rounded up), sends nothing and stores
// nothing.
func TestAgentsAPI_ownRateLimit(t *testing.T) {
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := agenttest.NewProvider(t, "paced")
	r, err := agent.New(agent.Config{ID: "paced", Provider: agent.OpenAI, Model: agenttest.Model, BaseURL: p.URL,
		Timeout: 5 * time.Second, MaxRetries: -1, HeartbeatInterval: -1, RequestsPerMinute: 1})
	if err != nil {
		t.Fatal(err)
	}
	o := orchestrator.New(st, orchestrator.Options{CheckpointEvery: -1})
	if err := o.Add(r, []string{"docs"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.NewServer(st, httpapi.Options{Agents: o}))
	t.Cleanup(srv.Close)
	q := mustPut(t, st, nexus.Draft{Namespace: "proj", Type: nexus.TypeInstruction, Content: "Write the README."})
	body := func(extra string) string { return fmt.Sprintf(`{"context_id":%q,"timeout":"10s"%s}`, q.ID, extra) }
	first := time.Now()
	if resp := send(t, srv, request{method: "POST", target: "/v1/agents/paced/process", ctype: js, auth: "-", body: strings.NewReader(body(""))}); resp.status != 201 {
		t.Fatalf("first call: %d %s", resp.status, resp.body)
	}
	before := st.Len()
	for _, c := range []struct{ target, extra string }{
		{"/v1/agents/paced/process", ""},
		{"/v1/agents/process", `,"capability":"docs"`},
	} {
		resp := send(t, srv, request{method: "POST", target: c.target, ctype: js, auth: "-", body: strings.NewReader(body(c.extra))})
		msg := wantError(t, resp, 429, nexus.ERateLimited)
		// The next request may go a minute after the first was sent, so
		// the wait is a minute less what has passed since, rounded up:
		// 60 unless this test took over a second.
		least := int(math.Ceil((time.Minute - time.Since(first)).Seconds()))
		got, err := strconv.Atoi(resp.header.Get("Retry-After"))
		if err != nil || got < least || got > 60 || !strings.Contains(msg, "own limit of requests per minute") {
			t.Errorf("%s%s: Retry-After %q, want %d to 60; %q", c.target, c.extra, resp.header.Get("Retry-After"), least, msg)
		}
	}
	if p.Calls() != 1 || st.Len() != before {
		t.Errorf("refused calls sent %d requests and stored %d contexts", p.Calls()-1, st.Len()-before)
	}
}
