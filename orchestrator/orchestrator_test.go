package orchestrator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/orchestrator"
)

// provider is a fake OpenAI-compatible server speaking the real chat
// completions wire format; down makes it answer 503.
type provider struct {
	url    string       // the API root, without /v1
	client *http.Client // for agent.Config.HTTPClient; nil: the default
	name   string
	down   atomic.Bool
	calls  atomic.Int64
	mu     sync.Mutex
	last   string // the last request body
}

// newProvider serves on loopback TCP.
func newProvider(t testing.TB, name string) *provider {
	p := &provider{name: name}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// newPipeProvider serves on an in-memory network of net.Pipe
// connections, so that it works inside a testing/synctest bubble (a
// goroutine blocked on a loopback socket waits in the netpoller, where the
// bubble cannot see it, and the bubble's clock would never advance).
func newPipeProvider(t testing.TB, name string) *provider {
	p := &provider{name: name, url: "http://fake-provider.test"}
	ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: p}
	go srv.Serve(ln)
	tr := &http.Transport{DialContext: ln.dial}
	p.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return p
}

func (p *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/models":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[{"id":"fake-model","object":"model"}]}`)
		return
	case "/v1/chat/completions":
	default:
		http.NotFound(w, r)
		return
	}
	p.calls.Add(1)
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json","type":"invalid_request_error"}}`, 400)
		return
	}
	body, _ := json.Marshal(req)
	p.mu.Lock()
	p.last = string(body)
	p.mu.Unlock()
	if p.down.Load() {
		w.WriteHeader(503)
		fmt.Fprint(w, `{"error":{"message":"overloaded","type":"server_error"}}`)
		return
	}
	last := req.Messages[len(req.Messages)-1].Content
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": p.name + " answers: " + firstLine(last)}}},
		"usage": map[string]any{"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
	})
}

// pipeListener is an in-memory network: the client dials and the server
// accepts the two ends of a net.Pipe.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, errors.New("dial fake-provider: connection refused")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "fake-provider" }

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		s = s[i+1:]
	}
	return s
}

