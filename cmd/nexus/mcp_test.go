package main_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
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

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// mcpProcess starts `nexus mcp` with args and connects the SDK's client to
// it over stdio. Its stderr is collected in the returned builder.
func mcpProcess(t *testing.T, args ...string) (*mcp.ClientSession, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"mcp"}, args...)...)
	cmd.Env = append(os.Environ(), "NEXUS_TOKEN=", "NEXUS_SERVER=", "NEXUS_DATA=")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(t.Context(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("nexus mcp %v: %v\n%s", args, err, stderr)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, stderr
}

// syncBuffer is a strings.Builder safe for a writing process and a
// reading test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// callTool calls a tool and decodes its structured result into out, or
// returns the tool error's code and message.
func callTool(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any, out any) (nexus.Code, string) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v", name, err)
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if res.IsError {
		var body struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(text), &body); err != nil || body.Error.Code == "" {
			t.Fatalf("%s: error result %q", name, text)
		}
		return nexus.Code(body.Error.Code), body.Error.Message
	}
	if out != nil {
		if err := json.Unmarshal([]byte(text), out); err != nil {
			t.Fatalf("%s: %v in %q", name, err, text)
		}
	}
	return "", ""
}

// mustCall calls a tool that must succeed.
func mustCall(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any, out any) {
	t.Helper()
	if code, msg := callTool(t, cs, name, args, out); code != "" {
		t.Fatalf("%s %v: %s: %s", name, args, code, msg)
	}
}

// The tools of the memory, and those of the agents and the task queue,
// which `nexus mcp` offers through its client.
var (
	memoryTools = []string{"get_chain", "get_context", "list_contexts", "related_contexts", "search_contexts", "store_context"}
	agentTools  = []string{"claim_task", "complete_task", "create_task", "fail_task", "generate_context", "heartbeat_agent", "process_context", "register_agent"}
)

// exerciseMCP lists the tools (want), calls the memory tools, with their
// error cases, and reads both resources. It writes into namespace ns and
// expects contexts stored without an agent to have agent.
func exerciseMCP(t *testing.T, cs *mcp.ClientSession, ns, agent string, want []string) {
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(names, want) {
		t.Fatalf("tools %v, want %v", names, want)
	}
	var root, child nexus.Context
	mustCall(t, cs, "store_context", map[string]any{"content": "The zebra crossing needs new paint.", "type": "observation", "metadata": map[string]any{"street": "main"}, "namespace": ns}, &root)
	mustCall(t, cs, "store_context", map[string]any{"content": "Painted the zebra crossing white.", "type": "result", "parent_id": root.ID.String()}, &child)
	if root.AgentID != agent || child.Namespace != ns || root.Type != nexus.TypeObservation || string(root.Metadata) != `{"street":"main"}` || child.ParentID != root.ID {
		t.Fatalf("stored %+v and %+v", root, child)
	}
	var got nexus.Context
	mustCall(t, cs, "get_context", map[string]any{"id": child.ID.String()}, &got)
	if got.Content != child.Content || got.SemanticHash != child.SemanticHash || !got.Timestamp.Equal(child.Timestamp) {
		t.Fatalf("get_context %+v, want %+v", got, child)
	}
	var list struct{ Contexts []nexus.Context }
	mustCall(t, cs, "get_chain", map[string]any{"id": child.ID.String()}, &list)
	if len(list.Contexts) != 2 || list.Contexts[0].ID != child.ID || list.Contexts[1].ID != root.ID {
		t.Fatalf("get_chain %+v", list)
	}
	mustCall(t, cs, "list_contexts", map[string]any{"type": "result", "namespace": ns}, &list)
	if len(list.Contexts) != 1 || list.Contexts[0].ID != child.ID {
		t.Fatalf("list_contexts %+v", list)
	}
	var hits struct {
		Hits []struct{ Context nexus.Context }
	}
	mustCall(t, cs, "search_contexts", map[string]any{"query": "crossing needs new paint", "mode": "keyword", "consistent": true, "limit": 1, "namespace": ns}, &hits)
	if len(hits.Hits) != 1 || hits.Hits[0].Context.ID != root.ID {
		t.Fatalf("search_contexts %+v", hits)
	}
	mustCall(t, cs, "related_contexts", map[string]any{"id": root.ID.String(), "namespace": ns}, &hits)
	if len(hits.Hits) != 1 || hits.Hits[0].Context.ID != child.ID {
		t.Fatalf("related_contexts %+v", hits)
	}
	var g nexus.IDGenerator
	missing := g.New(time.Now()).String()
	for _, c := range []struct {
		tool string
		args map[string]any
		code nexus.Code
		msg  string
	}{
		{"get_context", map[string]any{"id": "not-an-id"}, nexus.EInvalid, `invalid id "not-an-id"`},
		{"get_context", map[string]any{"id": missing}, nexus.ENotFound, "context " + missing + " not found"},
		{"get_chain", map[string]any{"id": missing}, nexus.ENotFound, missing},
		{"search_contexts", map[string]any{"query": "zebra", "limit": 1000}, nexus.EInvalid, "limit: maximum: 1000 is greater than 100"},
		{"list_contexts", map[string]any{"limit": -1}, nexus.EInvalid, "limit: minimum: -1 is less than 1"},
		{"store_context", map[string]any{"content": "x", "type": "poem"}, nexus.EInvalid, "type: enum"},
	} {
		if code, msg := callTool(t, cs, c.tool, c.args, nil); code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s %v: %s %q, want %s with %q", c.tool, c.args, code, msg, c.code, c.msg)
		}
	}
	res, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "nexus://threads/" + child.ID.String()})
	if err != nil {
		t.Fatal(err)
	}
	var thread struct{ Contexts []nexus.Context }
	if err := json.Unmarshal([]byte(res.Contents[0].Text), &thread); err != nil || len(thread.Contexts) != 2 || thread.Contexts[0].ID != root.ID {
		t.Fatalf("thread resource: %v %s", err, res.Contents[0].Text)
	}
	res, err = cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "nexus://contexts/" + root.ID.String()})
	if err != nil || !strings.Contains(res.Contents[0].Text, `"content": "The zebra crossing needs new paint."`) {
		t.Fatalf("context resource: %v %+v", err, res)
	}
	_, err = cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "nexus://contexts/" + missing})
	var rpc *jsonrpc.Error
	if !errors.As(err, &rpc) || !strings.Contains(string(rpc.Data), `"code":"not_found"`) {
		t.Fatalf("missing context resource: %v", err)
	}
}

