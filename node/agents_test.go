package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/tasks"
)

// llmFake is an OpenAI-compatible provider on loopback: POST
// /v1/chat/completions and GET /v1/models in the real wire format, a
// Bearer key checked, and a switch that makes it answer an error status
// (the heartbeat's models endpoint included).
type llmFake struct {
	srv  *httptest.Server
	name string
	key  string

	mu      sync.Mutex
	failing int // the status it answers with; 0: it works
	calls   int
	prompts []string
}

func newLLMFake(t *testing.T, name, key string) *llmFake {
	f := &llmFake{name: name, key: key}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *llmFake) baseURL() string { return f.srv.URL + "/v1" }

func (f *llmFake) fail(status int) {
	f.mu.Lock()
	f.failing = status
	f.mu.Unlock()
}

// count is the number of completion requests received.
func (f *llmFake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *llmFake) lastPrompt() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.prompts) == 0 {
		return ""
	}
	return f.prompts[len(f.prompts)-1]
}

func openAIError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
}

func (f *llmFake) serve(w http.ResponseWriter, r *http.Request) {
	if f.key != "" && r.Header.Get("Authorization") != "Bearer "+f.key {
		openAIError(w, 401, "invalid_request_error", "Incorrect API key provided.")
		return
	}
	f.mu.Lock()
	failing := f.failing
	f.mu.Unlock()
	switch {
	case r.Method == "GET" && r.URL.Path == "/v1/models":
		if failing != 0 {
			openAIError(w, failing, "server_error", "The server is overloaded or not ready yet.")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"fake-model","object":"model","created":1700000000,"owned_by":"nexus-tests"}]}`)
	case r.Method == "POST" && r.URL.Path == "/v1/chat/completions":
		f.complete(w, r, failing)
	default:
		openAIError(w, 404, "invalid_request_error", "Unknown request URL: "+r.Method+" "+r.URL.Path)
	}
}

func (f *llmFake) complete(w http.ResponseWriter, r *http.Request, failing int) {
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model == "" || len(req.Messages) == 0 {
		openAIError(w, 400, "invalid_request_error", "'messages' and 'model' are required.")
		return
	}
	f.mu.Lock()
	f.calls++
	f.prompts = append(f.prompts, req.Messages[len(req.Messages)-1].Content)
	f.mu.Unlock()
	if failing != 0 {
		openAIError(w, failing, "server_error", "The server is overloaded or not ready yet.")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-" + f.name, "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model + "-0613",
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": "answer from " + f.name}}},
		"usage": map[string]any{"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25},
	})
}

// withFile gives cfg the configuration file text.
func withFile(t *testing.T, cfg *node.Config, text string) {
	t.Helper()
	f, err := config.Parse(filepath.Join(t.TempDir(), "nexus.yaml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	cfg.File = f
}

// callAPI sends a JSON request to the node and decodes the answer into
// out (if not nil); it returns the status.
func callAPI(t *testing.T, n *nodetest.Node, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, n.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// agentsHealth is the agents component of GET /health, its details
// decoded into out.
func agentsHealth(t *testing.T, n *nodetest.Node, out any) nexus.ComponentHealth {
	t.Helper()
	resp, err := n.HTTP.Get(n.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h nexus.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	c := h.Components[nexus.ComponentAgents]
	b, _ := json.Marshal(c.Details)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return c
}

// agentsStep runs a cascade now and returns its step for the agents.
func agentsStep(t *testing.T, n *nodetest.Node) recovery.Step {
	t.Helper()
	res, err := n.Recover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Steps {
		if s.Component == nexus.ComponentAgents {
			return s
		}
	}
	t.Fatalf("no agents step in %+v", res.Steps)
	return recovery.Step{}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// byAgent is the part of the agents component's details about the node's
// agents and processes.
type byAgent struct {
	Unhealthy int `json:"unhealthy"`
	ByAgent   map[string]struct {
		Status  string `json:"status"`
		Breaker string `json:"breaker"`
	} `json:"by_agent"`
	Processes []struct {
		Name                string `json:"name"`
		State               string `json:"state"`
		PID                 int    `json:"pid"`
		Restarts            int    `json:"restarts"`
		RestartedByRecovery bool   `json:"restarted_by_recovery"`
	} `json:"processes"`
	External   map[string]int `json:"external_agents"`
	Tasks      map[string]int `json:"tasks"`
	Recoveries struct {
		Attempts int `json:"attempts"`
		Last     struct {
			Status string `json:"status"`
			Reason string `json:"reason"`
		} `json:"last"`
	} `json:"recoveries"`
}

// running is the pids of the running processes, by name.
func (d byAgent) running() map[string]int {
	out := map[string]int{}
	for _, p := range d.Processes {
		if p.State == "running" {
			out[p.Name] = p.PID
		}
	}
	return out
}

// eventWait bounds every wait for an event of the node: long enough for a
// loaded machine, reached only when the event never comes.
const eventWait = time.Minute

// Two OpenAI-compatible agents in a pool, the second a backup: the pool
// answers through the node's API; when the primary answers 503 the
// backup does, provenance says so, and /health, /metrics, the event
// stream and the recovery cascade follow the primary down and back up.
// At the next start (after a clean stop, which writes the last
// checkpoints) the agents' states come back from their checkpoints. The
// key is never logged.
func TestNode_AgentPoolFailover(t *testing.T) {
	const key = "test-key-5f2c9a"
	t.Setenv("NEXUS_TEST_PRIMARY_KEY", key)
	primary := newLLMFake(t, "primary", key)
	backup := newLLMFake(t, "backup", "")
	cfg := nodetest.Config(t)
	cfg.RecoverInterval = 200 * time.Millisecond
	logs := nodetest.CaptureLogs(t, &cfg)
	withFile(t, &cfg, fmt.Sprintf(`