func (p *provider) lastRequest() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func runner(t testing.TB, id string, p *provider, tune func(*agent.Config)) *agent.Runner {
	t.Helper()
	cfg := agent.Config{ID: id, Provider: agent.OpenAI, Model: "fake-model", BaseURL: p.url + "/v1",
		HTTPClient: p.client, Timeout: 5 * time.Second, HeartbeatInterval: -1}
	if tune != nil {
		tune(&cfg)
	}
	r, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func store(t testing.TB) (*gitstore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func put(t testing.TB, s nexus.Store, content string, parent nexus.ID) *nexus.Context {
	t.Helper()
	c, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeInstruction, Content: content, ParentID: parent, Namespace: "proj"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The answer is a child of the context, with its provenance; the prompt
// held the whole chain, oldest first.
func TestProcess_StoresAnswerWithProvenance(t *testing.T) {
	ctx := context.Background()
	s, _ := store(t)
	p := newProvider(t, "writer")
	o := orchestrator.New(s, orchestrator.Options{})
	if err := o.Add(runner(t, "writer", p, nil), []string{"docs"}); err != nil {
		t.Fatal(err)
	}
	root := put(t, s, "We are building a parser.", nexus.ID{})
	mid := put(t, s, "It must accept JSON5.", root.ID)
	leaf := put(t, s, "Write the README section.", mid.ID)
	ans, err := o.Process(ctx, orchestrator.Request{ContextID: leaf.ID, Agent: "writer"})
	if err != nil {
		t.Fatal(err)
	}
	c := ans.Context
	if c.ParentID != leaf.ID || c.Namespace != "proj" || c.Type != nexus.TypeResult || c.AgentID != "writer" ||
		c.Content != "writer answers: Write the README section." {
		t.Fatalf("answer: %+v", c)
	}
	var meta struct {
		P agent.Provenance `json:"provenance"`
	}
	if err := json.Unmarshal(c.Metadata, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.P.Agent != "writer" || meta.P.FinalAgent != "writer" || meta.P.Model != "fake-model" || meta.P.TokensIn != 42 ||
		meta.P.TokensOut != 7 || meta.P.Attempts != 1 || meta.P.Latency <= 0 {
		t.Fatalf("provenance: %+v", meta.P)
	}
	req := p.lastRequest()
	i, j, k := strings.Index(req, "We are building"), strings.Index(req, "JSON5"), strings.Index(req, "README section")
	if i < 0 || !(i < j && j < k) {
		t.Fatalf("the prompt does not hold the chain oldest first: %s", req)
	}
	// Stored: the store returns it as a child, with the same provenance.
	kids, _ := s.Children(ctx, leaf.ID)
	if len(kids) != 1 || kids[0].ID != c.ID {
		t.Fatalf("children: %+v", kids)
	}
	for _, bad := range []orchestrator.Request{
		{ContextID: leaf.ID},
		{ContextID: leaf.ID, Agent: "nobody"},
		{ContextID: leaf.ID, Capability: "painting"},
		{ContextID: leaf.ID, Agent: "writer", Capability: "docs"},
		{Agent: "writer"},
		{ContextID: leaf.ID, Agent: "writer", Type: "poem"},
	} {
		if _, err := o.Process(ctx, bad); nexus.ErrorCode(err) != nexus.EInvalid && nexus.ErrorCode(err) != nexus.ENotFound {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// A capability goes to the agents having it in turn; pipelines chain the
// answers; a broadcast answers the same context once per agent.
func TestRoutingPipelineBroadcast(t *testing.T) {
	ctx := context.Background()
	s, _ := store(t)
	o := orchestrator.New(s, orchestrator.Options{})
	for _, id := range []string{"a", "b", "c"} {
		caps := []string{"review"}
		if id == "c" {
			caps = []string{"summarize"}
		}
		o.Add(runner(t, id, newProvider(t, id), nil), caps)
	}
	q := put(t, s, "Is this safe?", nexus.ID{})
	var by []string
	for range 4 {
		a, err := o.Process(ctx, orchestrator.Request{ContextID: q.ID, Capability: "review"})
		if err != nil {
			t.Fatal(err)
		}
		by = append(by, a.Context.AgentID)
	}
	if strings.Join(by, ",") != "a,b,a,b" {
		t.Fatalf("capability routing: %v", by)
	}
	steps, err := o.Pipeline(ctx, q.ID, []string{"a", "c"}, "")
	if err != nil || len(steps) != 2 || steps[0].Context.ParentID != q.ID || steps[1].Context.ParentID != steps[0].Context.ID ||
		steps[1].Context.AgentID != "c" || !strings.Contains(steps[1].Context.Content, "a answers") {
		t.Fatalf("pipeline: %v %+v", err, steps)
	}
	answers, errs := o.Broadcast(ctx, q.ID, []string{"a", "b", "c"}, nexus.TypeAnalysis)
	for i, a := range answers {
		if errs[i] != nil || a.Context.ParentID != q.ID || a.Context.Type != nexus.TypeAnalysis {
			t.Fatalf("broadcast %d: %v %+v", i, errs[i], a)
		}
	}
}

// A pipeline or broadcast naming an unknown agent asks none and stores
// nothing.
func TestPipelineBroadcast_UnknownAgent(t *testing.T) {
	ctx := context.Background()
	s, _ := store(t)
	o := orchestrator.New(s, orchestrator.Options{})
	p := newProvider(t, "a")
	o.Add(runner(t, "a", p, nil), nil)
	q := put(t, s, "Is this safe?", nexus.ID{})
	before := s.Len()
	if steps, err := o.Pipeline(ctx, q.ID, []string{"a", "ghost"}, ""); nexus.ErrorCode(err) != nexus.ENotFound || len(steps) != 0 {
		t.Errorf("pipeline with an unknown agent: %v, %d answers", err, len(steps))
	}
	answers, errs := o.Broadcast(ctx, q.ID, []string{"a", "ghost"}, "")
	for i := range errs {
		if answers[i] != nil || nexus.ErrorCode(errs[i]) != nexus.ENotFound || !strings.Contains(errs[i].Error(), "ghost") {
			t.Errorf("broadcast with an unknown agent, %d: %v %v", i, answers[i], errs[i])
		}
	}
	if p.calls.Load() != 0 || s.Len() != before {
		t.Errorf("%d calls, %d contexts stored", p.calls.Load(), s.Len()-before)
	}
}

// A call by capability skips an agent whose breaker is open and fails
// over to the next agent having it when the one asked cannot answer;
// the provenance shows the trail across them.
func TestProcess_CapabilityFailover(t *testing.T) {
	ctx := context.Background()
	s, _ := store(t)
	o := orchestrator.New(s, orchestrator.Options{})
	down, up := newProvider(t, "down"), newProvider(t, "up")
	down.down.Store(true)
	once := func(c *agent.Config) { c.MaxRetries, c.BreakerFailures, c.BreakerCooldown = -1, 1, time.Hour }
	o.Add(runner(t, "down", down, once), []string{"review"})
	o.Add(runner(t, "up", up, once), []string{"review"})
	q := put(t, s, "Is this safe?", nexus.ID{})
	for i := range 4 {
		a, err := o.Process(ctx, orchestrator.Request{ContextID: q.ID, Capability: "review"})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		p := a.Provenance
		if a.Context.AgentID != "up" || p.FinalAgent != "up" {
			t.Fatalf("call %d answered by %s: %+v", i, a.Context.AgentID, p)
		}
		var trail []string
		for _, x := range p.Trail {
			trail = append(trail, x.Agent+":"+string(x.Class))
		}
		// down's turns are calls 0 and 2; by call 2 its breaker is open.
		want := map[int]string{0: "down:overload up:", 2: "up:"}[i]
		if i == 1 || i == 3 {
			want = "up:"
		}
		if got := strings.Join(trail, " "); got != want {
			t.Errorf("call %d: trail %q, want %q", i, got, want)
		}
		if i == 0 && (p.Agent != "down" || p.Attempts != 2 || p.Trail[0].Requests != 1) {
			t.Errorf("call 0 provenance: %+v", p)
		}
	}
	if n := down.calls.Load(); n != 1 {
		t.Errorf("the agent down got %d requests, want 1 (then its breaker opened)", n)
	}
}

// A pool fails over to its backup when the primary is down; the answer
// says who answered. Once the primary's breaker is open, the backup gets
// the calls at once.
func TestFailoverToBackup(t *testing.T) {
	ctx := context.Background()
	s, _ := store(t)
	primary, backup := newProvider(t, "primary"), newProvider(t, "backup")
	fast := func(c *agent.Config) {
		c.RetryBase, c.RetryMax, c.BreakerFailures, c.BreakerCooldown = 5*time.Millisecond, 20*time.Millisecond, 4, time.Hour
	}
	pool, err := agent.NewPool("team", nil,
		agent.Member{Agent: runner(t, "primary", primary, fast), Weight: 1},
		agent.Member{Agent: runner(t, "backup", backup, fast), Backup: true})
	if err != nil {
		t.Fatal(err)
	}
	o := orchestrator.New(s, orchestrator.Options{})
	o.Add(pool, nil)
	q := put(t, s, "Summarize the incident.", nexus.ID{})
	primary.down.Store(true)
	a, err := o.Process(ctx, orchestrator.Request{ContextID: q.ID, Agent: "team"})
	if err != nil {
		t.Fatal(err)
	}
	p := a.Provenance
	if a.Context.AgentID != "backup" || p.Agent != "team" || p.FinalAgent != "backup" || p.Attempts != 5 || len(p.Trail) != 2 || p.Trail[0].Class != agent.ClassOverload {
		t.Fatalf("failover answer: %+v %+v", a.Context, p)
	}
	// The primary failed 4 attempts in a row: its breaker is open.
	before := primary.calls.Load()
	a, err = o.Process(ctx, orchestrator.Request{ContextID: q.ID, Agent: "team"})
	if err != nil || a.Context.AgentID != "backup" || primary.calls.Load() != before {
		t.Fatalf("with the breaker open: %v %+v, primary called %d more times", err, a, primary.calls.Load()-before)
	}
}

// Agent state is checkpointed as agent_state contexts and restored into
// a new agent after a restart.
func TestCheckpointAndRestore(t *testing.T) {
	ctx := context.Background()
	s, dir := store(t)
	p := newProvider(t, "w")
	o := orchestrator.New(s, orchestrator.Options{CheckpointEvery: -1})
	o.Add(runner(t, "w", p, nil), nil)
	q := put(t, s, "count me", nexus.ID{})
	for range 3 {
		if _, err := o.Process(ctx, orchestrator.Request{ContextID: q.ID, Agent: "w"}); err != nil {
			t.Fatal(err)
		}
	}
	page, _ := s.List(ctx, nexus.Filter{Type: nexus.TypeAgentState, AgentID: "w"})
	if len(page.Contexts) != 3 || page.Contexts[0].Namespace != orchestrator.StateNamespace {
		t.Fatalf("%d checkpoints", len(page.Contexts))
	}
	s.Close()
	s2, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	fresh := runner(t, "w", p, nil)
	o2 := orchestrator.New(s2, orchestrator.Options{})
	o2.Add(fresh, nil)
	if n, err := o2.RestoreStates(ctx); err != nil || n != 1 {
		t.Fatalf("restored %d: %v", n, err)
	}
	var st struct {
		Answers int `json:"answers"`
	}
	b, _ := fresh.State()
	if json.Unmarshal(b, &st); st.Answers != 3 {
		t.Fatalf("restored state: %s", b)
	}
	// Unchanged state is not checkpointed again.
	if err := o2.Checkpoint(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if page, _ := s2.List(ctx, nexus.Filter{Type: nexus.TypeAgentState, AgentID: "w"}); len(page.Contexts) != 3 {
		t.Fatalf("%d checkpoints after an unchanged one", len(page.Contexts))
	}
}

// After an answer changes an agent's state, a checkpoint is written
// within CheckpointEvery with no further call; the answers meanwhile share
// it; Close writes the pending one at once. On the bubble's clock every
// bound is exact.
func TestOrchestrator_checkpointSoon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s, _ := store(t)
		o := orchestrator.New(s, orchestrator.Options{CheckpointEvery: 2 * time.Second})
		o.Add(runner(t, "w", newPipeProvider(t, "w"), nil), nil)
		q := put(t, s, "count me", nexus.ID{})
		answer := func() {
			t.Helper()
			if _, err := o.Process(ctx, orchestrator.Request{ContextID: q.ID, Agent: "w"}); err != nil {
				t.Fatal(err)
			}
		}
		// saved lists the answers each checkpoint holds, oldest first.
		saved := func() []int {
			t.Helper()
			synctest.Wait()
			page, err := s.List(ctx, nexus.Filter{Type: nexus.TypeAgentState, AgentID: "w"})
			if err != nil {
				t.Fatal(err)
			}
			var out []int
			for _, c := range slices.Backward(page.Contexts) {
				var st struct {
					Answers int `json:"answers"`
				}
				if err := json.Unmarshal([]byte(c.Content), &st); err != nil {
					t.Fatal(err)
				}
				out = append(out, st.Answers)
			}
			return out
		}
		check := func(when string, want ...int) {
			t.Helper()
			if got := saved(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: checkpoints of %v answers, want %v", when, got, want)
			}
		}

		answer()
		time.Sleep(2*time.Second - time.Nanosecond)
		check("just before the bound")
		time.Sleep(time.Nanosecond)
		check("at the bound", 1)

		// Ten answers at once: one checkpoint.
		for range 10 {
			answer()
		}
		time.Sleep(2 * time.Second)
		check("after a burst", 1, 11)
		time.Sleep(time.Minute)
		check("a minute later", 1, 11)

		// An answer every 700ms: at 0, .7 and 1.4s (written at 2s), 2.1,
		// 2.8 and 3.5s (at 4.1s), 4.2 and 4.9s (pending at 5s).
		for range 8 {
			answer()
			time.Sleep(700 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		check("answers every 700ms", 1, 11, 14, 17)
		if err := o.Close(ctx); err != nil {
			t.Fatal(err)
		}
		check("closed", 1, 11, 14, 17, 19)
		time.Sleep(time.Minute)
		check("a minute after Close", 1, 11, 14, 17, 19)
	})
}

// failingStore is a real store whose next writes of agent_state fail.
type failingStore struct {
	*gitstore.Store
	fail atomic.Int32 // agent_state writes still to refuse
	seen atomic.Int32 // agent_state writes asked for
}

func (f *failingStore) Put(ctx context.Context, d nexus.Draft) (*nexus.Context, error) {
	if d.Type == nexus.TypeAgentState {
		f.seen.Add(1)
		if f.fail.Add(-1) >= 0 {
			return nil, nexus.Errorf(nexus.EInsufficientStorage, "disk full")
		}
	}
	return f.Store.Put(ctx, d)
}

// A checkpoint that failed is tried again CheckpointEvery later, with no
// further answer.
func TestOrchestrator_checkpointRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		real, _ := store(t)
		s := &failingStore{Store: real}
		s.fail.Store(2)
		o := orchestrator.New(s, orchestrator.Options{CheckpointEvery: time.Second})
		o.Add(runner(t, "w", newPipeProvider(t, "w"), nil), nil)
		q := put(t, s, "count me", nexus.ID{})
		if _, err := o.Process(ctx, orchestrator.Request{ContextID: q.ID, Agent: "w"}); err != nil {
			t.Fatal(err)
		}
		for i, want := range []struct{ tried, saved int }{{1, 0}, {2, 0}, {3, 1}, {3, 1}} {
			time.Sleep(time.Second)
			synctest.Wait()
			page, err := s.List(ctx, nexus.Filter{Type: nexus.TypeAgentState, AgentID: "w"})
			if err != nil {
				t.Fatal(err)
			}
			if int(s.seen.Load()) != want.tried || len(page.Contexts) != want.saved {
				t.Errorf("after %ds: %d checkpoints tried, %d written; want %d, %d", i+1, s.seen.Load(), len(page.Contexts), want.tried, want.saved)
			}
		}
	})
}

// Suspend drops the scheduled checkpoint and stops the retries of a
// failing one; while suspended, answers schedule none; after Resume they
// do again.
func TestOrchestrator_suspend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		real, _ := store(t)
		s := &failingStore{Store: real}
		s.fail.Store(1)
		o := orchestrator.New(s, orchestrator.Options{CheckpointEvery: time.Second})
		o.Add(runner(t, "w", newPipeProvider(t, "w"), nil), nil)
		q := put(t, s, "count me", nexus.ID{})
		answer := func() {
			t.Helper()
			if _, err := o.Process(ctx, orchestrator.Request{ContextID: q.ID, Agent: "w"}); err != nil {
				t.Fatal(err)
			}
		}
		check := func(when string, tried, saved int) {
			t.Helper()
			synctest.Wait()
			page, err := s.List(ctx, nexus.Filter{Type: nexus.TypeAgentState, AgentID: "w"})
			if err != nil {
				t.Fatal(err)
			}
			if int(s.seen.Load()) != tried || len(page.Contexts) != saved {
				t.Errorf("%s: %d checkpoints tried, %d written; want %d, %d", when, s.seen.Load(), len(page.Contexts), tried, saved)
			}
		}
		answer()
		time.Sleep(time.Second)
		check("the first one failed", 1, 0)
		o.Suspend() // its retry is dropped
		answer()    // schedules nothing
		time.Sleep(time.Minute)
		check("a minute suspended", 1, 0)
		o.Resume()
		answer()
		time.Sleep(time.Second)
		check("resumed", 2, 1)
	})
}

// BenchmarkOverhead is the orchestrator's cost per call against the fake
// provider: Process (chain read, agent call, answer stored) minus the
// agent call alone, in the same run.
func BenchmarkOverhead(b *testing.B) {
	s, _ := store(b)
	p := newProvider(b, "w")
	r := runner(b, "w", p, nil)
	o := orchestrator.New(s, orchestrator.Options{})
	o.Add(r, nil)
	q := put(b, s, "bench", nexus.ID{})
	chain, _ := s.Chain(context.Background(), q.ID, 32)
	var direct, write, full []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := r.Process(context.Background(), chain); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeResult, Content: "p answers: bench", ParentID: q.ID, Namespace: "proj", AgentID: "w"}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := o.Process(context.Background(), orchestrator.Request{ContextID: q.ID, Agent: "w"}); err != nil {
			b.Fatal(err)
		}
		direct, write, full = append(direct, t1.Sub(t0)), append(write, t2.Sub(t1)), append(full, time.Since(t2))
	}
	o.Close(context.Background())
	// The medians of each part; the durable write of the answer is what
	// every POST /v1/contexts pays too.
	b.ReportMetric(float64(median(direct))/1e3, "agent-µs")
	b.ReportMetric(float64(median(write))/1e3, "answer-write-µs")
	b.ReportMetric(float64(median(full))/1e3, "process-µs")
	b.ReportMetric(float64(median(full)-median(direct)-median(write))/1e3, "overhead-µs")
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

