package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
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
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/tasks"
)

// llmFake is an OpenAI-compatible provider on loopback: POST
// /v1/chat/completions and GET /v1/models in the real wire format, a
// Bearer key checked, and a switch that makes it answer an error status.
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
	default:
		openAIError(w, 404, "invalid_request_error", "Unknown request URL: "+r.Method+" "+r.URL.Path)
	}
}

// writeNodeConfig writes a configuration file and returns its path.
func writeNodeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nexus.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// callAPI sends a JSON request and decodes the answer into out (if not
// nil); it returns the status.
func callAPI(t *testing.T, method, url string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, url, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// agentsComponent is the agents component of /health, its details
// decoded into out.
func agentsComponent(t *testing.T, url string, out any) nexus.ComponentHealth {
	t.Helper()
	_, h := getHealth(t, url)
	c := h.Components[nexus.ComponentAgents]
	b, _ := json.Marshal(c.Details)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return c
}

// awaitEvent reads sub until an event matches, for at most within.
func awaitEvent(t *testing.T, sub nexus.Subscription, within time.Duration, what string, match func(typ string, data map[string]any) bool) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("no event %s within %v: %v", what, within, err)
		}
		var data map[string]any
		json.Unmarshal(ev.Data, &data)
		if match(ev.Type, data) {
			return data
		}
	}
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
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

// Two OpenAI-compatible agents in a pool, the second a backup: the pool
// answers through the real server; when the primary answers 503 the
// backup does, provenance says so, and /health, /metrics, the event
// stream and the recovery cascade follow the primary down and back up.
// At restart the agents' states come back from their checkpoints.
func TestServe_AgentPoolFailover(t *testing.T) {
	primary := newLLMFake(t, "primary", "test-key-5f2c9a")
	backup := newLLMFake(t, "backup", "")
	cfg := writeNodeConfig(t, fmt.Sprintf(`
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
	data := t.TempDir()
	p := startServe(t, data, "--config="+cfg, "--recover-interval=200ms", "NEXUS_TEST_PRIMARY_KEY=test-key-5f2c9a")
	defer stopServe(p)
	c := httpapi.NewClient(p.url)
	ctx := context.Background()
	sub, err := c.Subscribe(ctx, nexus.EventFilter{AgentID: "primary"}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	q, err := c.Put(ctx, nexus.Draft{Type: nexus.TypeInstruction, Content: "Summarize the release notes of 2.4."})
	if err != nil {
		t.Fatal(err)
	}
	var ans orchestrator.Answer
	if code := callAPI(t, "POST", p.url+"/v1/agents/writers/process", map[string]any{"context_id": q.ID}, &ans); code != 201 {
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
	if code := callAPI(t, "POST", p.url+"/v1/agents/writers/process", map[string]any{"context_id": q.ID}, &ans); code != 201 {
		t.Fatalf("process with the primary down: %d", code)
	}
	pv = ans.Provenance
	if pv.FinalAgent != "backup" || ans.Context.Content != "answer from backup" || len(pv.Trail) != 2 ||
		pv.Trail[0].Agent != "primary" || pv.Trail[0].Class != agent.ClassOverload || pv.Trail[0].Requests != 2 || pv.Attempts != 3 {
		t.Fatalf("failover answer: %+v", ans)
	}
	stored, err := c.Get(ctx, ans.Context.ID)
	if err != nil || !strings.Contains(string(stored.Metadata), `"final_agent":"backup"`) {
		t.Fatalf("stored answer: %v %s", err, stored.Metadata)
	}

	// Two failed attempts open the primary's breaker: the node says so.
	down := awaitEvent(t, sub, 5*time.Second, "primary unhealthy", func(typ string, d map[string]any) bool {
		return typ == "agent" && d["status"] == "unhealthy"
	})
	if detail, _ := down["detail"].(map[string]any); down["source"] != "node" || detail["breaker"] != "open" || !strings.Contains(fmt.Sprint(down["reason"]), "503") {
		t.Fatalf("unhealthy event: %v", down)
	}
	var d byAgent
	waitFor(t, 5*time.Second, "the cascade restores the unhealthy primary", func() bool {
		h := agentsComponent(t, p.url, &d)
		return h.Status == nexus.StatusDegraded && d.Recoveries.Last.Status == "recovered"
	})
	if d.Unhealthy != 1 || d.ByAgent["primary"].Breaker != "open" || d.ByAgent["backup"].Status != "healthy" ||
		!strings.Contains(d.Recoveries.Last.Reason, "agent primary, unhealthy (breaker open): state restored from the agent_state checkpoint written when it failed") ||
		!strings.Contains(d.Recoveries.Last.Reason, "the calls of pool writers fail over to its other members meanwhile") {
		t.Fatalf("agents component: %+v", d)
	}
	m := getMetrics(t, p.url)
	for _, want := range []string{
		`nexus_agent_status{agent="primary",status="unhealthy"} 1`, `nexus_agent_status{agent="backup",status="healthy"} 1`,
		`nexus_agent_breaker_state{agent="primary",state="open"} 1`, `nexus_agent_failures_total{agent="primary",class="overload"} `,
		`nexus_agent_calls_total{agent="backup"} 1`, `nexus_component_status{component="agents",status="degraded"} 1`,
		`nexus_recovery_total{component="agents",result="success"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(m, "agent"))
		}
	}

	// The provider comes back: the half-open heartbeat closes the breaker.
	primary.fail(0)
	up := awaitEvent(t, sub, 5*time.Second, "primary healthy again", func(typ string, d map[string]any) bool {
		return typ == "agent" && d["status"] == "healthy"
	})
	if up["from"] != "unhealthy" {
		t.Fatalf("recovery event: %v", up)
	}
	ans = orchestrator.Answer{}
	if code := callAPI(t, "POST", p.url+"/v1/agents/process", map[string]any{"context_id": q.ID, "capability": "summarize"}, nil); code != 201 {
		t.Fatalf("process by capability: %d", code)
	}
	if h := agentsComponent(t, p.url, &d); h.Status != nexus.StatusHealthy {
		t.Fatalf("agents after the recovery: %+v", h)
	}
	stopServe(p)
	if strings.Contains(p.stderr.String(), "test-key-5f2c9a") {
		t.Fatal("the key is in the server's log")
	}
	if strings.Contains(p.stderr.String(), "not restored") {
		t.Fatalf("a restore failed:\n%s", p.stderr)
	}

	// The next start puts back the states checkpointed at shutdown.
	p = startServe(t, data, "--config="+cfg, "NEXUS_TEST_PRIMARY_KEY=test-key-5f2c9a")
	defer stopServe(p)
	defer func() {
		if t.Failed() {
			t.Logf("stderr:\n%s", p.stderr)
		}
	}()
	waitFor(t, 5*time.Second, "states restored at start", func() bool {
		return strings.Contains(p.stderr.String(), `msg="agent state restored" agent=writers`) && strings.Contains(p.stderr.String(), `msg="agent state restored" agent=primary`)
	})
}