agents:
  - id: primary
    provider: openai
    base_url: %s
    model: fake-model
    api_key_env: NEXUS_TEST_PRIMARY_KEY
    capabilities: [summarize]
    retries: {max: 1, base: 10ms, cap: 50ms}
    breaker: {failures: 2, open_timeout: 1s}
    heartbeat: {interval: 300ms, failure_threshold: 2}
  - id: backup
    provider: openai
    base_url: %s
    model: fake-model
    retries: {max: 0}
    heartbeat: {interval: 0}
pools:
  - name: writers
    members: [{agent: primary}]
    backups: [backup]
`, primary.baseURL(), backup.baseURL()))
	n := nodetest.Open(t, cfg)
	ctx := context.Background()
	sub, err := n.Client.Subscribe(ctx, nexus.EventFilter{AgentID: "primary"}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	q, err := n.Client.Put(ctx, nexus.Draft{Type: nexus.TypeInstruction, Content: "Summarize the release notes of 2.4."})
	if err != nil {
		t.Fatal(err)
	}
	var ans orchestrator.Answer
	if code := callAPI(t, n, "POST", "/v1/agents/writers/process", map[string]any{"context_id": q.ID}, &ans); code != 201 {
		t.Fatalf("process: %d", code)
	}
	pv := ans.Provenance
	if pv.Agent != "writers" || pv.FinalAgent != "primary" || ans.Context.Content != "answer from primary" ||
		ans.Context.ParentID != q.ID || ans.Context.AgentID != "primary" || pv.TokensIn != 21 || pv.Model != "fake-model-0613" {
		t.Fatalf("answer: %+v", ans)
	}
	if !strings.Contains(primary.lastPrompt(), "Summarize the release notes of 2.4.") {
		t.Fatalf("the provider got the prompt %q", primary.lastPrompt())
	}

	primary.fail(503)
	ans = orchestrator.Answer{}
	if code := callAPI(t, n, "POST", "/v1/agents/writers/process", map[string]any{"context_id": q.ID}, &ans); code != 201 {
		t.Fatalf("process with the primary down: %d", code)
	}
	pv = ans.Provenance
	if pv.FinalAgent != "backup" || ans.Context.Content != "answer from backup" || len(pv.Trail) != 2 ||
		pv.Trail[0].Agent != "primary" || pv.Trail[0].Class != agent.ClassOverload || pv.Trail[0].Requests != 2 || pv.Attempts != 3 {
		t.Fatalf("failover answer: %+v", ans)
	}
	stored, err := n.Client.Get(ctx, ans.Context.ID)
	if err != nil || !strings.Contains(string(stored.Metadata), `"final_agent":"backup"`) {
		t.Fatalf("stored answer: %v %s", err, stored.Metadata)
	}

	// Two failed attempts open the primary's breaker: the node says so.
	down := nodetest.AwaitEvent(t, sub, eventWait, "primary unhealthy", func(typ string, d map[string]any) bool {
		return typ == "agent" && d["status"] == "unhealthy"
	})
	if detail, _ := down["detail"].(map[string]any); down["source"] != "node" || detail["breaker"] != "open" || !strings.Contains(fmt.Sprint(down["reason"]), "503") {
		t.Fatalf("unhealthy event: %v", down)
	}
	// While the provider fails, the breaker is open but for the moments
	// of its half-open probes (each open_timeout): the waits below look
	// for it open.
	var d byAgent
	nodetest.Wait(t, eventWait, "the cascade restores the unhealthy primary", func() bool {
		d = byAgent{}
		h := agentsHealth(t, n, &d)
		return h.Status == nexus.StatusDegraded && d.Recoveries.Last.Status == "recovered" && d.ByAgent["primary"].Breaker == "open"
	})
	if d.Unhealthy != 1 || d.ByAgent["backup"].Status != "healthy" || d.Recoveries.Attempts != 1 ||
		!strings.Contains(d.Recoveries.Last.Reason, "agent primary, unhealthy (breaker open): state restored from the agent_state checkpoint written when it failed") ||
		!strings.Contains(d.Recoveries.Last.Reason, "the calls of pool writers fail over to its other members meanwhile") {
		t.Fatalf("agents component: %+v", d)
	}
	var m string
	nodetest.Wait(t, eventWait, "the metrics with the primary's breaker open", func() bool {
		m = metricsText(t, n)
		return strings.Contains(m, `nexus_agent_breaker_state{agent="primary",state="open"} 1`)
	})
	for _, want := range []string{
		`nexus_agent_status{agent="primary",status="unhealthy"} 1`, `nexus_agent_status{agent="backup",status="healthy"} 1`,
		`nexus_agent_failures_total{agent="primary",class="overload"} `,
		`nexus_agent_calls_total{agent="backup"} 1`, `nexus_component_status{component="agents",status="degraded"} 1`,
		`nexus_recovery_total{component="agents",result="success"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "agent"))
		}
	}

	// The provider comes back: the half-open heartbeat closes the breaker.
	primary.fail(0)
	up := nodetest.AwaitEvent(t, sub, eventWait, "primary healthy again", func(typ string, d map[string]any) bool {
		return typ == "agent" && d["status"] == "healthy"
	})
	if up["from"] != "unhealthy" {
		t.Fatalf("recovery event: %v", up)
	}
	if code := callAPI(t, n, "POST", "/v1/agents/process", map[string]any{"context_id": q.ID, "capability": "summarize"}, nil); code != 201 {
		t.Fatalf("process by capability: %d", code)
	}
	if h := agentsHealth(t, n, &d); h.Status != nexus.StatusHealthy {
		t.Fatalf("agents after the recovery: %+v", h)
	}

	// A clean stop checkpoints the states; the next start puts them back.
	before := len(logs.String())
	n.Restart(nil)
	after := logs.String()[before:]
	for _, id := range []string{"writers", "primary"} {
		if !strings.Contains(after, `msg="agent state restored" agent=`+id+" ") {
			t.Errorf("the state of %s was not restored at start:\n%s", id, after)
		}
	}
	if all := logs.String(); strings.Contains(all, key) || strings.Contains(all, "not restored") {
		t.Fatalf("the key, or a failed restore, is in the node's log:\n%s", all)
	}
}