// BenchmarkFailover is the time from a call reaching a primary that is
// down (503 on every request) to the answer of its backup stored, with
// the agents' default retry settings (3 retries, full jitter from 500ms)
// and a fresh breaker each time; and, once the primary's breaker is open,
// the same call. Run it with -benchtime 10x.
func BenchmarkFailover(b *testing.B) {
	s, _ := store(b)
	q := put(b, s, "Summarize the incident.", nexus.ID{})
	var first, open []time.Duration
	for i := 0; b.Loop(); i++ {
		primary, backup := newProvider(b, "primary"), newProvider(b, "backup")
		primary.down.Store(true)
		pool, err := agent.NewPool(fmt.Sprint("team", i), nil,
			agent.Member{Agent: runner(b, fmt.Sprint("primary", i), primary, func(c *agent.Config) { c.BreakerFailures = 4 }), Weight: 1},
			agent.Member{Agent: runner(b, fmt.Sprint("backup", i), backup, nil), Backup: true})
		if err != nil {
			b.Fatal(err)
		}
		o := orchestrator.New(s, orchestrator.Options{})
		o.Add(pool, nil)
		t0 := time.Now()
		a, err := o.Process(context.Background(), orchestrator.Request{ContextID: q.ID, Agent: pool.ID()})
		if err != nil || a.Provenance.FinalAgent != fmt.Sprint("backup", i) {
			b.Fatalf("%v %+v", err, a)
		}
		t1 := time.Now()
		if _, err := o.Process(context.Background(), orchestrator.Request{ContextID: q.ID, Agent: pool.ID()}); err != nil {
			b.Fatal(err)
		}
		first, open = append(first, t1.Sub(t0)), append(open, time.Since(t1))
		o.Close(context.Background())
	}
	b.ReportMetric(float64(median(first))/1e6, "first-failover-ms")
	b.ReportMetric(float64(median(open))/1e6, "breaker-open-ms")
}

