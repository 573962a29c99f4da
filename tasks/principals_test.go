package tasks_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/tasks"
)

func as(p *nexus.Principal) context.Context {
	return nexus.WithPrincipal(context.Background(), p)
}

var (
	alice = &nexus.Principal{Name: "alice", Role: nexus.RoleWrite, Write: []string{"*"}}
	bob   = &nexus.Principal{Name: "bob", Role: nexus.RoleWrite, Write: []string{"*"}}
)

// Only the principal that claimed a task may complete or fail it, even
// with the claim's token; the token is an unguessable 128-bit value shown
// only to the claimer, and an agent id belongs to the principal that
// registered it.
func TestQueue_OnlyTheClaimHolderFinishes(t *testing.T) {
	s, _ := open(t)
	q, err := tasks.Open(context.Background(), authz.NewStore(s), tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	task, err := q.Create(as(alice), tasks.NewTask{Content: "review the change"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Register(as(alice), "worker", "", nil); err != nil {
		t.Fatal(err)
	}
	c, ok, err := q.Claim(as(alice), "worker")
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if b, err := hex.DecodeString(c.Claim); err != nil || len(b) != 16 || c.Attempt != 1 {
		t.Fatalf("claim token %q (attempt %d): want 128 bits in hex", c.Claim, c.Attempt)
	}
	// Nobody else sees the token: not GET, not the list, not the claimer.
	g, err := q.Get(as(bob), task.ID)
	if err != nil || g.Claim != "" || g.Attempt != 1 || g.ClaimedBy != "worker" {
		t.Fatalf("get shows %+v %v", g, err)
	}
	if list, _ := q.List(as(alice), "", 0); len(list) != 1 || list[0].Claim != "" {
		t.Fatalf("list shows %+v", list)
	}
	b, _ := json.Marshal(g)
	var wire map[string]any
	json.Unmarshal(b, &wire)
	if _, has := wire["claim"]; has {
		t.Fatalf("task as served carries a claim: %s", b)
	}
	// bob cannot take over alice's agent id.
	for name, call := range map[string]func() error{
		"register":  func() error { _, err := q.Register(as(bob), "worker", "", nil); return err },
		"heartbeat": func() error { _, err := q.Heartbeat(as(bob), "worker"); return err },
		"claim":     func() error { _, _, err := q.Claim(as(bob), "worker"); return err },
	} {
		if err := call(); nexus.ErrorCode(err) != nexus.EForbidden {
			t.Errorf("%s of alice's agent by bob: %v, want forbidden", name, err)
		}
	}
	// bob holds the token (leaked, say): still forbidden.
	if _, _, err := q.Complete(as(bob), task.ID, "worker", c.Claim, tasks.Answer{Content: "forged"}); nexus.ErrorCode(err) != nexus.EForbidden {
		t.Fatalf("completion by another principal: %v, want forbidden", err)
	}
	if _, err := q.Fail(as(bob), task.ID, "worker", c.Claim, tasks.Failure{Reason: "sabotage"}); nexus.ErrorCode(err) != nexus.EForbidden {
		t.Fatalf("failure by another principal: %v, want forbidden", err)
	}
	// alice with a wrong token: conflict.
	if _, _, err := q.Complete(as(alice), task.ID, "worker", "1", tasks.Answer{Content: "guess"}); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("completion with a guessed token: %v, want conflict", err)
	}
	done, res, err := q.Complete(as(alice), task.ID, "worker", c.Claim, tasks.Answer{Content: "looks right"})
	if err != nil || done.Status != tasks.Done {
		t.Fatalf("completion by the holder: %+v %v", done, err)
	}
	if res.Principal != "alice" {
		t.Fatalf("result written by %q, want alice", res.Principal)
	}
	if rs := results(t, s, task.ID); len(rs) != 1 || rs[0].Content != "looks right" {
		t.Fatalf("results: %+v", rs)
	}
}

// A principal sees and claims only the tasks of its namespaces.
func TestQueue_TasksOfUnreadableNamespaces(t *testing.T) {
	s, _ := open(t)
	q, err := tasks.Open(context.Background(), authz.NewStore(s), tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := q.Create(context.Background(), tasks.NewTask{Namespace: "secret", Content: "rotate the keys"})
	if err != nil {
		t.Fatal(err)
	}
	team, err := q.Create(context.Background(), tasks.NewTask{Namespace: "team", Content: "triage"})
	if err != nil {
		t.Fatal(err)
	}
	carol := &nexus.Principal{Name: "carol", Role: nexus.RoleWrite, Write: []string{"team"}}
	if _, err := q.Get(as(carol), secret.ID); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("get of a task in an unreadable namespace: %v, want not_found", err)
	}
	if list, _ := q.List(as(carol), "", 0); len(list) != 1 || list[0].ID != team.ID {
		t.Fatalf("list: %+v", list)
	}
	if _, err := q.Create(as(carol), tasks.NewTask{Namespace: "secret", Content: "x"}); nexus.ErrorCode(err) != nexus.EForbidden {
		t.Fatalf("task created in an unwritable namespace: %v, want forbidden", err)
	}
	q.Register(as(carol), "c1", "", nil)
	c, ok, err := q.Claim(as(carol), "c1")
	if err != nil || !ok || c.ID != team.ID {
		t.Fatalf("claim: %+v %v %v", c, ok, err)
	}
	if _, ok, err := q.Claim(as(carol), "c1"); ok || err != nil {
		t.Fatalf("a task of an unwritable namespace was given: %v %v", ok, err)
	}
}
