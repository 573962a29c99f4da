package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/tasks"
)

// node is a queue over a store on disk that can be stopped and started
// again over the same directory, as a restart of the node does.
type node struct {
	t    *testing.T
	dir  string
	opts tasks.Options
	s    *gitstore.Store
	q    *tasks.Queue
}

func startNode(t *testing.T, opts tasks.Options) *node {
	t.Helper()
	n := &node{t: t, dir: t.TempDir(), opts: opts}
	n.start()
	t.Cleanup(func() { n.s.Close() })
	return n
}

func (n *node) start() {
	n.t.Helper()
	s, err := gitstore.Open(n.dir, gitstore.Options{})
	if err != nil {
		n.t.Fatal(err)
	}
	q, err := tasks.Open(context.Background(), s, n.opts)
	if err != nil {
		s.Close()
		n.t.Fatal(err)
	}
	n.s, n.q = s, q
}

// restart drops the queue, closes the store and opens both again.
func (n *node) restart() {
	n.t.Helper()
	if err := n.s.Close(); err != nil {
		n.t.Fatal(err)
	}
	n.start()
}

func (n *node) claim(agent string) tasks.Task {
	n.t.Helper()
	if _, err := n.q.Register(context.Background(), agent, "", nil); err != nil {
		n.t.Fatal(err)
	}
	c, ok, err := n.q.Claim(context.Background(), agent)
	if err != nil || !ok {
		n.t.Fatalf("claim by %s: %v %v", agent, ok, err)
	}
	return c
}

// storedResults lists every result context of the store.
func storedResults(t *testing.T, s nexus.Store) []*nexus.Context {
	t.Helper()
	var out []*nexus.Context
	f := nexus.Filter{Type: nexus.TypeResult, Order: nexus.Oldest, Limit: nexus.MaxLimit}
	for {
		page, err := s.List(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Contexts...)
		if page.NextCursor == "" {
			return out
		}
		f.Cursor = page.NextCursor
	}
}

// Claim numbers keep growing across restarts: a claim held when the node
// stopped is not given out again, and its holder cannot complete the
// task once it is claimed anew.
func TestQueue_ClaimNumbersSurviveRestart(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, tasks.Options{MaxAttempts: 5})
	task, err := n.q.Create(ctx, tasks.NewTask{Content: "port the parser"})
	if err != nil {
		t.Fatal(err)
	}
	first := n.claim("a")
	seen, tokens := []int{first.Attempt}, []string{first.Claim}
	for _, agent := range []string{"b", "c"} {
		n.restart()
		g, err := n.q.Get(context.Background(), task.ID)
		if err != nil || g.Status != tasks.Queued || g.Attempts != len(seen) || !strings.Contains(g.Error, fmt.Sprintf("claim %d lost", seen[len(seen)-1])) {
			t.Fatalf("after restart %d: %+v %v", len(seen), g, err)
		}
		c := n.claim(agent)
		for _, prev := range seen {
			if c.Attempt <= prev {
				t.Fatalf("claim %d after a restart, earlier claims %v", c.Attempt, seen)
			}
		}
		if c.Attempts != len(seen)+1 {
			t.Fatalf("attempts %d after %d claims", c.Attempts, len(seen)+1)
		}
		seen, tokens = append(seen, c.Attempt), append(tokens, c.Claim)
	}
	// a and b held claims 1 and 2 when the node stopped: both are stale.
	for i, agent := range []string{"a", "b"} {
		if _, _, err := n.q.Complete(ctx, task.ID, agent, tokens[i], tasks.Answer{Content: "stale"}); nexus.ErrorCode(err) != nexus.EConflict {
			t.Fatalf("completion of claim %d held before a restart: %v", seen[i], err)
		}
	}
	done, res, err := n.q.Complete(ctx, task.ID, "c", tokens[2], tasks.Answer{Content: "ported"})
	if err != nil || done.Status != tasks.Done {
		t.Fatalf("completion of the current claim: %+v %v", done, err)
	}
	if rs := storedResults(t, n.s); len(rs) != 1 || rs[0].ID != res.ID || rs[0].Content != "ported" {
		t.Fatalf("results: %+v", rs)
	}
	n.restart()
	if g, _ := n.q.Get(context.Background(), task.ID); g.Status != tasks.Done || g.Result != res.ID || g.Attempts != 3 {
		t.Fatalf("done task after a restart: %+v", g)
	}
}