// A supervised process killed with SIGKILL is restarted by its policy; one
// given up (max_restarts 0) is restarted once by the recovery cascade,
// and reported when it is given up again, and only then. Restart counts
// show in /health, /metrics and the event stream; the processes stop
// with the node.
func TestNode_SupervisedProcesses(t *testing.T) {
	cfg := nodetest.Config(t)
	cfg.RecoverInterval = 200 * time.Millisecond
	withFile(t, &cfg, `
supervisor:
  processes:
    - name: sleeper
      command: sleep
      args: ["3600"]
      restart: {initial_backoff: 10ms}
      stop_timeout: 2s
    - name: fragile
      command: sleep
      args: ["3600"]
      restart: {max_restarts: 0}
      stop_timeout: 2s
`)
	n := nodetest.Open(t, cfg)
	sub, err := n.Client.Subscribe(context.Background(), nexus.EventFilter{AgentID: "sleeper"}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var first map[string]int
	nodetest.Wait(t, eventWait, "both processes running", func() bool {
		var d byAgent
		agentsHealth(t, n, &d)
		first = d.running()
		return len(first) == 2
	})
	b, err := os.ReadFile(filepath.Join(cfg.Dir, "run", "sleeper.pid"))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(first["sleeper"]) {
		t.Fatalf("pid file %q, %v; the process runs as %d", b, err, first["sleeper"])
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "logs", "sleeper.log")); err != nil {
		t.Fatalf("log file: %v", err)
	}

	syscall.Kill(first["sleeper"], syscall.SIGKILL)
	ev := nodetest.AwaitEvent(t, sub, eventWait, "sleeper restarted", func(typ string, d map[string]any) bool {
		return typ == "process" && d["state"] == "running" && d["restarts"] == 1.0
	})
	if ev["name"] != "sleeper" || ev["pid"] == float64(first["sleeper"]) {
		t.Fatalf("restart event: %v", ev)
	}
	var d byAgent
	h := agentsHealth(t, n, &d)
	if h.Status != nexus.StatusHealthy || len(d.Processes) != 2 || d.Processes[1].Name != "sleeper" || d.Processes[1].Restarts != 1 {
		t.Fatalf("agents component after the restart: %+v %+v", h, d)
	}
	if m := metricsText(t, n); !strings.Contains(m, `nexus_supervised_process_restarts_total{process="sleeper"} 1`) ||
		!strings.Contains(m, `nexus_supervised_process_state{process="sleeper",state="running"} 1`) {
		t.Fatalf("metrics:\n%s", grepLines(m, "supervised"))
	}

	// fragile is given up at its first exit; the cascade restarts it once.
	// Counts are from here: on a loaded machine the cascade may have met
	// the sleeper between its kill and its restart.
	base := d.Recoveries.Attempts
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the agents component's details at the end: %+v", d)
		}
	})
	syscall.Kill(first["fragile"], syscall.SIGKILL)
	var again int
	nodetest.Wait(t, eventWait, "fragile restarted by the cascade", func() bool {
		d = byAgent{}
		agentsHealth(t, n, &d)
		again = d.running()["fragile"]
		return d.Recoveries.Attempts == base+1 && again != 0 && again != first["fragile"]
	})
	if d.Processes[0].Name != "fragile" || !d.Processes[0].RestartedByRecovery || d.Processes[0].Restarts != 1 ||
		d.Recoveries.Last.Status != "recovered" ||
		!strings.Contains(d.Recoveries.Last.Reason, "process fragile, given up (0 restarts within 1m0s, the most allowed; last: killed by SIGKILL), restarted (once per node run)") {
		t.Fatalf("after the cascade's restart: %+v", d)
	}
	syscall.Kill(again, syscall.SIGKILL)
	nodetest.Wait(t, eventWait, "the second give-up reported", func() bool {
		h = agentsHealth(t, n, &d)
		return d.Recoveries.Last.Status == "failed"
	})
	if h.Status != nexus.StatusDegraded || !strings.Contains(h.Error, "fragile was given up") ||
		!strings.Contains(d.Recoveries.Last.Reason, "not restarted: already restarted once by the recovery; see "+filepath.Join(cfg.Dir, "logs", "fragile.log")) {
		t.Fatalf("after the second give-up: %+v %+v", h, d)
	}
	// Two more cascades: the give-up was reported, it is not again.
	for range 2 {
		if s := agentsStep(t, n); s.Status != recovery.OK {
			t.Fatalf("a cascade after the report: %+v, want %s", s, recovery.OK)
		}
	}
	if agentsHealth(t, n, &d); d.Recoveries.Attempts != base+2 {
		t.Fatalf("%d recoveries, want %d (the restart, then the report)", d.Recoveries.Attempts, base+2)
	}

	n.Close()
	if pid := int(ev["pid"].(float64)); syscall.Kill(pid, 0) == nil {
		t.Errorf("process %d survived the node", pid)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "run", "sleeper.pid")); !os.IsNotExist(err) {
		t.Errorf("pid file left after the node closed: %v", err)
	}
}

