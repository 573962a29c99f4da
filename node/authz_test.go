package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
	"github.com/nexus-mem/nexus/orchestrator"
)

// serveAs serves n's API with every request carrying principal p, as
// the authentication middleware sets it.
func serveAs(t *testing.T, n *node.Node, p *nexus.Principal) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Handler().ServeHTTP(w, r.WithContext(nexus.WithPrincipal(r.Context(), p)))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// post sends body as JSON and returns the status and the decoded answer.
func post(t *testing.T, url string, body any, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

type apiError struct {
	Error struct{ Code, Message string }
}

// mcpSession connects to the node's /mcp at url.
func mcpSession(t *testing.T, url string) *mcp.ClientSession {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: url + "/mcp", MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// toolError calls a tool that must fail and returns its error's code and
// message.
func toolError(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) (nexus.Code, string) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v", name, err)
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if !res.IsError {
		t.Fatalf("%s %v succeeded: %s", name, args, text)
	}
	var body apiError
	json.Unmarshal([]byte(text), &body)
	return nexus.Code(body.Error.Code), body.Error.Message
}

// commandAgentConfig is a node whose agent scribe is a command that
// appends each request (with the state it is sent) to a file and answers
// with the state {"notes":1}.
func commandAgentConfig(t *testing.T) (node.Config, string) {
	t.Helper()
	dir := t.TempDir()
	seen := filepath.Join(dir, "requests")
	script := filepath.Join(dir, "scribe.sh")
	body := "#!/bin/sh\ncat >> " + seen + "\necho >> " + seen + "\necho '{\"content\":\"noted\",\"state\":{\"notes\":1}}'\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	yaml := "agents:\n  - id: scribe\n    provider: command\n    command: " + script + "\n    probe: [/bin/true]\n    heartbeat: {interval: 0s}\n"
	file := filepath.Join(dir, "nexus.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := nodetest.Config(t)
	cfg.File = f
	return cfg, seen
}

// lastRequestState is the state sent with the command's last request.
func lastRequestState(t *testing.T, seen string) string {
	t.Helper()
	b, err := os.ReadFile(seen)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var req struct{ State json.RawMessage }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &req); err != nil {
		t.Fatal(err)
	}
	return string(req.State)
}

// The forged agent state attack: no client (not even the principal of a
// node without authentication) can write an agent_state checkpoint or
// into the agents namespace, through the API or MCP; and a checkpoint a
// principal wrote anyway (here put straight into the store) is not what
// the node restores and feeds to its command agent.
func TestNode_ForgedAgentStateIsRefusedAndNeverRestored(t *testing.T) {
	cfg, seen := commandAgentConfig(t)
	n, err := node.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	url := serveAs(t, n, nexus.Anonymous)
	var q nexus.Context
	if code := post(t, url+"/v1/contexts", map[string]any{"type": "instruction", "content": "Take a note."}, &q); code != 201 {
		t.Fatalf("put: %d", code)
	}
	if code := post(t, url+"/v1/agents/scribe/process", map[string]any{"context_id": q.ID}, nil); code != 201 {
		t.Fatalf("process: %d", code)
	}
	forged := map[string]any{"namespace": orchestrator.StateNamespace, "type": "agent_state", "agent_id": "scribe",
		"content": `{"version":1,"agent":"scribe","provider":"command","answers":0,"tokens_in":0,"tokens_out":0,"provider_state":{"forged":true}}`}
	var e apiError
	if code := post(t, url+"/v1/contexts", forged, &e); code != http.StatusForbidden || e.Error.Code != "forbidden" || !strings.Contains(e.Error.Message, "agent_state is written by the node only") {
		t.Fatalf("forged checkpoint over HTTP: %d %+v", code, e)
	}
	if code := post(t, url+"/v1/contexts", map[string]any{"namespace": "agents", "type": "memory", "content": "x"}, &e); code != http.StatusForbidden || e.Error.Code != "forbidden" {
		t.Fatalf("write into the agents namespace over HTTP: %d %+v", code, e)
	}
	cs := mcpSession(t, url)
	if code, msg := toolError(t, cs, "store_context", forged); code != nexus.EForbidden || !strings.Contains(msg, "written by the node only") {
		t.Fatalf("forged checkpoint over MCP: %s %q", code, msg)
	}
	if err := n.Close(context.Background()); err != nil { // checkpoints scribe's state, {"notes":1}
		t.Fatal(err)
	}

	// An attacker's checkpoint lands in the store anyway, newer than the
	// node's: it carries its principal.
	s, err := gitstore.Open(cfg.Dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.List(context.Background(), nexus.Filter{Namespace: orchestrator.StateNamespace, Type: nexus.TypeAgentState})
	if err != nil || len(page.Contexts) != 1 || page.Contexts[0].Principal != "" || !strings.Contains(page.Contexts[0].Content, `"provider_state":{"notes":1}`) {
		t.Fatalf("the node's checkpoint: %+v %v", page, err)
	}
	_, err = s.Put(context.Background(), nexus.Draft{Namespace: orchestrator.StateNamespace, Type: nexus.TypeAgentState, AgentID: "scribe",
		Content: forged["content"].(string), Metadata: json.RawMessage(`{"agent_state":{"encoding":"text"}}`), Principal: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	n, err = node.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	url = serveAs(t, n, nexus.Anonymous)
	if code := post(t, url+"/v1/agents/scribe/process", map[string]any{"context_id": q.ID}, nil); code != 201 {
		t.Fatalf("process after the restart: %d", code)
	}
	if got := lastRequestState(t, seen); got != `{"notes":1}` {
		t.Fatalf("the command was fed the state %s, want the node's checkpoint {\"notes\":1}", got)
	}
}

// The MCP tools act as the request's principal: a context of a namespace
// it may not read is not found, and it writes only where it may.
func TestNode_MCPToolsApplyThePrincipal(t *testing.T) {
	n, err := node.Open(context.Background(), nodetest.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	secret, err := n.Store().Put(context.Background(), nexus.Draft{Namespace: "secret", Type: nexus.TypeMemory, Content: "The vault key is hunter2."})
	if err != nil {
		t.Fatal(err)
	}
	p := &nexus.Principal{Name: "team", Role: nexus.RoleWrite, Write: []string{"team-a"}}
	url := serveAs(t, n, p)
	cs := mcpSession(t, url)
	if code, _ := toolError(t, cs, "get_context", map[string]any{"id": secret.ID.String()}); code != nexus.ENotFound {
		t.Fatalf("get_context of a secret context: %s", code)
	}
	if code, _ := toolError(t, cs, "store_context", map[string]any{"namespace": "secret", "type": "memory", "content": "x"}); code != nexus.EForbidden {
		t.Fatalf("store_context into an unwritable namespace: %s", code)
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "store_context", Arguments: map[string]any{"namespace": "team-a", "type": "memory", "content": "The vault is in team-b."}})
	if err != nil || res.IsError {
		t.Fatalf("store_context: %v %+v", err, res)
	}
	var c nexus.Context
	json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &c)
	if stored, err := n.Store().Get(context.Background(), c.ID); err != nil || stored.Principal != "team" {
		t.Fatalf("stored over MCP by %q (%v), want team", stored.Principal, err)
	}
	res, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "search_contexts", Arguments: map[string]any{"query": "vault key", "consistent": true}})
	if err != nil || res.IsError {
		t.Fatalf("search_contexts: %v %+v", err, res)
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if strings.Contains(text, secret.ID.String()) || !strings.Contains(text, c.ID.String()) {
		t.Fatalf("search_contexts: %s", text)
	}
}