// Attempts held when the node stopped count toward max_attempts: the
// task whose last attempt was in progress at a restart fails.
func TestQueue_AttemptsInProgressSurviveRestart(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, tasks.Options{MaxAttempts: 2})
	task, err := n.q.Create(ctx, tasks.NewTask{Content: "migrate the schema"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := n.q.Create(ctx, tasks.NewTask{Content: "never claimed"})
	if err != nil {
		t.Fatal(err)
	}
	if c := n.claim("a"); c.ID != task.ID || c.Attempt != 1 {
		t.Fatalf("first claim: %+v", c)
	}
	n.restart()
	held := n.claim("b")
	if held.ID != task.ID || held.Attempt != 2 || held.Attempts != 2 {
		t.Fatalf("claim after a restart: %+v", held)
	}
	n.restart()
	g, err := n.q.Get(context.Background(), task.ID)
	if err != nil || g.Status != tasks.Failed || g.Attempts != 2 || !strings.Contains(g.Error, "2 attempts, the last lost") {
		t.Fatalf("task out of attempts across restarts: %+v %v", g, err)
	}
	if o, _ := n.q.Get(context.Background(), other.ID); o.Status != tasks.Queued || o.Attempts != 0 {
		t.Fatalf("untouched task: %+v", o)
	}
	if c := n.claim("c"); c.ID != other.ID {
		t.Fatalf("a failed task was given out: %+v", c)
	}
	if _, _, err := n.q.Complete(ctx, task.ID, "b", held.Claim, tasks.Answer{Content: "late"}); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("completion of a failed task: %v", err)
	}
	if rs := storedResults(t, n.s); len(rs) != 0 {
		t.Fatalf("results: %+v", rs)
	}
}

// race is what the agents and the reaper of TestQueue_RaceForOneTask wait
// on: the queue's task events and the leases lapsed so far.
type race struct {
	mu     sync.Mutex
	cond   *sync.Cond
	events int  // task events so far
	claims int  // claimed events so far
	rounds int  // leases lapsed so far
	over   bool // no lease lapses any more
}

func (r *race) event(e tasks.Event) {
	if e.Kind != "task" {
		return
	}
	r.mu.Lock()
	r.events++
	if e.Status == tasks.Claimed {
		r.claims++
	}
	r.cond.Broadcast()
	r.mu.Unlock()
}

// wait blocks until cond holds (under r.mu).
func (r *race) wait(cond func() bool) {
	r.mu.Lock()
	for !cond() {
		r.cond.Wait()
	}
	r.mu.Unlock()
}

func (r *race) seen() int { r.mu.Lock(); defer r.mu.Unlock(); return r.events }