// An external agent registers, claims a task and stops heartbeating: its
// lease lapses, the task goes back to the queue, another agent claims and
// completes it, and the first one's late answer is refused: one result
// context. Leases come from the server section of the file. Nothing waits
// on a clock: the test waits for the lapse's events, and the second agent
// registers only then, so no heartbeat has to arrive in time.
func TestNode_ExternalAgentLeaseLapse(t *testing.T) {
	// The lease only has to outlast two consecutive requests of one agent.
	const agentLease, taskLease = 3 * time.Second, 30 * time.Second
	cfg := nodetest.Config(t)
	withFile(t, &cfg, fmt.Sprintf(`
server:
  agent_lease: %s
  task_lease: %s
`, agentLease, taskLease))
	n := nodetest.Open(t, cfg)
	ctx := context.Background()
	sub, err := n.Client.Subscribe(ctx, nexus.EventFilter{}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if h := agentsHealth(t, n, &byAgent{}); h.Status != nexus.StatusDisabled {
		t.Fatalf("agents before any registration: %+v", h)
	}
	register := func(id string) {
		var a tasks.Agent
		if code := callAPI(t, n, "POST", "/v1/agents", map[string]any{"id": id, "capabilities": []string{"review"}}, &a); code != 201 {
			t.Fatalf("register %s: %d", id, code)
		}
		if got := a.LeaseExpires.Sub(a.LastHeartbeat); got != agentLease {
			t.Fatalf("register %s: a lease of %v, want the file's agent_lease %v", id, got, agentLease)
		}
	}
	var task tasks.Task
	if code := callAPI(t, n, "POST", "/v1/tasks", map[string]any{"content": "Review the parser change.", "capability": "review", "namespace": "team-a"}, &task); code != 201 {
		t.Fatalf("create task: %d", code)
	}
	register("assistant-a")
	var claimA tasks.Task
	asked := time.Now()
	if code := callAPI(t, n, "POST", "/v1/tasks/claim", map[string]any{"agent_id": "assistant-a"}, &claimA); code != 200 || claimA.ID != task.ID {
		t.Fatalf("claim by a: %d %+v", code, claimA)
	}
	answered := time.Now()
	// The claim's lease starts once the claim is journaled and given out,
	// within the request: task_lease after a moment inside it.
	if ends := claimA.LeaseExpires; ends.Before(asked.Add(taskLease)) || ends.After(answered.Add(taskLease)) {
		t.Fatalf("the claim's lease ends %v, want the file's task_lease %v after a moment between %v and %v", ends, taskLease, asked, answered)
	}
	var a tasks.Agent // claiming is a sign of life: it renews a's lease
	if code := callAPI(t, n, "GET", "/v1/agents/assistant-a", nil, &a); code != 200 || a.LastHeartbeat.Before(asked) || a.LastHeartbeat.After(answered) ||
		a.LeaseExpires.Sub(a.LastHeartbeat) != agentLease {
		t.Fatalf("a after its claim: %d %+v, want its last heartbeat within the claim and a lease of %v", code, a, agentLease)
	}

	// a goes silent.
	lost := nodetest.AwaitEvent(t, sub, eventWait, "assistant-a lost", func(typ string, d map[string]any) bool {
		return typ == "agent" && d["agent"] == "assistant-a" && d["status"] == tasks.Lost
	})
	if lost["source"] != "external" || !strings.Contains(fmt.Sprint(lost["reason"]), "no heartbeat") {
		t.Fatalf("lost event: %v", lost)
	}
	requeued := nodetest.AwaitEvent(t, sub, eventWait, "task queued again", func(typ string, d map[string]any) bool {
		return typ == "task" && d["task"] == task.ID.String() && d["status"] == tasks.Queued
	})
	if requeued["agent"] != "assistant-a" || requeued["attempts"] != 1.0 || requeued["namespace"] != "team-a" {
		t.Fatalf("requeue event: %v", requeued)
	}
	register("assistant-b")
	var claimB tasks.Task
	if code := callAPI(t, n, "POST", "/v1/tasks/claim", map[string]any{"agent_id": "assistant-b"}, &claimB); code != 200 || claimB.ID != task.ID || claimB.Attempt != 2 {
		t.Fatalf("claim by b: %d %+v", code, claimB)
	}
	late := func() int {
		return callAPI(t, n, "POST", "/v1/tasks/"+task.ID.String()+"/complete",
			map[string]any{"agent_id": "assistant-a", "claim": claimA.Claim, "content": "late answer"}, nil)
	}
	if code := late(); code != 409 {
		t.Fatalf("completion by a under its lapsed claim: %d, want 409", code)
	}
	var done struct {
		Task   tasks.Task     `json:"task"`
		Result *nexus.Context `json:"result"`
	}
	if code := callAPI(t, n, "POST", "/v1/tasks/"+task.ID.String()+"/complete",
		map[string]any{"agent_id": "assistant-b", "claim": claimB.Claim, "content": "LGTM after two fixes."}, &done); code != 200 || done.Task.Status != tasks.Done {
		t.Fatalf("complete by b: %d %+v", code, done)
	}
	if code := late(); code != 409 {
		t.Fatalf("completion by a after b's: %d, want 409", code)
	}
	kids, err := n.Client.Children(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	var results []string
	for _, k := range kids {
		if k.Type == nexus.TypeResult {
			results = append(results, k.AgentID+": "+k.Content)
		}
	}
	if len(results) != 1 || results[0] != "assistant-b: LGTM after two fixes." || done.Result.ParentID != task.ID {
		t.Fatalf("results of the task: %q", results)
	}
	nodetest.AwaitEvent(t, sub, eventWait, "task done", func(typ string, d map[string]any) bool {
		return typ == "task" && d["status"] == tasks.Done && d["agent"] == "assistant-b" && d["result"] == done.Result.ID.String()
	})

	if code := callAPI(t, n, "POST", "/v1/agents/assistant-b/heartbeat", nil, nil); code != 200 {
		t.Fatalf("heartbeat of b: %d", code)
	}
	var d byAgent
	h := agentsHealth(t, n, &d)
	if h.Status != nexus.StatusHealthy || d.External[tasks.Active] != 1 || d.External[tasks.Lost] != 1 || d.Tasks[tasks.Done] != 1 {
		t.Fatalf("agents component: %+v %+v", h, d)
	}
	m := metricsText(t, n)
	for _, want := range []string{`nexus_external_agents{status="active"} 1`, `nexus_external_agents{status="lost"} 1`, `nexus_tasks{state="done"} 1`, `nexus_tasks{state="queued"} 0`} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(m, "nexus_agent_status") || strings.Contains(m, "nexus_supervised_") {
		t.Error("metrics of agents or processes the node does not have")
	}

	// With b gone too and a task waiting, nobody can do the work.
	if code := callAPI(t, n, "POST", "/v1/tasks", map[string]any{"content": "Another review."}, nil); code != 201 {
		t.Fatalf("create task: %d", code)
	}
	nodetest.AwaitEvent(t, sub, eventWait, "assistant-b lost", func(typ string, d map[string]any) bool {
		return typ == "agent" && d["agent"] == "assistant-b" && d["status"] == tasks.Lost
	})
	if h = agentsHealth(t, n, &d); h.Status != nexus.StatusDegraded || h.Error != "queued tasks: 1, and no external agent is active (2 lost)" {
		t.Fatalf("degraded: %+v", h)
	}
}

// An agent whose key is rejected is auth_failed: the cascade reports it
// once and does not reset it while its key source holds the same key;
// once the secrets file holds another key, the next cascade resets it and
// it answers. Keys are never logged.
func TestNode_AgentAuthFailed(t *testing.T) {
	llm := newLLMFake(t, "reviewer", "right-key-8d1e")
	keyFile := filepath.Join(t.TempDir(), "reviewer.key")
	if err := os.WriteFile(keyFile, []byte("wrong-key-3a9b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := nodetest.Config(t)
	cfg.RecoverInterval = 200 * time.Millisecond
	logs := nodetest.CaptureLogs(t, &cfg)
	withFile(t, &cfg, fmt.Sprintf(`
agents:
  - id: reviewer
    provider: openai
    base_url: %s
    model: fake-model
    secrets_file: %s
    api_key_env: REVIEWER_KEY
`, llm.baseURL(), keyFile))
	n := nodetest.Open(t, cfg)
	var d byAgent
	var h nexus.ComponentHealth
	nodetest.Wait(t, eventWait, "the rejected key reported by the cascade", func() bool {
		h = agentsHealth(t, n, &d)
		return d.Recoveries.Last.Status == "failed"
	})
	if h.Status != nexus.StatusUnhealthy || d.ByAgent["reviewer"].Status != "auth_failed" ||
		!strings.Contains(d.Recoveries.Last.Reason, "agent reviewer is auth_failed (heartbeat: openai at "+llm.baseURL()+" answered 401 Unauthorized") ||
		!strings.Contains(d.Recoveries.Last.Reason, "not reset, the same key would be rejected again; put a valid key in "+keyFile+" (entry REVIEWER_KEY): the agent is reset at the next cascade") {
		t.Fatalf("agents component: %+v %+v", h, d)
	}
	// Two more cascades with the key unchanged: reported once, not again.
	for range 2 {
		if s := agentsStep(t, n); s.Status != recovery.OK {
			t.Fatalf("a cascade with the key unchanged: %+v, want %s", s, recovery.OK)
		}
	}
	if agentsHealth(t, n, &d); d.Recoveries.Attempts != 1 {
		t.Fatalf("%d recovery attempts for an unchanged key, want 1 (reported once)", d.Recoveries.Attempts)
	}
	q, err := n.Client.Put(context.Background(), nexus.Draft{Type: nexus.TypeInstruction, Content: "Review it."})
	if err != nil {
		t.Fatal(err)
	}
	if code := callAPI(t, n, "POST", "/v1/agents/reviewer/process", map[string]any{"context_id": q.ID}, nil); code != 503 || llm.count() != 0 {
		t.Fatalf("process with an auth_failed agent: %d, %d requests sent", code, llm.count())
	}

	if err := os.WriteFile(keyFile, []byte("REVIEWER_KEY=right-key-8d1e\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The reset makes the agent healthy a moment before the cascade
	// records its step: wait for both.
	nodetest.Wait(t, eventWait, "the agent reset with its new key", func() bool {
		h = agentsHealth(t, n, &d)
		return h.Status == nexus.StatusHealthy && d.Recoveries.Attempts == 2
	})
	if d.Recoveries.Last.Status != "recovered" || !strings.Contains(d.Recoveries.Last.Reason, "agent reviewer: its key changed since it was rejected: reset, calls resume") {
		t.Fatalf("after the key changed: %+v", d.Recoveries)
	}
	if code := callAPI(t, n, "POST", "/v1/agents/reviewer/process", map[string]any{"context_id": q.ID}, nil); code != 201 {
		t.Fatalf("process after the reset: %d", code)
	}
	if all := logs.String(); strings.Contains(all, "right-key-8d1e") || strings.Contains(all, "wrong-key-3a9b") {
		t.Fatalf("a key is in the node's log:\n%s", all)
	}
}

// The time from a failing primary to the answer of its backup, through
// the node's API: POST /v1/agents/{pool}/process while the primary's
// provider answers 503. With retries.max 0 the pool fails over at once;
// this case always runs. NEXUS_FIGURES=1 adds the default retry policy
// (3 retries, full jitter from 500ms: about 1.75s a call) and the default
// breaker, which stops trying the primary after 5 failed attempts.
func TestNode_FailoverLatency(t *testing.T) {
	type scenario struct {
		name, primary string
		slow          bool
	}
	for _, sc := range []scenario{
		{"retries.max 0", "retries: {max: 0}\n    breaker: {failures: 1000}\n    heartbeat: {interval: 0}", false},
		{"default retries", "breaker: {failures: 1000}\n    heartbeat: {interval: 0}", true},
		{"default retries and breaker", "", true},
	} {
		t.Run(sc.name, func(t *testing.T) {
			if sc.slow && os.Getenv("NEXUS_FIGURES") == "" {
				t.Skip("set NEXUS_FIGURES=1 to measure it (about 20s)")
			}
			primary, backup := newLLMFake(t, "primary", ""), newLLMFake(t, "backup", "")
			cfg := nodetest.Config(t)
			withFile(t, &cfg, fmt.Sprintf(`
agents:
  - id: primary
    provider: openai
    base_url: %s
    model: fake-model
    %s
  - id: backup
    provider: openai
    base_url: %s
    model: fake-model
pools:
  - name: writers
    members: [{agent: primary}]
    backups: [backup]
`, primary.baseURL(), sc.primary, backup.baseURL()))
			n := nodetest.Open(t, cfg)
			q, err := n.Client.Put(context.Background(), nexus.Draft{Type: nexus.TypeInstruction, Content: "Summarize."})
			if err != nil {
				t.Fatal(err)
			}
			primary.fail(503)
			var total, inPool []time.Duration
			for range 10 {
				var ans orchestrator.Answer
				start := time.Now()
				code := callAPI(t, n, "POST", "/v1/agents/writers/process", map[string]any{"context_id": q.ID}, &ans)
				total = append(total, time.Since(start))
				if code != 201 || ans.Provenance.FinalAgent != "backup" {
					t.Fatalf("call %d: %d %+v", len(total), code, ans.Provenance)
				}
				inPool = append(inPool, ans.Provenance.Latency)
			}
			p50 := func(d []time.Duration) time.Duration { d = slices.Clone(d); slices.Sort(d); return d[len(d)/2] }
			t.Logf("%s: primary failing (503) to the backup's answer stored, over %d calls: p50 %v through HTTP (first %v, max %v), p50 %v inside the pool; %d requests reached the primary",
				sc.name, len(total), p50(total).Round(10*time.Microsecond), total[0].Round(10*time.Microsecond), slices.Max(total).Round(10*time.Microsecond),
				p50(inPool).Round(10*time.Microsecond), primary.count())
			if !sc.slow && p50(total) > 250*time.Millisecond {
				t.Errorf("failover without retries took %v (p50): something waits", p50(total))
			}
		})
	}
}
