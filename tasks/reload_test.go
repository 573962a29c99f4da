package tasks_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/tasks"
)

// events records a queue's events.
type events struct {
	mu  sync.Mutex
	all []tasks.Event
}

func (e *events) add(ev tasks.Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }

func (e *events) of(kind, id string) []tasks.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []tasks.Event
	for _, ev := range e.all {
		if ev.Kind == kind && ev.ID == id {
			out = append(out, ev)
		}
	}
	return out
}

// A queue that takes another's over (the new leader of a cluster: Reload
// over the same store) keeps the claims held: the same agent holds each
// under the same token, with a whole claim lease from the reload, and the
// agent is registered again as it was, with a whole agent lease, although
// both leases had lapsed on the clock meanwhile. Everything else is as at
// a restart; a claim journaled without its token's hash (an earlier
// version's) is lost as at a restart; and the journal never holds a token.
func TestQueue_ReloadKeepsHeldClaims(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	store := authz.NewStore(s)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	const agentLease, claimLease = 10 * time.Second, 30 * time.Second
	opts := tasks.Options{AgentLease: agentLease, ClaimLease: claimLease, MaxAttempts: 3, Now: clk.now}
	old, err := tasks.Open(ctx, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	create := func(content, capability string) nexus.ID {
		task, err := old.Create(as(alice), tasks.NewTask{Content: content, Capability: capability, Namespace: "work"})
		if err != nil {
			t.Fatal(err)
		}
		return task.ID
	}
	held, done, retried, waiting, legacy := create("held", "review"), create("done", "review"), create("retried", ""), create("waiting", ""), create("legacy", "")
	if _, err := old.Register(as(alice), "a", "Assistant A", []string{"review"}); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Register(as(bob), "b", "", nil); err != nil {
		t.Fatal(err)
	}
	claim := func(who *nexus.Principal, agent string, want nexus.ID) tasks.Task {
		t.Helper()
		c, ok, err := old.Claim(as(who), agent)
		if err != nil || !ok || c.ID != want {
			t.Fatalf("claim by %s: %+v %v %v, want task %s", agent, c, ok, err, want)
		}
		return c
	}
	heldClaim := claim(alice, "a", held)
	doneClaim := claim(alice, "a", done)
	if _, _, err := old.Complete(as(alice), done, "a", doneClaim.Claim, tasks.Answer{Content: "done before"}); err != nil {
		t.Fatal(err)
	}
	retriedClaim := claim(bob, "b", retried)
	if _, err := old.Fail(as(bob), retried, "b", retriedClaim.Claim, tasks.Failure{Reason: "flaky", Retry: true}); err != nil {
		t.Fatal(err)
	}
	// An earlier version journaled claims without a holder.
	meta, _ := json.Marshal(map[string]any{"task": map[string]any{"id": legacy, "claim": 1, "claimed": true}})
	if _, err := s.Put(ctx, nexus.Draft{Namespace: "work", Type: nexus.TypeObservation, Content: "claim 1 of task taken by c", Metadata: meta, AgentID: "c", ParentID: legacy}); err != nil {
		t.Fatal(err)
	}

	// The journal holds the token's hash and the holder, never the token.
	kids, err := s.Children(ctx, held)
	if err != nil || len(kids) != 1 {
		t.Fatalf("journal of the held task: %v %v", kids, err)
	}
	sum := sha256.Sum256([]byte(heldClaim.Claim))
	var journal struct {
		Task struct {
			Holder map[string]any `json:"holder"`
		} `json:"task"`
	}
	if err := json.Unmarshal(kids[0].Metadata, &journal); err != nil {
		t.Fatal(err)
	}
	wantHolder := map[string]any{"agent": "a", "principal": "alice", "name": "Assistant A", "capabilities": []any{"review"}, "token_sha256": hex.EncodeToString(sum[:])}
	if b, w := mustJSON(journal.Task.Holder), mustJSON(wantHolder); b != w || strings.Contains(string(kids[0].Metadata), heldClaim.Claim) {
		t.Fatalf("claim journal metadata %s, want holder %s and no token", kids[0].Metadata, w)
	}

	// Both of a's leases lapse on the clock while the queue changes hands.
	clk.add(time.Minute)
	ev := &events{}
	o := opts
	o.OnEvent = ev.add
	next, err := tasks.Open(ctx, store, o) // as a follower opens it: Open's view
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := next.Get(ctx, held); g.Status != tasks.Queued || g.Error != "claim 1 lost: the queue stopped while it was held" {
		t.Fatalf("held task as Open sees it: %+v", g)
	}
	paused := nexus.Errorf(nexus.ENoQuorum, "not the leader")
	next.Pause(paused)
	if _, _, err := next.Claim(as(alice), "a"); err != paused {
		t.Fatalf("claim from a paused queue: %v", err)
	}
	if _, err := next.Register(as(alice), "a", "", nil); err != paused {
		t.Fatalf("register with a paused queue: %v", err)
	}
	if _, err := next.Create(as(alice), tasks.NewTask{Content: "more"}); err != paused {
		t.Fatalf("create in a paused queue: %v", err)
	}
	if n := next.Reap(); n != 0 {
		t.Fatalf("a paused queue reaped %d", n)
	}
	if got := ev.of("agent", "a"); len(got) != 0 {
		t.Fatalf("events before the reload: %+v", got)
	}

	if err := next.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	took := clk.now()
	g, _ := next.Get(ctx, held)
	if g.Status != tasks.Claimed || g.ClaimedBy != "a" || g.Attempt != 1 || g.Attempts != 1 || g.Claim != "" || !g.LeaseExpires.Equal(took.Add(claimLease)) {
		t.Fatalf("held task after the reload: %+v, want claimed by a (claim 1) until %v", g, took.Add(claimLease))
	}
	a, err := next.Agent("a")
	if err != nil || a.Status != tasks.Active || a.Name != "Assistant A" || a.Principal != "alice" || !slices.Equal(a.Capabilities, []string{"review"}) ||
		!slices.Equal(a.Claims, []nexus.ID{held}) || !a.LastHeartbeat.Equal(took) || !a.LeaseExpires.Equal(took.Add(agentLease)) {
		t.Fatalf("agent a after the reload: %+v %v", a, err)
	}
	if got := ev.of("agent", "a"); len(got) != 1 || got[0].Status != tasks.Active || got[0].Reason != "taken over with its claims" {
		t.Fatalf("agent events of the reload: %+v", got)
	}
	// b held nothing: it registers again when its heartbeat says so.
	if _, err := next.Heartbeat(as(bob), "b"); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("heartbeat of b, which held no claim: %v", err)
	}
	want := map[nexus.ID]string{held: tasks.Claimed, done: tasks.Done, retried: tasks.Queued, waiting: tasks.Queued, legacy: tasks.Queued}
	for id, st := range want {
		if g, _ := next.Get(ctx, id); g.Status != st {
			t.Errorf("task %s after the reload: %+v, want %s", g.Content, g, st)
		}
	}
	if g, _ := next.Get(ctx, legacy); g.Attempts != 1 || g.Error != "claim 1 lost: the queue stopped while it was held" {
		t.Fatalf("a claim journaled without a holder: %+v", g)
	}

	// The leases are whole from the reload: just before they end nothing
	// lapses.
	clk.add(agentLease)
	if n := next.Reap(); n != 0 {
		t.Fatalf("reaped %d at the end of the fresh agent lease", n)
	}
	if _, err := next.Heartbeat(as(alice), "a"); err != nil {
		t.Fatal(err)
	}
	// Only a, as alice, with its token finishes the task.
	if _, _, err := next.Complete(as(bob), held, "a", heldClaim.Claim, tasks.Answer{Content: "x"}); nexus.ErrorCode(err) != nexus.EForbidden {
		t.Fatalf("completion by another principal: %v", err)
	}
	if _, _, err := next.Complete(as(alice), held, "a", strings.Repeat("0", 32), tasks.Answer{Content: "x"}); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("completion with a wrong token: %v", err)
	}
	fin, res, err := next.Complete(as(alice), held, "a", heldClaim.Claim, tasks.Answer{Content: "reviewed"})
	if err != nil || fin.Status != tasks.Done || fin.Result != res.ID {
		t.Fatalf("completion with the token given before the takeover: %+v %v", fin, err)
	}
	if rs := results(t, s, held); len(rs) != 1 || rs[0].Content != "reviewed" || rs[0].AgentID != "a" || rs[0].Principal != "alice" {
		t.Fatalf("results of the held task: %+v", rs)
	}
	// a goes on claiming with the registration it had.
	if c, ok, err := next.Claim(as(alice), "a"); err != nil || !ok || c.ID != retried || c.Attempt != 2 {
		t.Fatalf("next claim of a: %+v %v %v", c, ok, err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A claim kept by a reload whose agent is gone lapses a whole lease after
// the reload, as any other: it goes back to the queue as an attempt lost.
func TestQueue_ReloadedClaimLapses(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	opts := tasks.Options{AgentLease: 10 * time.Second, ClaimLease: time.Minute, Now: clk.now}
	old, err := tasks.Open(ctx, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	task, _ := old.Create(ctx, tasks.NewTask{Content: "migrate"})
	old.Register(ctx, "a", "", nil)
	if _, ok, err := old.Claim(ctx, "a"); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	next, err := tasks.Open(ctx, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour)
	if err := next.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	clk.add(10 * time.Second)
	if n := next.Reap(); n != 0 {
		t.Fatalf("reaped %d within the agent's fresh lease", n)
	}
	clk.add(time.Millisecond)
	if n := next.Reap(); n != 1 {
		t.Fatalf("reaped %d once the agent's fresh lease ended, want 1", n)
	}
	g, _ := next.Get(ctx, task.ID)
	if g.Status != tasks.Queued || g.Attempts != 1 || g.Error != "claim 1 lost: its agent's lease lapsed" {
		t.Fatalf("after the lapse: %+v", g)
	}
	if a, _ := next.Agent("a"); a.Status != tasks.Lost || len(a.Claims) != 0 {
		t.Fatalf("agent after the lapse: %+v", a)
	}
	// The lapse is journaled: a later takeover does not keep the claim.
	if err := next.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if g, _ := next.Get(ctx, task.ID); g.Status != tasks.Queued || g.Attempts != 1 {
		t.Fatalf("after a second reload: %+v", g)
	}
}

// Reload waits for the operations in flight: a completion whose result is
// being written when the reload starts is in the reloaded queue (a reload
// that read the store meanwhile would find the task still claimed).
func TestQueue_ReloadWaitsForOperations(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	g := gate(s, nexus.TypeResult)
	q, err := tasks.Open(ctx, g, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := q.Create(ctx, tasks.NewTask{Content: "first"})
	second, _ := q.Create(ctx, tasks.NewTask{Content: "second"})
	q.Register(ctx, "a", "", nil)
	c, ok, err := q.Claim(ctx, "a")
	if err != nil || !ok || c.ID != first.ID {
		t.Fatalf("claim: %+v %v %v", c, ok, err)
	}
	completed := make(chan error, 1)
	go func() {
		_, _, err := q.Complete(ctx, first.ID, "a", c.Claim, tasks.Answer{Content: "answer"})
		completed <- err
	}()
	<-g.arrived
	reloaded := make(chan error, 1)
	go func() { reloaded <- q.Reload(ctx) }()
	select {
	case err := <-reloaded:
		t.Fatalf("the reload ended while a result was written: %v", err)
	case <-time.After(50 * time.Millisecond):
		// Not a wait for an event: the reload must not end in this time.
	}
	close(g.release)
	if err := <-completed; err != nil {
		t.Fatal(err)
	}
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Get(ctx, first.ID); got.Status != tasks.Done {
		t.Fatalf("the task completed during the reload: %+v", got)
	}
	// a holds no claim any more: the reload forgot it, it registers again.
	if _, err := q.Heartbeat(ctx, "a"); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("heartbeat of an agent without claims after the reload: %v", err)
	}
	q.Register(ctx, "a", "", nil)
	if c2, ok, err := q.Claim(ctx, "a"); err != nil || !ok || c2.ID != second.ID {
		t.Fatalf("claim after the reload: %+v %v %v", c2, ok, err)
	}
}