// exerciseTasks has external agents register, claim, heartbeat and
// complete tasks through the task tools; a claim that is no longer
// current is a conflict for its old holder, and the server without
// --config runs no agents to process a context.
func exerciseTasks(t *testing.T, cs *mcp.ClientSession) {
	type task struct {
		ID      string
		Status  string
		Claim   string
		Attempt int
		Result  string
	}
	var claim struct {
		Claimed bool
		Task    task
	}
	var agent struct {
		Status string
		Claims []string
	}
	for _, id := range []string{"worker-1", "worker-2"} {
		mustCall(t, cs, "register_agent", map[string]any{"agent_id": id, "capabilities": []string{"code"}}, &agent)
	}
	var fix, review task
	mustCall(t, cs, "create_task", map[string]any{"content": "Fix the parser.", "capability": "code"}, &fix)
	mustCall(t, cs, "claim_task", map[string]any{"agent_id": "worker-1"}, &claim)
	if !claim.Claimed || claim.Task.ID != fix.ID || claim.Task.Attempt != 1 || len(claim.Task.Claim) != 32 {
		t.Fatalf("claim_task: %+v", claim)
	}
	mustCall(t, cs, "heartbeat_agent", map[string]any{"agent_id": "worker-1"}, &agent)
	if agent.Status != "active" || !slices.Equal(agent.Claims, []string{fix.ID}) {
		t.Errorf("heartbeat_agent: %+v", agent)
	}
	var done struct {
		Task   task
		Result nexus.Context
	}
	mustCall(t, cs, "complete_task", map[string]any{"task_id": fix.ID, "agent_id": "worker-1", "claim": claim.Task.Claim, "content": "Fixed."}, &done)
	if done.Task.Status != "done" || done.Result.ParentID.String() != fix.ID || done.Result.AgentID != "worker-1" || done.Task.Result != done.Result.ID.String() {
		t.Fatalf("complete_task: %+v", done)
	}

	// worker-1 hands the review back; worker-2 takes it under claim 2.
	mustCall(t, cs, "create_task", map[string]any{"content": "Review the fix."}, &review)
	mustCall(t, cs, "claim_task", map[string]any{"agent_id": "worker-1"}, &claim)
	stale := claim.Task.Claim
	mustCall(t, cs, "fail_task", map[string]any{"task_id": review.ID, "agent_id": "worker-1", "claim": claim.Task.Claim, "reason": "out of time", "retry": true}, &review)
	if review.Status != "queued" {
		t.Fatalf("fail_task with retry: %+v", review)
	}
	mustCall(t, cs, "claim_task", map[string]any{"agent_id": "worker-2"}, &claim)
	if claim.Task.ID != review.ID || claim.Task.Attempt != 2 {
		t.Fatalf("worker-2 claims: %+v", claim)
	}
	if code, msg := callTool(t, cs, "complete_task", map[string]any{"task_id": review.ID, "agent_id": "worker-1", "claim": stale, "content": "LGTM"}, nil); code != nexus.EConflict || !strings.Contains(msg, "not current") {
		t.Errorf("complete_task with a stale claim: %s %q", code, msg)
	}
	mustCall(t, cs, "complete_task", map[string]any{"task_id": review.ID, "agent_id": "worker-2", "claim": claim.Task.Claim, "content": "One nit."}, &done)
	if done.Result.AgentID != "worker-2" {
		t.Errorf("worker-2 completes: %+v", done)
	}
	if code, msg := callTool(t, cs, "process_context", map[string]any{"context_id": fix.ID, "agent": "writer"}, nil); code != nexus.ENotFound || !strings.Contains(msg, "runs no agents") {
		t.Errorf("process_context on a node without agents: %s %q", code, msg)
	}
	if code, msg := callTool(t, cs, "generate_context", map[string]any{"prompt": "Name it.", "agent": "writer"}, nil); code != nexus.ENotFound || !strings.Contains(msg, "runs no agents") {
		t.Errorf("generate_context on a node without agents: %s %q", code, msg)
	}
}

