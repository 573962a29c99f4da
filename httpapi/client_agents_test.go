package httpapi_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/agent/agenttest"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/storetest"
	"github.com/nexus-mem/nexus/tasks"
)

// unknownID is a valid id that names nothing.
var unknownID, _ = nexus.ParseID("01KB2W3G6T0Q5A9QYQ7M3N8C2D")

// wantCode fails the test unless err has the code.
func wantCode(t *testing.T, what string, err error, code nexus.Code) {
	t.Helper()
	if nexus.ErrorCode(err) != code {
		t.Errorf("%s: %v (code %s), want code %s", what, err, nexus.ErrorCode(err), code)
	}
}

func TestClient_agents(t *testing.T) {
	n := newAgentNode(t)
	c := httpapi.NewClient(n.srv.URL)
	ctx := t.Context()
	leaf := mustPut(t, n.store, nexus.Draft{Namespace: "proj", Type: nexus.TypeInstruction, Content: "Write the README."})

	list, err := c.Agents(ctx)
	if err != nil || len(list.Agents) != 4 || list.Agents[0].ID != "writer" || list.Agents[0].Status == nil ||
		list.Agents[0].Status.Condition != agent.Healthy || list.Agents[3].Status != nil || len(list.External) != 0 {
		t.Fatalf("Agents: %+v, %v", list, err)
	}
	if a, err := c.Agent(ctx, "critic"); err != nil || a.Own == nil || a.External != nil || a.Own.Capabilities[0] != "review" {
		t.Errorf("Agent(critic): %+v, %v", a, err)
	}
	_, err = c.Agent(ctx, "nobody")
	wantCode(t, "Agent(nobody)", err, nexus.ENotFound)

	t.Run("Process", func(t *testing.T) {
		a, err := c.Process(ctx, orchestrator.Request{Agent: "writer", ContextID: leaf.ID, Type: nexus.TypeSummary})
		if err != nil || a.Context.ParentID != leaf.ID || a.Context.Type != nexus.TypeSummary || a.Provenance.FinalAgent != "writer" ||
			a.Context.Content != agenttest.Answer("writer", "Write the README.") {
			t.Fatalf("Process: %+v, %v", a, err)
		}
		_, err = c.Process(ctx, orchestrator.Request{Agent: "broken", ContextID: leaf.ID})
		wantCode(t, "Process(broken)", err, nexus.EUnavailable)
		_, err = c.Process(ctx, orchestrator.Request{Agent: "writer"})
		wantCode(t, "Process without a context", err, nexus.EInvalid)
		a, err = c.Process(ctx, orchestrator.Request{Capability: "review", ContextID: leaf.ID})
		if err != nil || a.Provenance.Agent != "critic" || a.Context.ParentID != leaf.ID {
			t.Errorf("Process by capability: %+v, %v", a, err)
		}
		_, err = c.Process(ctx, orchestrator.Request{Capability: "poetry", ContextID: leaf.ID})
		wantCode(t, "Process by an unknown capability", err, nexus.ENotFound)
		_, err = c.Process(ctx, orchestrator.Request{Agent: "writer", Capability: "review", ContextID: leaf.ID})
		wantCode(t, "Process by agent and capability", err, nexus.EInvalid)
		_, err = c.Process(ctx, orchestrator.Request{ContextID: leaf.ID})
		wantCode(t, "Process by nobody", err, nexus.EInvalid)
	})
	t.Run("ProcessMany", func(t *testing.T) {
		r, err := c.ProcessMany(ctx, httpapi.ProcessRequest{ContextID: leaf.ID, Capability: "review"})
		if err != nil || len(r.Answers) != 1 || r.Answers[0].Provenance.Agent != "critic" || r.Stopped != nil || r.Failed != nil {
			t.Errorf("by capability: %+v, %v", r, err)
		}
		r, err = c.ProcessMany(ctx, httpapi.ProcessRequest{ContextID: leaf.ID, Agents: []string{"writer", "critic"}, Mode: httpapi.ModePipeline})
		if err != nil || len(r.Answers) != 2 || r.Answers[1].Context.ParentID != r.Answers[0].Context.ID {
			t.Errorf("pipeline: %+v, %v", r, err)
		}
		r, err = c.ProcessMany(ctx, httpapi.ProcessRequest{ContextID: leaf.ID, Agents: []string{"writer", "broken"}, Mode: httpapi.ModePipeline})
		if err != nil || len(r.Answers) != 1 || nexus.ErrorCode(r.Stopped) != nexus.EUnavailable {
			t.Errorf("pipeline stopped at broken: %+v, %v", r, err)
		}
		r, err = c.ProcessMany(ctx, httpapi.ProcessRequest{ContextID: leaf.ID, Agents: []string{"broken", "critic"}, Mode: httpapi.ModeBroadcast})
		if err != nil || len(r.Answers) != 2 || r.Answers[0] != nil || r.Answers[1] == nil || len(r.Failed) != 1 ||
			r.Failed[0].Agent != "broken" || nexus.ErrorCode(r.Failed[0].Err) != nexus.EUnavailable {
			t.Errorf("broadcast: %+v, %v", r, err)
		}
		_, err = c.ProcessMany(ctx, httpapi.ProcessRequest{ContextID: leaf.ID, Agents: []string{"writer"}, Mode: "relay"})
		wantCode(t, "mode relay", err, nexus.EInvalid)
		_, err = c.ProcessMany(ctx, httpapi.ProcessRequest{ContextID: leaf.ID, Capability: "poetry"})
		wantCode(t, "capability poetry", err, nexus.ENotFound)
	})
}