// Generate answers a prompt alone and stores the answer as a root, or
// under the parent given (in its namespace), with its provenance; by
// capability it fails over like Process. Bad requests ask no agent.
func TestGenerate(t *testing.T) {
	ctx := context.Background()
	s, _ := store(t)
	o := orchestrator.New(s, orchestrator.Options{})
	down, up := newProvider(t, "down"), newProvider(t, "up")
	down.down.Store(true)
	once := func(c *agent.Config) { c.MaxRetries = -1 }
	o.Add(runner(t, "down", down, once), []string{"write"})
	o.Add(runner(t, "up", up, once), []string{"write"})

	a, err := o.Generate(ctx, orchestrator.GenerateRequest{Agent: "up", Prompt: "Name the parser.", Namespace: "names"})
	if err != nil {
		t.Fatal(err)
	}
	c := a.Context
	if !c.ParentID.IsZero() || c.Namespace != "names" || c.Type != nexus.TypeResult || c.AgentID != "up" || c.Content != "up answers: Name the parser." ||
		!strings.Contains(string(c.Metadata), `"final_agent":"up"`) || a.Provenance.TokensIn != 42 {
		t.Errorf("root answer: %+v %+v", c, a.Provenance)
	}
	parent := put(t, s, "The parser.", nexus.ID{})
	a, err = o.Generate(ctx, orchestrator.GenerateRequest{Capability: "write", Prompt: "Describe it.", Type: nexus.TypeDocument, ParentID: parent.ID})
	if err != nil {
		t.Fatal(err)
	}
	if c := a.Context; c.ParentID != parent.ID || c.Namespace != "proj" || c.Type != nexus.TypeDocument || c.AgentID != "up" ||
		len(a.Provenance.Trail) != 2 || a.Provenance.Trail[0].Agent != "down" {
		t.Errorf("child answer by capability: %+v %+v", c, a.Provenance)
	}
	calls, n := down.calls.Load()+up.calls.Load(), s.Len()
	ghost, _ := nexus.ParseID("01KB2W3G6T0Q5A9QYQ7M3N8C2D")
	for _, c := range []struct {
		req  orchestrator.GenerateRequest
		code nexus.Code
	}{
		{orchestrator.GenerateRequest{Agent: "up", Prompt: "  "}, nexus.EInvalid},
		{orchestrator.GenerateRequest{Agent: "up", Prompt: "x", Type: "poem"}, nexus.EInvalid},
		{orchestrator.GenerateRequest{Agent: "up", Prompt: "x", Namespace: "Bad NS"}, nexus.EInvalid},
		{orchestrator.GenerateRequest{Prompt: "x"}, nexus.EInvalid},
		{orchestrator.GenerateRequest{Agent: "ghost", Prompt: "x"}, nexus.ENotFound},
		{orchestrator.GenerateRequest{Agent: "up", Prompt: "x", ParentID: ghost}, nexus.ENotFound},
	} {
		if _, err := o.Generate(ctx, c.req); nexus.ErrorCode(err) != c.code {
			t.Errorf("%+v: %v, want %s", c.req, err, c.code)
		}
	}
	if got := down.calls.Load() + up.calls.Load(); got != calls || s.Len() != n {
		t.Errorf("bad requests made %d calls and stored %d contexts", got-calls, s.Len()-n)
	}
}