// Agents race for one task while its leases lapse and it goes back to
// the queue again and again: each holder tries to complete it only once
// its claim lapsed, racing the next claim, until the leases stop lapsing.
// Every claim number is given out once, and the store ends with exactly
// one result, under the last claim.
func TestQueue_RaceForOneTask(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	r := &race{}
	r.cond = sync.NewCond(&r.mu)
	q, err := tasks.Open(ctx, s, tasks.Options{AgentLease: time.Minute, ClaimLease: time.Minute, MaxAttempts: 100, Now: clk.now, OnEvent: r.event})
	if err != nil {
		t.Fatal(err)
	}
	task, err := q.Create(ctx, tasks.NewTask{Content: "the one task"})
	if err != nil {
		t.Fatal(err)
	}
	const lapses = 20 // well under max_attempts: the task ends done
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		claims    = map[int]string{}
		completed []int
	)
	wg.Add(1)
	go func() { // claim k lapses in round k
		defer wg.Done()
		for round := 1; round <= lapses; round++ {
			r.wait(func() bool { return r.claims >= round })
			clk.add(2 * time.Minute)
			n := q.Reap()
			if n != 1 {
				t.Errorf("round %d reaped %d tasks, want 1", round, n)
			}
			r.mu.Lock()
			r.rounds, r.over = round, round == lapses || n != 1
			r.cond.Broadcast()
			r.mu.Unlock()
			if n != 1 {
				return
			}
		}
	}()
	for w := range 8 {
		agent := fmt.Sprint("agent-", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seen := r.seen()
				if g, _ := q.Get(context.Background(), task.ID); g.Status == tasks.Done || g.Status == tasks.Failed {
					return
				}
				if _, err := q.Register(context.Background(), agent, "", nil); err != nil {
					t.Error(err)
					return
				}
				c, ok, err := q.Claim(context.Background(), agent)
				if nexus.ErrorCode(err) == nexus.ENotFound {
					continue // its lease lapsed since it registered: register again
				}
				if err != nil {
					t.Error(err)
					return
				}
				if !ok { // another agent holds it: wait for the next transition
					r.wait(func() bool { return r.events != seen })
					continue
				}
				mu.Lock()
				if prev, dup := claims[c.Attempt]; dup {
					t.Errorf("claim %d given to %s and %s", c.Attempt, prev, agent)
				}
				claims[c.Attempt] = agent
				mu.Unlock()
				r.wait(func() bool { return r.over || r.rounds >= c.Attempt })
				_, _, err = q.Complete(ctx, task.ID, agent, c.Claim, tasks.Answer{Content: "answer of " + agent})
				switch nexus.ErrorCode(err) {
				case "":
					mu.Lock()
					completed = append(completed, c.Attempt)
					mu.Unlock()
				case nexus.EConflict:
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	g, err := q.Get(context.Background(), task.ID)
	if err != nil || g.Status != tasks.Done || g.Attempts != lapses+1 || len(claims) != lapses+1 || len(completed) != 1 || completed[0] != lapses+1 {
		t.Fatalf("task %+v (%v): %d claims given out, completed under claims %v", g, err, len(claims), completed)
	}
	rs := storedResults(t, s)
	if len(rs) != 1 || rs[0].ID != g.Result || rs[0].AgentID != claims[lapses+1] {
		t.Fatalf("results %+v, want one by %s", rs, claims[lapses+1])
	}
	if !strings.Contains(string(rs[0].Metadata), fmt.Sprintf(`"claim":%d`, lapses+1)) {
		t.Fatalf("result metadata %s, want claim %d", rs[0].Metadata, lapses+1)
	}
}

// A holder whose lease lapsed cannot complete the task: it went back to
// the queue, another agent claimed it, and only that agent's completion
// is stored.
func TestQueue_CompleteAfterLapseConflicts(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	q, err := tasks.Open(ctx, s, tasks.Options{AgentLease: time.Hour, ClaimLease: time.Minute, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	task, _ := q.Create(ctx, tasks.NewTask{Content: "summarize the incident"})
	for _, a := range []string{"old", "new"} {
		if _, err := q.Register(context.Background(), a, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	held, ok, err := q.Claim(context.Background(), "old")
	if err != nil || !ok {
		t.Fatalf("claim by old: %v %v", ok, err)
	}
	clk.add(time.Minute) // the lease ends now: not yet lapsed
	if n := q.Reap(); n != 0 {
		t.Fatalf("reaped %d at the end of the lease, want 0", n)
	}
	clk.add(time.Nanosecond)
	if n := q.Reap(); n != 1 {
		t.Fatalf("reaped %d past the lease, want 1", n)
	}
	if g, _ := q.Get(context.Background(), task.ID); g.Status != tasks.Queued || g.ClaimedBy != "" {
		t.Fatalf("after the lapse: %+v", g)
	}
	taken, ok, err := q.Claim(context.Background(), "new")
	if err != nil || !ok || taken.ID != task.ID || taken.Attempt != held.Attempt+1 || taken.Claim == held.Claim {
		t.Fatalf("claim by new: %+v %v %v", taken, ok, err)
	}
	_, _, err = q.Complete(ctx, task.ID, "old", held.Claim, tasks.Answer{Content: "old answer"})
	var ne *nexus.Error
	if !errors.As(err, &ne) || ne.Code != nexus.EConflict || !strings.Contains(ne.Message, "not current") {
		t.Fatalf("completion by the old holder: %v", err)
	}
	done, res, err := q.Complete(ctx, task.ID, "new", taken.Claim, tasks.Answer{Content: "new answer"})
	if err != nil || done.Status != tasks.Done || done.Result != res.ID {
		t.Fatalf("completion by the new holder: %+v %v", done, err)
	}
	rs := storedResults(t, s)
	if len(rs) != 1 || rs[0].ID != res.ID || rs[0].Content != "new answer" || rs[0].AgentID != "new" {
		t.Fatalf("results: %+v", rs)
	}
	var meta struct {
		Task struct {
			ID    nexus.ID `json:"id"`
			Claim int      `json:"claim"`
		} `json:"task"`
	}
	if err := json.Unmarshal(rs[0].Metadata, &meta); err != nil || meta.Task.ID != task.ID || meta.Task.Claim != taken.Attempt {
		t.Fatalf("result metadata %s: %v", rs[0].Metadata, err)
	}
}

// A completion whose write fails although the result was committed (the
// store crashed between moving its ref and answering) is not handed back
// to its agent: a retry is refused and the store keeps one result.
func TestQueue_CompleteUncertainWrite(t *testing.T) {
	ctx := context.Background()
	var failNext atomic.Bool
	s, err := gitstore.Open(t.TempDir(), gitstore.Options{Failpoint: func(p string) error {
		if p == "ref-moved" && failNext.CompareAndSwap(true, false) {
			return errors.New("crash after the ref moved")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := tasks.Open(ctx, s, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	task, _ := q.Create(ctx, tasks.NewTask{Content: "answer once"})
	q.Register(context.Background(), "w", "", nil)
	c, ok, err := q.Claim(context.Background(), "w")
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	failNext.Store(true)
	done, res, err := q.Complete(ctx, task.ID, "w", c.Claim, tasks.Answer{Content: "first"})
	if failNext.Load() {
		t.Fatal("the failpoint was not reached: the uncertain write was not set up")
	}
	if err != nil || done.Status != tasks.Done || res == nil || res.Content != "first" {
		t.Fatalf("completion whose write was committed but reported failed: %+v %+v %v", done, res, err)
	}
	if _, _, err := q.Complete(ctx, task.ID, "w", c.Claim, tasks.Answer{Content: "second"}); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("retry: %v", err)
	}
	if rs := storedResults(t, s); len(rs) != 1 || rs[0].ID != res.ID {
		t.Fatalf("results: %+v", rs)
	}
}

// gatedStore holds the writes of one type of context until released,
// telling when one arrives: the state of the queue while such a write is
// in flight can then be looked at.
type gatedStore struct {
	nexus.Store
	typ     nexus.Type
	arrived chan struct{}
	release chan struct{}
}

func gate(s nexus.Store, typ nexus.Type) *gatedStore {
	return &gatedStore{Store: s, typ: typ, arrived: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedStore) Put(ctx context.Context, d nexus.Draft) (*nexus.Context, error) {
	if d.Type == g.typ {
		g.arrived <- struct{}{}
		<-g.release
	}
	return g.Store.Put(ctx, d)
}

// A result being written holds the task past its lease: the write cannot
// be recalled, so the task is not given to another agent meanwhile.
func TestQueue_CompletionInFlightOutlivesLease(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	g := gate(s, nexus.TypeResult)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	q, err := tasks.Open(ctx, g, tasks.Options{AgentLease: time.Minute, ClaimLease: time.Minute, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	task, _ := q.Create(ctx, tasks.NewTask{Content: "write the release notes"})
	q.Register(context.Background(), "a", "", nil)
	c, ok, err := q.Claim(context.Background(), "a")
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	type outcome struct {
		task tasks.Task
		err  error
	}
	done := make(chan outcome)
	go func() {
		d, _, err := q.Complete(ctx, task.ID, "a", c.Claim, tasks.Answer{Content: "notes"})
		done <- outcome{d, err}
	}()
	<-g.arrived
	clk.add(2 * time.Minute)
	if n := q.Reap(); n != 0 {
		t.Fatalf("reaped %d tasks while a result was written, want 0", n)
	}
	q.Register(context.Background(), "b", "", nil)
	if other, ok, err := q.Claim(context.Background(), "b"); ok || err != nil {
		t.Fatalf("claimed while a result was written: %+v %v", other, err)
	}
	if g, _ := q.Get(context.Background(), task.ID); g.Status != tasks.Completing {
		t.Fatalf("while its result is written: %+v", g)
	}
	close(g.release)
	if o := <-done; o.err != nil || o.task.Status != tasks.Done {
		t.Fatalf("completion: %+v", o)
	}
	if rs := storedResults(t, s); len(rs) != 1 || rs[0].Content != "notes" {
		t.Fatalf("results: %+v", rs)
	}
}

// A claim is given out only once it is journaled: while it is written no
// lease runs and no completion is taken, and a claim whose journal write
// fails leaves the task queued with its attempts and numbers untouched.
func TestQueue_ClaimJournaled(t *testing.T) {
	ctx := context.Background()
	var failNext atomic.Bool
	dir := t.TempDir()
	s, err := gitstore.Open(dir, gitstore.Options{Failpoint: func(p string) error {
		if p == "pack-written" && failNext.CompareAndSwap(true, false) {
			return errors.New("disk gone")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := gate(s, nexus.TypeObservation)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	q, err := tasks.Open(ctx, g, tasks.Options{AgentLease: time.Hour, ClaimLease: time.Minute, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	task, _ := q.Create(ctx, tasks.NewTask{Content: "triage the crash"})
	q.Register(context.Background(), "a", "", nil)
	type outcome struct {
		task tasks.Task
		ok   bool
		err  error
	}
	// claim claims in the background until the journal write arrives.
	claim := func() chan outcome {
		claimed := make(chan outcome, 1)
		go func() {
			c, ok, err := q.Claim(context.Background(), "a")
			claimed <- outcome{c, ok, err}
		}()
		<-g.arrived
		return claimed
	}
	claimed := claim()
	clk.add(2 * time.Minute) // longer than the claim's lease, while it is written
	if n := q.Reap(); n != 0 {
		t.Fatalf("reaped %d tasks while a claim was written, want 0", n)
	}
	if _, _, err := q.Complete(ctx, task.ID, "a", strings.Repeat("0", 32), tasks.Answer{Content: "early"}); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("completion of a claim being written: %v", err)
	}
	g.release <- struct{}{}
	o := <-claimed
	if o.err != nil || !o.ok || o.task.Attempt != 1 || !o.task.LeaseExpires.Equal(clk.now().Add(time.Minute)) {
		t.Fatalf("claim: %+v", o)
	}
	if _, err := q.Fail(ctx, task.ID, "a", o.task.Claim, tasks.Failure{Reason: "try elsewhere", Retry: true}); err != nil {
		t.Fatal(err)
	}
	// The next claim's journal write fails: the task stays queued.
	failNext.Store(true)
	claimed = claim()
	g.release <- struct{}{}
	o = <-claimed
	if failNext.Load() {
		t.Fatal("the failpoint was not reached: the failed write was not set up")
	}
	if o.ok || nexus.ErrorCode(o.err) != nexus.EInternal || !strings.Contains(o.err.Error(), "journal claim 2") {
		t.Fatalf("claim whose journal write failed: %+v", o)
	}
	if got, _ := q.Get(context.Background(), task.ID); got.Status != tasks.Queued || got.Attempts != 1 || got.ClaimedBy != "" {
		t.Fatalf("task after a failed claim: %+v", got)
	}
	if a, _ := q.Agent("a"); len(a.Claims) != 0 {
		t.Fatalf("agent after a failed claim: %+v", a)
	}
	claimed = claim()
	g.release <- struct{}{}
	if o := <-claimed; o.err != nil || !o.ok || o.task.Attempt != 2 || o.task.Attempts != 2 {
		t.Fatalf("claim after a failed one: %+v", o)
	}
}