func TestClient_tasks(t *testing.T) {
	n := newAgentNode(t)
	c := httpapi.NewClient(n.srv.URL)
	ctx := t.Context()

	// An agent id with a slash and an @ goes through the path escaped.
	const coder = "team/coder@laptop"
	a, err := c.RegisterAgent(ctx, coder, "Coding assistant", []string{"code"})
	if err != nil || a.ID != coder || a.Status != tasks.Active || a.Capabilities[0] != "code" {
		t.Fatalf("RegisterAgent: %+v, %v", a, err)
	}
	_, err = c.RegisterAgent(ctx, "", "", nil)
	wantCode(t, "RegisterAgent without an id", err, nexus.EInvalid)
	n.clock.Add(time.Second)
	if a, err := c.Heartbeat(ctx, coder); err != nil || !a.LastHeartbeat.Equal(n.clock.Now()) {
		t.Errorf("Heartbeat: %+v, %v", a, err)
	}
	_, err = c.Heartbeat(ctx, "stranger")
	wantCode(t, "Heartbeat(stranger)", err, nexus.ENotFound)
	if a, err := c.Agent(ctx, coder); err != nil || a.External == nil || a.Own != nil || a.External.Name != "Coding assistant" {
		t.Errorf("Agent(%s): %+v, %v", coder, a, err)
	}

	if _, ok, err := c.ClaimTask(ctx, coder); ok || err != nil {
		t.Errorf("ClaimTask with nothing queued: %v, %v", ok, err)
	}
	task, err := c.CreateTask(ctx, tasks.NewTask{Namespace: "proj", Content: "Fix the parser.", Capability: "code", Creator: "planner"})
	if err != nil || task.Status != tasks.Queued || task.Creator != "planner" {
		t.Fatalf("CreateTask: %+v, %v", task, err)
	}
	other, err := c.CreateTask(ctx, tasks.NewTask{Content: "Translate the docs.", Capability: "docs"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Task(ctx, task.ID); err != nil || got.Content != "Fix the parser." {
		t.Errorf("Task: %+v, %v", got, err)
	}
	_, err = c.Task(ctx, unknownID)
	wantCode(t, "Task of an unknown id", err, nexus.ENotFound)

	claimed, ok, err := c.ClaimTask(ctx, coder)
	if err != nil || !ok || claimed.ID != task.ID || claimed.Attempt != 1 || len(claimed.Claim) != 32 || claimed.ClaimedBy != coder {
		t.Fatalf("ClaimTask: %+v, %v, %v", claimed, ok, err)
	}
	if _, ok, err := c.ClaimTask(ctx, coder); ok || err != nil {
		t.Errorf("ClaimTask with only a docs task queued: %v, %v", ok, err)
	}
	_, _, err = c.ClaimTask(ctx, "stranger")
	wantCode(t, "ClaimTask(stranger)", err, nexus.ENotFound)
	_, _, err = c.CompleteTask(ctx, task.ID, coder, claimed.Claim, tasks.Answer{Content: "x", Metadata: []byte("{")})
	wantCode(t, "CompleteTask with bad metadata", err, nexus.EInvalid)
	_, _, err = c.CompleteTask(ctx, task.ID, coder, "2", tasks.Answer{Content: "x"})
	wantCode(t, "CompleteTask with a claim that is not current", err, nexus.EConflict)

	done, res, err := c.CompleteTask(ctx, task.ID, coder, claimed.Claim, tasks.Answer{Content: "Fixed.", Metadata: []byte(`{"pr":12}`)})
	if err != nil || done.Status != tasks.Done || res.ParentID != task.ID || res.AgentID != coder || done.Result != res.ID {
		t.Fatalf("CompleteTask: %+v %+v, %v", done, res, err)
	}
	_, _, err = c.CompleteTask(ctx, task.ID, coder, claimed.Claim, tasks.Answer{Content: "Again."})
	wantCode(t, "CompleteTask twice", err, nexus.EConflict)

	if _, err := c.RegisterAgent(ctx, "any", "", nil); err != nil {
		t.Fatal(err)
	}
	held, ok, err := c.ClaimTask(ctx, "any")
	if err != nil || !ok || held.ID != other.ID {
		t.Fatalf("ClaimTask(any): %+v, %v, %v", held, ok, err)
	}
	back, err := c.FailTask(ctx, other.ID, "any", held.Claim, tasks.Failure{Reason: "the glossary is missing", Retry: true})
	if err != nil || back.Status != tasks.Queued || back.Error != "the glossary is missing" {
		t.Errorf("FailTask with retry: %+v, %v", back, err)
	}
	_, err = c.FailTask(ctx, other.ID, "any", held.Claim, tasks.Failure{Reason: "again"})
	wantCode(t, "FailTask with an old claim", err, nexus.EConflict)

	for status, want := range map[string]int{"": 2, tasks.Done: 1, tasks.Queued: 1, tasks.Failed: 0} {
		if l, err := c.Tasks(ctx, status, 0); err != nil || len(l) != want {
			t.Errorf("Tasks(%q): %d tasks, %v; want %d", status, len(l), err, want)
		}
	}
	if l, err := c.Tasks(ctx, "", 1); err != nil || len(l) != 1 || l[0].ID != task.ID {
		t.Errorf("Tasks limit 1: %+v, %v", l, err)
	}
	_, err = c.Tasks(ctx, "lost", 0)
	wantCode(t, "Tasks(lost)", err, nexus.EInvalid)
	if l, err := c.Agents(ctx); err != nil || len(l.External) != 2 {
		t.Errorf("Agents: %+v, %v", l, err)
	}
}

// Against a server without a queue or agents, every call says so.
func TestClient_agentsDisabled(t *testing.T) {
	c := newClient(t, storetest.NewMemStore())
	ctx := t.Context()
	if l, err := c.Agents(ctx); err != nil || len(l.Agents) != 0 || len(l.External) != 0 {
		t.Errorf("Agents: %+v, %v", l, err)
	}
	id := unknownID
	calls := map[string]error{}
	_, calls["RegisterAgent"] = c.RegisterAgent(ctx, "a", "", nil)
	_, calls["Heartbeat"] = c.Heartbeat(ctx, "a")
	_, calls["Agent"] = c.Agent(ctx, "a")
	_, calls["Process"] = c.Process(ctx, orchestrator.Request{Agent: "a", ContextID: id})
	_, calls["ProcessMany"] = c.ProcessMany(ctx, httpapi.ProcessRequest{ContextID: id, Capability: "docs"})
	_, calls["CreateTask"] = c.CreateTask(ctx, tasks.NewTask{Content: "x"})
	_, calls["Tasks"] = c.Tasks(ctx, "", 0)
	_, calls["Task"] = c.Task(ctx, id)
	_, _, calls["ClaimTask"] = c.ClaimTask(ctx, "a")
	_, _, calls["CompleteTask"] = c.CompleteTask(ctx, id, "a", "1", tasks.Answer{Content: "x"})
	_, calls["FailTask"] = c.FailTask(ctx, id, "a", "1", tasks.Failure{Reason: "x"})
	for name, err := range calls {
		var e *nexus.Error
		if !errors.As(err, &e) || e.Code != nexus.ENotFound {
			t.Errorf("%s: %v, want not_found", name, err)
		}
	}
}
