package mcpserver_test

import (
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/mcpserver"
)

// Over /mcp behind principals, every tool the server offers has a role;
// tools/list shows each principal exactly the tools its role can call; a
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
	readTools := []string{"get_chain", "get_context", "list_contexts", "related_contexts", "search_contexts"}
	writeTools := []string{"claim_task", "complete_task", "create_task", "fail_task", "generate_context", "get_chain", "get_context",
		"heartbeat_agent", "list_contexts", "process_context", "register_agent", "related_contexts", "search_contexts", "store_context"}
	if got := toolNames(t, reader); !slices.Equal(got, readTools) {
		t.Errorf("tools/list for the reader:\n%q\nwant\n%q", got, readTools)
	}
	if got := toolNames(t, writer); !slices.Equal(got, writeTools) {
		t.Errorf("tools/list for the writer:\n%q\nwant\n%q", got, writeTools)
	}
	list, err := writer.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
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
		// The reader is not shown the tool, and is refused it when it calls
		// it anyway. Arguments that would do something: the refusal comes
		// first.
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

// toolNames is what tools/list shows cs, by name, sorted; the list is
// marked private to the principal.
func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	list, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if list.CacheScope != "private" || list.NextCursor != "" {
		t.Errorf("tools/list: cache scope %q, next cursor %q; want private, none", list.CacheScope, list.NextCursor)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}
