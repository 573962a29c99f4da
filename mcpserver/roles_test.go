package mcpserver_test

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/mcpserver"
)

// Over /mcp behind principals, every tool the server offers has a role; a
// read principal may call the read tools and is refused the others with
// forbidden, and nothing is stored; a write principal stores.
func TestServer_toolRoles(t *testing.T) {
	m := newMemory(t)
	n := newNode(t, m.store)
	f := &auth.File{}
	readTok, _ := f.Create(nexus.Principal{Name: "reader", Role: nexus.RoleRead, Read: []string{"*"}}, time.Now())
	writeTok, _ := f.Create(nexus.Principal{Name: "writer", Role: nexus.RoleWrite, Read: []string{"*"}, Write: []string{"*"}}, time.Now())
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	set, err := auth.New(func() (auth.Sources, error) { return auth.Sources{TokensFile: path}, nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := mcpserver.NewHandler(mcpserver.New(m.store, m.engine, mcpserver.Options{Agents: mcpserver.LocalAgents(n.queue, n.orch)}), 0)
	srv := httptest.NewServer(httpapi.NewServer(m.store, httpapi.Options{Auth: set, Searcher: m.engine, MCP: h}))
	t.Cleanup(srv.Close)
	reader, err := connectHTTP(t, srv.URL, readTok)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := connectHTTP(t, srv.URL, writeTok)
	if err != nil {
		t.Fatal(err)
	}
	list, err := reader.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Tools) != 14 {
		t.Errorf("%d tools offered, want all 14", len(list.Tools))
	}
	for _, tool := range list.Tools {
		need, ok := mcpserver.ToolRole(tool.Name)
		if !ok {
			t.Errorf("tool %s has no role", tool.Name)
			continue
		}
		if (need == nexus.RoleRead) != tool.Annotations.ReadOnlyHint {
			t.Errorf("tool %s: role %s, read-only hint %v", tool.Name, need, tool.Annotations.ReadOnlyHint)
		}
		if need == nexus.RoleRead {
			continue
		}
		// Arguments that would do something: the refusal comes first.
		res, err := reader.CallTool(t.Context(), &mcp.CallToolParams{Name: tool.Name, Arguments: map[string]any{"content": "x", "agent_id": "a", "prompt": "p"}})
		want := `{"error":{"code":"forbidden","message":"tool ` + tool.Name + ` needs role write; principal reader has role read"}}`
		if err != nil || !res.IsError || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != want {
			t.Errorf("reader calling %s: %v %+v, want %s", tool.Name, err, res, want)
		}
	}
	if m.store.Len() != 0 {
		t.Fatalf("refused calls stored %d contexts", m.store.Len())
	}
	res, err := writer.CallTool(t.Context(), &mcp.CallToolParams{Name: "store_context", Arguments: map[string]any{"content": "from the writer"}})
	if err != nil || res.IsError {
		t.Fatalf("writer storing: %v %+v", err, res)
	}
	res, err = reader.CallTool(t.Context(), &mcp.CallToolParams{Name: "list_contexts", Arguments: map[string]any{}})
	if err != nil || res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "from the writer") {
		t.Fatalf("reader listing: %v %+v", err, res)
	}
}