// A supervised process killed with SIGKILL is restarted by its policy; one
// given up (max_restarts 0) is restarted once by the recovery cascade,
// and reported when it is given up again. Restart counts show in /health,
// /metrics and the event stream; the processes stop with the server.
func TestServe_SupervisedProcesses(t *testing.T) {
	cfg := writeNodeConfig(t, `
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
	data := t.TempDir()
	p := startServe(t, data, "--recover-interval=200ms", "NEXUS_CONFIG="+cfg)
	defer stopServe(p)
	sub, err := httpapi.NewClient(p.url).Subscribe(context.Background(), nexus.EventFilter{AgentID: "sleeper"}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	procs := func() map[string]int {
		var d byAgent
		agentsComponent(t, p.url, &d)
		out := map[string]int{}
		for _, pr := range d.Processes {
			if pr.State == "running" {
				out[pr.Name] = pr.PID
			}
		}
		return out
	}
	var first map[string]int
	waitFor(t, 5*time.Second, "both processes running", func() bool { first = procs(); return len(first) == 2 })
	b, err := os.ReadFile(filepath.Join(data, "run", "sleeper.pid"))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(first["sleeper"]) {
		t.Fatalf("pid file %q, %v; the process runs as %d", b, err, first["sleeper"])
	}
	if _, err := os.Stat(filepath.Join(data, "logs", "sleeper.log")); err != nil {
		t.Fatalf("log file: %v", err)
	}

	syscall.Kill(first["sleeper"], syscall.SIGKILL)
	ev := awaitEvent(t, sub, 5*time.Second, "sleeper restarted", func(typ string, d map[string]any) bool {
		return typ == "process" && d["state"] == "running" && d["restarts"] == 1.0
	})
	if ev["name"] != "sleeper" || ev["pid"] == float64(first["sleeper"]) {
		t.Fatalf("restart event: %v", ev)
	}
	var d byAgent
	h := agentsComponent(t, p.url, &d)
	if h.Status != nexus.StatusHealthy || len(d.Processes) != 2 || d.Processes[1].Name != "sleeper" || d.Processes[1].Restarts != 1 {
		t.Fatalf("agents component after the restart: %+v %+v", h, d)
	}
	if m := getMetrics(t, p.url); !strings.Contains(m, `nexus_supervised_process_restarts_total{process="sleeper"} 1`) ||
		!strings.Contains(m, `nexus_supervised_process_state{process="sleeper",state="running"} 1`) {
		t.Fatalf("metrics:\n%s", grepLines(m, "supervised"))
	}

	// fragile is given up at its first exit; the cascade restarts it once.
	syscall.Kill(first["fragile"], syscall.SIGKILL)
	var again int
	waitFor(t, 5*time.Second, "fragile restarted by the cascade", func() bool { again = procs()["fragile"]; return again != 0 && again != first["fragile"] })
	h = agentsComponent(t, p.url, &d)
	if d.Processes[0].Name != "fragile" || !d.Processes[0].RestartedByRecovery || d.Processes[0].Restarts != 1 ||
		!strings.Contains(d.Recoveries.Last.Reason, "process fragile, given up (0 restarts within 1m0s, the most allowed; last: killed by SIGKILL), restarted (once per node run)") {
		t.Fatalf("after the cascade's restart: %+v", d)
	}
	syscall.Kill(again, syscall.SIGKILL)
	waitFor(t, 5*time.Second, "the second give-up reported", func() bool {
		h = agentsComponent(t, p.url, &d)
		return d.Recoveries.Last.Status == "failed"
	})
	if h.Status != nexus.StatusDegraded || !strings.Contains(h.Error, "fragile was given up") ||
		!strings.Contains(d.Recoveries.Last.Reason, "not restarted: already restarted once by the recovery; see "+filepath.Join(data, "logs", "fragile.log")) {
		t.Fatalf("after the second give-up: %+v %+v", h, d)
	}
	time.Sleep(500 * time.Millisecond) // two more cascades: reported once, not again
	if agentsComponent(t, p.url, &d); d.Recoveries.Attempts != 2 {
		t.Fatalf("%d recoveries, want 2 (the restart, then the report)", d.Recoveries.Attempts)
	}

	stopServe(p)
	if pid := int(ev["pid"].(float64)); syscall.Kill(pid, 0) == nil {
		t.Errorf("process %d survived the server", pid)
	}
	if _, err := os.Stat(filepath.Join(data, "run", "sleeper.pid")); !os.IsNotExist(err) {
		t.Errorf("pid file left after shutdown: %v", err)
	}
}

// An external agent registers, claims a task and stops heartbeating: its
// lease lapses, the task goes back to the queue, another agent claims and
// completes it, and the first one's late answer is refused: one result
// context. Leases come from the server section of the file. Nothing waits
// on a clock: the test waits for the lapse's events, and the second agent
// registers only then, so no heartbeat has to arrive in time.
func TestServe_ExternalAgentLeaseLapse(t *testing.T) {
	// The lease only has to outlast two consecutive requests of one agent.
	const agentLease, taskLease = 3 * time.Second, 30 * time.Second
	cfg := writeNodeConfig(t, fmt.Sprintf(`
server:
  agent_lease: %s
  task_lease: %s
`, agentLease, taskLease))
	p := startServe(t, t.TempDir(), "--config="+cfg)
	defer stopServe(p)
	c := httpapi.NewClient(p.url)
	ctx := context.Background()
	sub, err := c.Subscribe(ctx, nexus.EventFilter{}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if h := agentsComponent(t, p.url, &byAgent{}); h.Status != nexus.StatusDisabled {
		t.Fatalf("agents before any registration: %+v", h)
	}
	register := func(id string) {
		var a tasks.Agent
		if code := callAPI(t, "POST", p.url+"/v1/agents", map[string]any{"id": id, "capabilities": []string{"review"}}, &a); code != 201 {
			t.Fatalf("register %s: %d", id, code)
		}
		if got := a.LeaseExpires.Sub(a.LastHeartbeat); got != agentLease {
			t.Fatalf("register %s: a lease of %v, want the file's agent_lease %v", id, got, agentLease)
		}
	}
	var task tasks.Task
	if code := callAPI(t, "POST", p.url+"/v1/tasks", map[string]any{"content": "Review the parser change.", "capability": "review", "namespace": "team-a"}, &task); code != 201 {
		t.Fatalf("create task: %d", code)
	}
	register("assistant-a")
	var claimA tasks.Task
	before := time.Now()
	if code := callAPI(t, "POST", p.url+"/v1/tasks/claim", map[string]any{"agent_id": "assistant-a"}, &claimA); code != 200 || claimA.ID != task.ID {
		t.Fatalf("claim by a: %d %+v", code, claimA)
	}
	after := time.Now()
	// The claim's lease starts when the claim is handed out, once it is
	// journaled: within the claim request.
	if end := claimA.LeaseExpires; end.Before(before.Add(taskLease)) || end.After(after.Add(taskLease)) {
		t.Fatalf("the claim's lease ends %v, want the file's task_lease %v after the claim (made between %v and %v)", end, taskLease, before, after)
	}

	// a goes silent.
	lost := awaitEvent(t, sub, time.Minute, "assistant-a lost", func(typ string, d map[string]any) bool {
		return typ == "agent" && d["agent"] == "assistant-a" && d["status"] == tasks.Lost
	})
	if lost["source"] != "external" || !strings.Contains(fmt.Sprint(lost["reason"]), "no heartbeat") {
		t.Fatalf("lost event: %v", lost)
	}
	requeued := awaitEvent(t, sub, time.Minute, "task queued again", func(typ string, d map[string]any) bool {
		return typ == "task" && d["task"] == task.ID.String() && d["status"] == tasks.Queued
	})
	if requeued["agent"] != "assistant-a" || requeued["attempts"] != 1.0 || requeued["namespace"] != "team-a" {
		t.Fatalf("requeue event: %v", requeued)
	}
	register("assistant-b")
	var claimB tasks.Task
	if code := callAPI(t, "POST", p.url+"/v1/tasks/claim", map[string]any{"agent_id": "assistant-b"}, &claimB); code != 200 || claimB.ID != task.ID || claimB.Attempt != 2 {
		t.Fatalf("claim by b: %d %+v", code, claimB)
	}
	late := func() int {
		return callAPI(t, "POST", p.url+"/v1/tasks/"+task.ID.String()+"/complete",
			map[string]any{"agent_id": "assistant-a", "claim": claimA.Claim, "content": "late answer"}, nil)
	}
	if code := late(); code != 409 {
		t.Fatalf("completion by a under its lapsed claim: %d, want 409", code)
	}
	var done struct {
		Task   tasks.Task     `json:"task"`
		Result *nexus.Context `json:"result"`
	}
	if code := callAPI(t, "POST", p.url+"/v1/tasks/"+task.ID.String()+"/complete",
		map[string]any{"agent_id": "assistant-b", "claim": claimB.Claim, "content": "LGTM after two fixes."}, &done); code != 200 || done.Task.Status != tasks.Done {
		t.Fatalf("complete by b: %d %+v", code, done)
	}
	if code := late(); code != 409 {
		t.Fatalf("completion by a after b's: %d, want 409", code)
	}
	kids, err := c.Children(ctx, task.ID)
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
	awaitEvent(t, sub, time.Minute, "task done", func(typ string, d map[string]any) bool {
		return typ == "task" && d["status"] == tasks.Done && d["agent"] == "assistant-b" && d["result"] == done.Result.ID.String()
	})

	if code := callAPI(t, "POST", p.url+"/v1/agents/assistant-b/heartbeat", nil, nil); code != 200 {
		t.Fatalf("heartbeat of b: %d", code)
	}
	var d byAgent
	h := agentsComponent(t, p.url, &d)
	if h.Status != nexus.StatusHealthy || d.External[tasks.Active] != 1 || d.External[tasks.Lost] != 1 || d.Tasks[tasks.Done] != 1 {
		t.Fatalf("agents component: %+v %+v", h, d)
	}
	m := getMetrics(t, p.url)
	for _, want := range []string{`nexus_external_agents{status="active"} 1`, `nexus_external_agents{status="lost"} 1`, `nexus_tasks{state="done"} 1`, `nexus_tasks{state="queued"} 0`} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(m, "nexus_agent_status") || strings.Contains(m, "nexus_supervised_") {
		t.Error("metrics of agents or processes the node does not have")
	}

	// With b gone too and a task waiting, nobody can do the work.
	if code := callAPI(t, "POST", p.url+"/v1/tasks", map[string]any{"content": "Another review."}, nil); code != 201 {
		t.Fatalf("create task: %d", code)
	}
	awaitEvent(t, sub, time.Minute, "assistant-b lost", func(typ string, d map[string]any) bool {
		return typ == "agent" && d["agent"] == "assistant-b" && d["status"] == tasks.Lost
	})
	if h = agentsComponent(t, p.url, &d); h.Status != nexus.StatusDegraded || h.Error != "queued tasks: 1, and no external agent is active (2 lost)" {
		t.Fatalf("degraded: %+v", h)
	}
}

// A configuration the loader refuses stops serve before it touches the
// data directory, with the loader's message as is (file, line, field);
// so does a key source the agent cannot use. Keys are never quoted.
func TestServe_ConfigErrors(t *testing.T) {
	const key = "sk-proj-abcdefghijklmnop1234"
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "openai.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml, want string
		env              []string
		opensStore       bool // the problem shows once the store is open
	}{
		{"inline key", "agents:\n  - id: gpt\n    provider: openai\n    model: gpt-4o-mini\n    api_key: " + key + "\n",
			"nexus.yaml:5: agents[0].api_key: an API key is never written in the configuration file", nil, false},
		{"unknown field", "agents:\n  - id: gpt\n    provider: openai\n    model: gpt-4o-mini\n    retry: {max: 1}\n",
			"nexus.yaml:5: agents[0].retry: unknown field (known: api_key_env, args, base_url, breaker,", nil, false},
		{"secrets file readable by all", "agents:\n  - id: gpt\n    provider: openai\n    model: gpt-4o-mini\n    secrets_file: " + keyFile + "\n",
			"nexus.yaml: agents[0] (gpt): the secrets file " + keyFile + " is readable by every user (mode 0644); refusing to use it: run chmod 600 " + keyFile, nil, false},
		{"key not in the environment", "agents:\n  - id: gpt\n    provider: openai\n    model: gpt-4o-mini\n",
			"nexus.yaml: agents[0] (gpt): the environment variable OPENAI_API_KEY that should hold the API key is not set", []string{"OPENAI_API_KEY="}, false},
		{"missing program", "supervisor:\n  processes:\n    - name: coder\n      command: nexus-no-such-program\n",
			`nexus.yaml: supervisor.processes[0] (coder) cannot be started: exec: "nexus-no-such-program": executable file not found in $PATH`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeNodeConfig(t, tc.yaml)
			data := filepath.Join(t.TempDir(), "data")
			cmd := exec.Command(binary, "serve", "--data", data, "--addr", "127.0.0.1:0", "--config", cfg)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("serve: %v, want exit status 2\n%s", err, out)
			}
			want := "nexus serve: " + strings.ReplaceAll(tc.want, "nexus.yaml", cfg)
			if last := lastLines(string(out)); !strings.HasPrefix(last, want) || !tc.opensStore && strings.Count(string(out), "\n") != 1 {
				t.Fatalf("serve said\n%s\nwant a last line starting\n%s", out, want)
			}
			if tc.opensStore {
				return
			}
			if _, lerr := config.Load(cfg); lerr != nil && string(out) != "nexus serve: "+lerr.Error()+"\n" {
				t.Fatalf("serve said\n%s\nthe loader says\n%s", out, lerr)
			}
			if strings.Contains(string(out), key) {
				t.Fatal("the key is quoted")
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Fatalf("the data directory was touched: %v", err)
			}
		})
	}
}

// An agent whose key is rejected is auth_failed: the cascade reports it
// and does not reset it while its key source holds the same key; once the
// secrets file holds another key, the next cascade resets it and it
// answers.
func TestServe_AgentAuthFailed(t *testing.T) {
	llm := newLLMFake(t, "reviewer", "right-key-8d1e")
	keyFile := filepath.Join(t.TempDir(), "reviewer.key")
	if err := os.WriteFile(keyFile, []byte("wrong-key-3a9b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeNodeConfig(t, fmt.Sprintf(`
agents:
  - id: reviewer
    provider: openai
    base_url: %s
    model: fake-model
    secrets_file: %s
    api_key_env: REVIEWER_KEY
`, llm.baseURL(), keyFile))
	p := startServe(t, t.TempDir(), "--config="+cfg, "--recover-interval=200ms")
	defer stopServe(p)
	var d byAgent
	var h nexus.ComponentHealth
	waitFor(t, 5*time.Second, "the rejected key reported by the cascade", func() bool {
		h = agentsComponent(t, p.url, &d)
		return d.Recoveries.Last.Status == "failed"
	})
	if h.Status != nexus.StatusUnhealthy || d.ByAgent["reviewer"].Status != "auth_failed" ||
		!strings.Contains(d.Recoveries.Last.Reason, "agent reviewer is auth_failed (heartbeat: openai at "+llm.baseURL()+" answered 401 Unauthorized") ||
		!strings.Contains(d.Recoveries.Last.Reason, "not reset, the same key would be rejected again; put a valid key in "+keyFile+" (entry REVIEWER_KEY): the agent is reset at the next cascade") {
		t.Fatalf("agents component: %+v %+v", h, d)
	}
	time.Sleep(500 * time.Millisecond)
	if agentsComponent(t, p.url, &d); d.Recoveries.Attempts != 1 {
		t.Fatalf("%d recovery attempts for an unchanged key, want 1 (reported once)", d.Recoveries.Attempts)
	}
	q, err := httpapi.NewClient(p.url).Put(context.Background(), nexus.Draft{Type: nexus.TypeInstruction, Content: "Review it."})
	if err != nil {
		t.Fatal(err)
	}
	if code := callAPI(t, "POST", p.url+"/v1/agents/reviewer/process", map[string]any{"context_id": q.ID}, nil); code != 503 || llm.count() != 0 {
		t.Fatalf("process with an auth_failed agent: %d, %d requests sent", code, llm.count())
	}

	if err := os.WriteFile(keyFile, []byte("REVIEWER_KEY=right-key-8d1e\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the agent reset with its new key", func() bool {
		h = agentsComponent(t, p.url, &d)
		return h.Status == nexus.StatusHealthy
	})
	if d.Recoveries.Last.Status != "recovered" || !strings.Contains(d.Recoveries.Last.Reason, "agent reviewer: its key changed since it was rejected: reset, calls resume") {
		t.Fatalf("after the key changed: %+v", d.Recoveries)
	}
	if code := callAPI(t, "POST", p.url+"/v1/agents/reviewer/process", map[string]any{"context_id": q.ID}, nil); code != 201 {
		t.Fatalf("process after the reset: %d", code)
	}
	if strings.Contains(p.stderr.String(), "right-key-8d1e") || strings.Contains(p.stderr.String(), "wrong-key-3a9b") {
		t.Fatal("a key is in the server's log")
	}
}

// The time from a failing primary to the answer of its backup, through
// the real server: POST /v1/agents/{pool}/process while the primary's
// provider answers 503. With retries.max 0 the pool fails over at once;
// this case always runs. NEXUS_FIGURES=1 adds the default retry policy
// (3 retries, full jitter from 500ms: about 1.75s a call) and the default
// breaker, which stops trying the primary after 5 failed attempts.
func TestServe_FailoverLatency(t *testing.T) {
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
			cfg := writeNodeConfig(t, fmt.Sprintf(`
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
			p := startServe(t, t.TempDir(), "--config="+cfg)
			defer stopServe(p)
			q, err := httpapi.NewClient(p.url).Put(context.Background(), nexus.Draft{Type: nexus.TypeInstruction, Content: "Summarize."})
			if err != nil {
				t.Fatal(err)
			}
			primary.fail(503)
			var total, inPool []time.Duration
			for range 10 {
				var ans orchestrator.Answer
				start := time.Now()
				code := callAPI(t, "POST", p.url+"/v1/agents/writers/process", map[string]any{"context_id": q.ID}, &ans)
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