// The real `nexus mcp` over stdio and /mcp of the real server, both driven
// by the SDK's client, give the same answers from one memory.
func TestMCP_StdioAndHTTP(t *testing.T) {
	p := startServe(t, t.TempDir())
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	t.Run("stdio", func(t *testing.T) {
		cs, stderr := mcpProcess(t, "--server", p.url, "--no-start", "--agent", "mcp-test")
		exerciseMCP(t, cs, "over-stdio", "mcp-test", slices.Concat(memoryTools, agentTools))
		exerciseTasks(t, cs)
		if strings.Contains(stderr.String(), "level=ERROR") {
			t.Errorf("stderr: %s", stderr)
		}
	})
	t.Run("http", func(t *testing.T) {
		tr := &mcp.StreamableClientTransport{Endpoint: p.url + "/mcp", MaxRetries: -1}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(t.Context(), tr, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		exerciseMCP(t, cs, "over-http", "mcp", slices.Concat(memoryTools, agentTools))
		exerciseTasks(t, cs)
		// The tools act on the node's own task queue.
		mustCall(t, cs, "register_agent", map[string]any{"agent_id": "mcp-over-http"}, nil)
		resp, err := http.Get(p.url + "/v1/agents/mcp-over-http")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("the agent registered over /mcp: GET /v1/agents/mcp-over-http answered %d", resp.StatusCode)
		}
	})
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// With --no-start and no server, `nexus mcp` exits saying exactly what to
// run.
func TestMCP_NoStart(t *testing.T) {
	addr, data := freeAddr(t), t.TempDir()
	cmd := exec.Command(binary, "mcp", "--no-start", "--server", "http://"+addr, "--data", data)
	cmd.Env = append(os.Environ(), "NEXUS_TOKEN=")
	out, err := cmd.CombinedOutput()
	want := fmt.Sprintf("nexus mcp: no Nexus server answers at http://%s. Start one with:\n\n    nexus serve --data %s --addr %s\n\nor run nexus mcp without --no-start to start it in the background\n", addr, data, addr)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || string(out) != want {
		t.Fatalf("exit %v, output:\n%s\nwant:\n%s", err, out, want)
	}
	if _, err := os.Stat(filepath.Join(data, "LOCK")); !os.IsNotExist(err) {
		t.Fatalf("--no-start touched the data directory: %v", err)
	}
}

// serverPid returns the pid of the server holding data, or 0.
func serverPid(data string) int {
	b, _ := os.ReadFile(filepath.Join(data, "LOCK"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// stopServer stops the server holding data (started by `nexus mcp`, so
// not our child) and waits until it has released the directory.
func stopServer(t *testing.T, data string) {
	t.Helper()
	pid := serverPid(data)
	if pid == 0 {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(30 * time.Second); serverPid(data) == pid; {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("server %d did not stop", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Without a server, `nexus mcp` starts one for its data directory, detached
// and logging to DATA/serve.log; when that server goes away, the next call
// starts another.
func TestMCP_AutoStart(t *testing.T) {
	addr, data := freeAddr(t), t.TempDir()
	t.Cleanup(func() { stopServer(t, data) })
	cs, stderr := mcpProcess(t, "--server", "http://"+addr, "--data", data)
	var c nexus.Context
	mustCall(t, cs, "store_context", map[string]any{"content": "started on demand"}, &c)
	first := serverPid(data)
	if first == 0 || !strings.Contains(stderr.String(), "no server answered: started one") {
		t.Fatalf("no server holds %s; stderr:\n%s", data, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(data, "serve.log")); err != nil || !strings.Contains(string(b), "nexus listening on http://"+addr) {
		t.Fatalf("serve.log: %v\n%s", err, b)
	}
	if resp, err := http.Get("http://" + addr + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the started server: %v", err)
	}
	stopServer(t, data)
	var got nexus.Context
	mustCall(t, cs, "get_context", map[string]any{"id": c.ID.String()}, &got)
	if got.Content != "started on demand" || serverPid(data) == first || serverPid(data) == 0 {
		t.Fatalf("after the server stopped: %+v, server %d (was %d)", got, serverPid(data), first)
	}
}

// Ten `nexus mcp` processes start at once on a data directory no server
// holds: they race to start one, one server wins, and all of them write
// through it. Every acknowledged context is then stored once with its
// content, and git fsck finds the repository clean.
func TestMCP_ConcurrentClients(t *testing.T) {
	const clients, writes = 10, 50
	addr, data := freeAddr(t), t.TempDir()
	t.Cleanup(func() { stopServer(t, data) })
	var mu sync.Mutex
	acked := map[string]nexus.ID{} // content -> id
	var wg sync.WaitGroup
	for n := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(binary, "mcp", "--server", "http://"+addr, "--data", data, "--agent", fmt.Sprint("client-", n))
			cmd.Env = append(os.Environ(), "NEXUS_TOKEN=")
			stderr := &syncBuffer{}
			cmd.Stderr = stderr
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(t.Context(), &mcp.CommandTransport{Command: cmd}, nil)
			if err != nil {
				t.Errorf("client %d: %v\n%s", n, err, stderr)
				return
			}
			defer cs.Close()
			for i := range writes {
				content := fmt.Sprintf("client %d note %d", n, i)
				res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "store_context", Arguments: map[string]any{"content": content}})
				if err != nil || res.IsError {
					t.Errorf("client %d write %d: %v %+v\n%s", n, i, err, res, stderr)
					return
				}
				var c nexus.Context
				if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &c); err != nil || c.Content != content {
					t.Errorf("client %d write %d: %v %+v", n, i, err, c)
					return
				}
				mu.Lock()
				acked[content] = c.ID
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	stopServer(t, data)
	if t.Failed() {
		return
	}
	if b, err := os.ReadFile(filepath.Join(data, "serve.log")); err != nil || strings.Count(string(b), "nexus listening on") != 1 {
		t.Fatalf("want exactly one server to have served: %v\n%s", err, b)
	}
	s, err := gitstore.Open(data, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.List(t.Context(), nexus.Filter{Limit: nexus.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, c := range p.Contexts {
		seen[c.Content]++
	}
	for content, id := range acked {
		c, err := s.Get(t.Context(), id)
		if err != nil || c.Content != content || seen[content] != 1 {
			t.Errorf("%q (%s): %v, stored %d times", content, id, err, seen[content])
		}
	}
	if len(acked) != clients*writes || s.Len() != clients*writes || len(p.Contexts) != clients*writes {
		t.Fatalf("%d acknowledged, store holds %d (listed %d), want %d", len(acked), s.Len(), len(p.Contexts), clients*writes)
	}
	if out, err := exec.Command("git", "--git-dir", filepath.Join(data, "repo.git"), "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
}
