package tasks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/tasks"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T) (*gitstore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// results lists the result children of a task written by the queue.
func results(t *testing.T, s nexus.Store, id nexus.ID) []*nexus.Context {
	t.Helper()
	kids, err := s.Children(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []*nexus.Context
	for _, k := range kids {
		if k.Type == nexus.TypeResult {
			out = append(out, k)
		}
	}
	return out
}

// An agent that stops heartbeating loses its task to another, which
// completes it exactly once; the first agent's late answer is refused.
func TestQueue_LeaseLapseHandsTaskOver(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	clk := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	var events []string
	q, err := tasks.Open(ctx, s, tasks.Options{AgentLease: 10 * time.Second, ClaimLease: 30 * time.Second, Now: clk.now,
		OnEvent: func(e tasks.Event) { mu.Lock(); events = append(events, e.Kind+":"+e.ID+":"+e.Status); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"assistant-a", "assistant-b"} {
		if _, err := q.Register(context.Background(), id, id, []string{"review"}); err != nil {
			t.Fatal(err)
		}
	}
	task, err := q.Create(ctx, tasks.NewTask{Content: "review the parser change", Capability: "review", Creator: "lead"})
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := q.Claim(context.Background(), "assistant-a")
	stale := got.Claim
	if err != nil || !ok || got.ID != task.ID || got.Attempt != 1 || len(stale) != 32 {
		t.Fatalf("claim by a: %+v %v %v", got, ok, err)
	}
	if _, ok, _ := q.Claim(context.Background(), "assistant-b"); ok {
		t.Fatal("a claimed task was given out twice")
	}
	// a goes silent; b keeps heartbeating.
	for range 3 {
		clk.add(5 * time.Second)
		if _, err := q.Heartbeat(context.Background(), "assistant-b"); err != nil {
			t.Fatal(err)
		}
		q.Reap()
	}
	if a, _ := q.Agent("assistant-a"); a.Status != tasks.Lost || len(a.Claims) != 0 {
		t.Fatalf("silent agent: %+v", a)
	}
	got, ok, err = q.Claim(context.Background(), "assistant-b")
	if err != nil || !ok || got.ID != task.ID || got.Attempt != 2 || got.Attempts != 2 || got.Claim == stale {
		t.Fatalf("claim by b: %+v %v %v", got, ok, err)
	}
	done, res, err := q.Complete(ctx, task.ID, "assistant-b", got.Claim, tasks.Answer{Content: "looks right", Metadata: json.RawMessage(`{"score":9}`)})
	if err != nil || done.Status != tasks.Done || res.ParentID != task.ID || res.AgentID != "assistant-b" {
		t.Fatalf("complete by b: %+v %+v %v", done, res, err)
	}
	// a comes back with its stale claim: refused, nothing written.
	if _, err := q.Heartbeat(context.Background(), "assistant-a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Complete(ctx, task.ID, "assistant-a", stale, tasks.Answer{Content: "late answer"}); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("stale completion: %v", err)
	}
	if _, _, err := q.Complete(ctx, task.ID, "assistant-b", got.Claim, tasks.Answer{Content: "again"}); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("second completion: %v", err)
	}
	if rs := results(t, s, task.ID); len(rs) != 1 || rs[0].Content != "looks right" || !strings.Contains(string(rs[0].Metadata), `"score":9`) {
		t.Fatalf("results: %+v", rs)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"agent:assistant-a:active", "agent:assistant-b:active", "task:" + task.ID.String() + ":queued",
		"task:" + task.ID.String() + ":claimed", "agent:assistant-a:lost", "task:" + task.ID.String() + ":queued",
		"task:" + task.ID.String() + ":claimed", "task:" + task.ID.String() + ":done", "agent:assistant-a:active",
	}
	if strings.Join(events, " ") != strings.Join(want, " ") {
		t.Fatalf("events:\n got %v\nwant %v", events, want)
	}
}

// The queue is rebuilt from the store: done and failed tasks stay so,
// unfinished ones are queued again with their attempts counted.
func TestQueue_RestartRebuilds(t *testing.T) {
	ctx := context.Background()
	s, dir := open(t)
	q, err := tasks.Open(ctx, s, tasks.Options{MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	q.Register(context.Background(), "w", "", nil)
	var ids []nexus.ID
	for i := range 5 {
		task, err := q.Create(ctx, tasks.NewTask{Content: fmt.Sprint("task ", i), Namespace: "work"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, task.ID)
	}
	// An ordinary instruction is not a task.
	if _, err := s.Put(ctx, nexus.Draft{Type: nexus.TypeInstruction, Namespace: "work", Content: "not a task"}); err != nil {
		t.Fatal(err)
	}
	claim := func() tasks.Task {
		c, ok, err := q.Claim(context.Background(), "w")
		if err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		return c
	}
	c0 := claim()
	q.Complete(ctx, c0.ID, "w", c0.Claim, tasks.Answer{Content: "answer 0"})
	c1 := claim()
	if f, err := q.Fail(ctx, c1.ID, "w", c1.Claim, tasks.Failure{Reason: "cannot do it"}); err != nil || f.Status != tasks.Failed {
		t.Fatalf("final failure: %+v %v", f, err)
	}
	c2 := claim()
	if f, err := q.Fail(ctx, c2.ID, "w", c2.Claim, tasks.Failure{Reason: "flaky tool", Retry: true}); err != nil || f.Status != tasks.Queued {
		t.Fatalf("retried failure: %+v %v", f, err)
	}
	c3 := claim() // task 3, left claimed by the crash
	if c3.ID != ids[3] {
		t.Fatalf("claimed %s, want the oldest queued %s", c3.ID, ids[3])
	}
	s.Close()
	s2, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	q2, err := tasks.Open(ctx, s2, tasks.Options{MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := q2.List(context.Background(), "", 0)
	if len(all) != 5 {
		t.Fatalf("rebuilt %d tasks, want 5", len(all))
	}
	want := map[nexus.ID]string{ids[0]: tasks.Done, ids[1]: tasks.Failed, ids[2]: tasks.Queued, ids[3]: tasks.Queued, ids[4]: tasks.Queued}
	for _, task := range all {
		if task.Status != want[task.ID] {
			t.Errorf("task %s: %s, want %s (%+v)", task.Content, task.Status, want[task.ID], task)
		}
	}
	if g, _ := q2.Get(context.Background(), ids[2]); g.Attempts != 1 || g.Error != "flaky tool" {
		t.Fatalf("retried task after restart: %+v", g)
	}
	if g, _ := q2.Get(context.Background(), ids[0]); g.Result.IsZero() {
		t.Fatalf("done task lost its result: %+v", g)
	}
	// The agent is forgotten: its heartbeat says so, and it registers again.
	if _, err := q2.Heartbeat(context.Background(), "w"); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("heartbeat after restart: %v", err)
	}
}

// Many agents claiming and completing at once: every task done exactly
// once.
func TestQueue_ConcurrentAgents(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	q, err := tasks.Open(ctx, s, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	for i := range n {
		if _, err := q.Create(ctx, tasks.NewTask{Content: fmt.Sprint("job ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	doneBy := map[nexus.ID]string{}
	for w := range 6 {
		id := fmt.Sprint("worker-", w)
		q.Register(context.Background(), id, "", nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				task, ok, err := q.Claim(context.Background(), id)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					return
				}
				if _, _, err := q.Complete(ctx, task.ID, id, task.Claim, tasks.Answer{Content: "done by " + id}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := doneBy[task.ID]; dup {
					t.Errorf("task %s done by %s and %s", task.ID, prev, id)
				}
				doneBy[task.ID] = id
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(doneBy) != n {
		t.Fatalf("%d tasks done, want %d", len(doneBy), n)
	}
	for id, by := range doneBy {
		if rs := results(t, s, id); len(rs) != 1 || rs[0].AgentID != by {
			t.Fatalf("task %s: %d results", id, len(rs))
		}
	}
}

// Capabilities route tasks; a claim whose own lease lapses goes back;
// the last attempt lost fails the task; bad input is refused.
func TestQueue_CapabilitiesAttemptsAndInput(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	q, _ := tasks.Open(ctx, s, tasks.Options{AgentLease: time.Hour, ClaimLease: time.Minute, MaxAttempts: 2, Now: clk.now})
	q.Register(context.Background(), "coder", "", []string{"code"})
	q.Register(context.Background(), "writer", "", []string{"docs"})
	task, _ := q.Create(ctx, tasks.NewTask{Content: "write the parser", Capability: "code"})
	if _, ok, _ := q.Claim(context.Background(), "writer"); ok {
		t.Fatal("a task went to an agent without its capability")
	}
	for attempt := 1; attempt <= 2; attempt++ {
		c, ok, err := q.Claim(context.Background(), "coder")
		if err != nil || !ok || c.Attempts != attempt {
			t.Fatalf("attempt %d: %+v %v %v", attempt, c, ok, err)
		}
		clk.add(2 * time.Minute) // no heartbeat: the claim lapses
		q.Reap()
	}
	if g, _ := q.Get(context.Background(), task.ID); g.Status != tasks.Failed || !strings.Contains(g.Error, "2 attempts") {
		t.Fatalf("after its attempts: %+v", g)
	}
	for _, bad := range []func() error{
		func() error { _, err := q.Register(context.Background(), "", "", nil); return err },
		func() error {
			_, err := q.Register(context.Background(), "ok", "", []string{"bad capability"})
			return err
		},
		func() error { _, err := q.Create(ctx, tasks.NewTask{Content: "x", MaxAttempts: -1}); return err },
		func() error { _, err := q.Create(ctx, tasks.NewTask{Content: ""}); return err },
		func() error { _, err := q.List(context.Background(), "sleeping", 0); return err },
		func() error { _, err := q.Fail(ctx, task.ID, "coder", "x", tasks.Failure{}); return err },
	} {
		if err := bad(); nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("bad input accepted or misreported: %v", err)
		}
	}
	other, _ := q.Create(ctx, tasks.NewTask{Content: "another", Capability: "code"})
	c, _, _ := q.Claim(context.Background(), "coder")
	if _, _, err := q.Complete(ctx, other.ID, "coder", c.Claim, tasks.Answer{Content: "x", Metadata: json.RawMessage(`{"task":1}`)}); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Fatalf("reserved metadata key: %v", err)
	}
	if _, _, err := q.Claim(context.Background(), "nobody"); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("claim by an unknown agent: %v", err)
	}
}

// Past MaxQueued a new task is refused until an agent claims one.
func TestQueue_MaxQueued(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	q, _ := tasks.Open(ctx, s, tasks.Options{MaxQueued: 2})
	for i := range 2 {
		if _, err := q.Create(ctx, tasks.NewTask{Content: fmt.Sprint("task ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := q.Create(ctx, tasks.NewTask{Content: "one too many"})
	if nexus.ErrorCode(err) != nexus.EUnavailable || !strings.Contains(nexus.ErrorMessage(err), "2 tasks wait") {
		t.Fatalf("third task: %v", err)
	}
	if list, _ := q.List(context.Background(), "", 0); len(list) != 2 {
		t.Fatalf("%d tasks after a refused one, want 2", len(list))
	}
	q.Register(context.Background(), "worker", "", nil)
	if _, ok, err := q.Claim(context.Background(), "worker"); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if _, err := q.Create(ctx, tasks.NewTask{Content: "fits again"}); err != nil {
		t.Fatalf("after a claim: %v", err)
	}
}

// lateStore commits like the real store but, like it, reports the
// request's cancellation when the caller stopped waiting, although the
// write went through ("the write may still be committed").
type lateStore struct{ nexus.Store }

func (l lateStore) Put(ctx context.Context, d nexus.Draft) (*nexus.Context, error) {
	c, err := l.Store.Put(context.WithoutCancel(ctx), d)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return c, err
}

// A completion whose request is cancelled while the result is written
// still counts once: the claim is not handed back, so no second result
// can follow.
func TestQueue_CompleteCancelledIsOnce(t *testing.T) {
	s, _ := open(t)
	q, err := tasks.Open(context.Background(), lateStore{s}, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.Register(context.Background(), "w", "", nil)
	task, _ := q.Create(context.Background(), tasks.NewTask{Content: "answer once"})
	c, _, _ := q.Claim(context.Background(), "w")
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	done, res, err := q.Complete(gone, task.ID, "w", c.Claim, tasks.Answer{Content: "first"})
	if err != nil || done.Status != tasks.Done || res == nil {
		t.Fatalf("cancelled completion: %+v %v", done, err)
	}
	if _, _, err := q.Complete(context.Background(), task.ID, "w", c.Claim, tasks.Answer{Content: "second"}); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("retry after a cancelled completion: %v", err)
	}
	if rs := results(t, s, task.ID); len(rs) != 1 || rs[0].Content != "first" {
		t.Fatalf("results: %+v", rs)
	}
}

// Claims lost to lapsed leases are stored as failed attempts, so a
// restart neither gives a task its attempts back nor revives one that ran
// out of them.
func TestQueue_LapsesSurviveRestart(t *testing.T) {
	ctx := context.Background()
	s, dir := open(t)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	opts := tasks.Options{AgentLease: time.Hour, ClaimLease: time.Minute, MaxAttempts: 2, Now: clk.now}
	q, _ := tasks.Open(ctx, s, opts)
	q.Register(context.Background(), "slow", "", nil)
	once, _ := q.Create(ctx, tasks.NewTask{Content: "lapses once"})
	twice, _ := q.Create(ctx, tasks.NewTask{Content: "lapses twice"})
	q.Claim(context.Background(), "slow")
	q.Claim(context.Background(), "slow")
	clk.add(2 * time.Minute)
	q.Reap() // both lose claim 1
	c, _, _ := q.Claim(context.Background(), "slow")
	if c.ID != once.ID || c.Attempt != 2 {
		t.Fatalf("second claim: %+v", c)
	}
	clk.add(2 * time.Minute)
	q.Reap() // "once" loses claim 2: out of attempts
	// The journal of "once": each claim, then its loss.
	kids, _ := s.Children(ctx, once.ID)
	var journal []string
	for _, k := range kids {
		journal = append(journal, string(k.Type)+": "+k.Content)
	}
	want := []string{
		"observation: claim 1 of task " + once.ID.String() + " taken by slow", "error: claim lost: its claim's lease lapsed",
		"observation: claim 2 of task " + once.ID.String() + " taken by slow", "error: claim lost: its claim's lease lapsed",
	}
	if strings.Join(journal, "\n") != strings.Join(want, "\n") {
		t.Fatalf("journal of the task:\n got %q\nwant %q", journal, want)
	}
	s.Close()
	s2, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	q2, err := tasks.Open(ctx, s2, opts)
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := q2.Get(context.Background(), once.ID); g.Status != tasks.Failed || g.Attempts != 2 {
		t.Fatalf("task out of attempts after restart: %+v", g)
	}
	if g, _ := q2.Get(context.Background(), twice.ID); g.Status != tasks.Queued || g.Attempts != 1 || !strings.Contains(g.Error, "lease lapsed") {
		t.Fatalf("task with one lost claim after restart: %+v", g)
	}
}
