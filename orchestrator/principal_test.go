package orchestrator_test

import (
	"context"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/orchestrator"
)

// Behind the access checks, the node's agents answer as the request's
// principal: a thread it may not read is not found, an answer it could
// not store is forbidden before any agent is asked, and a stored answer
// records the principal while the agent's checkpoint stays the node's.
func TestProcess_AsThePrincipal(t *testing.T) {
	s, _ := store(t)
	p := newProvider(t, "writer")
	o := orchestrator.New(authz.NewStore(s), orchestrator.Options{CheckpointEvery: -1})
	if err := o.Add(runner(t, "writer", p, nil), nil); err != nil {
		t.Fatal(err)
	}
	q := put(t, s, "Summarize the design.", nexus.ID{}) // in proj
	as := func(p *nexus.Principal) context.Context { return nexus.WithPrincipal(context.Background(), p) }
	outsider := &nexus.Principal{Name: "outsider", Role: nexus.RoleWrite, Write: []string{"other"}}
	reader := &nexus.Principal{Name: "reader", Role: nexus.RoleWrite, Read: []string{"proj"}, Write: []string{"other"}}
	member := &nexus.Principal{Name: "member", Role: nexus.RoleWrite, Write: []string{"proj"}}

	if _, err := o.Process(as(outsider), orchestrator.Request{ContextID: q.ID, Agent: "writer"}); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("process of an unreadable thread: %v, want not_found", err)
	}
	if _, err := o.Process(as(reader), orchestrator.Request{ContextID: q.ID, Agent: "writer"}); nexus.ErrorCode(err) != nexus.EForbidden {
		t.Fatalf("process whose answer cannot be stored: %v, want forbidden", err)
	}
	if _, err := o.Generate(as(reader), orchestrator.GenerateRequest{Agent: "writer", Prompt: "Name it.", Namespace: "proj"}); nexus.ErrorCode(err) != nexus.EForbidden {
		t.Fatalf("generate into an unwritable namespace: %v, want forbidden", err)
	}
	if n := p.calls.Load(); n != 0 {
		t.Fatalf("the provider was called %d times for refused requests", n)
	}
	ans, err := o.Process(as(member), orchestrator.Request{ContextID: q.ID, Agent: "writer"})
	if err != nil {
		t.Fatal(err)
	}
	if ans.Context.Principal != "member" {
		t.Fatalf("answer recorded principal %q, want member", ans.Context.Principal)
	}
	cp, err := orchestrator.LastCheckpoint(context.Background(), s, "writer")
	if err != nil || cp == nil || cp.Principal != "" {
		t.Fatalf("the agent's checkpoint: %+v %v, want one written by the node", cp, err)
	}
}
