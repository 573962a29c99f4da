package mcpserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/mcpserver"
	"github.com/nexus-mem/nexus/search"
)

const token = "mcp-test-token"

// memory is an on-disk store with its search engine.
type memory struct {
	store  *gitstore.Store
	engine *search.Engine
}

func newMemory(t *testing.T) memory {
	t.Helper()
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := search.Open(st, embed.NewHashing(128), search.Options{})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); st.Close() })
	return memory{st, e}
}

// connect runs s over an in-memory transport and returns a client session.
func connect(t *testing.T, s *mcp.Server) *mcp.ClientSession {
	t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	ss, err := s.Connect(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Wait() })
	return cs
}

// bearer adds a token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// serveHTTP serves m over the HTTP API with the MCP endpoint, behind token.
func serveHTTP(t *testing.T, m memory) *httptest.Server {
	t.Helper()
	h := mcpserver.NewHandler(mcpserver.New(m.store, m.engine, mcpserver.Options{}), 0)
	srv := httptest.NewServer(httpapi.NewServer(m.store, httpapi.Options{Token: token, Searcher: m.engine, MCP: h}))
	t.Cleanup(srv.Close)
	return srv
}

// connectHTTP connects to /mcp of srv with the streamable transport.
func connectHTTP(t *testing.T, url, tok string) (*mcp.ClientSession, error) {
	tr := &mcp.StreamableClientTransport{Endpoint: url + "/mcp", HTTPClient: &http.Client{Transport: bearer{tok}}, MaxRetries: -1}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(t.Context(), tr, nil)
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

// The tools and resources behave the same whichever way they are wired:
// over the on-disk store (with the node's task queue and agents), over an
// HTTP client of a server (as `nexus mcp` runs), and over streamable HTTP
// at /mcp behind the API's token.
func TestServer_conformance(t *testing.T) {
	wirings := map[string]func(t *testing.T, m memory, n *node) *mcp.ClientSession{
		"disk": func(t *testing.T, m memory, n *node) *mcp.ClientSession {
			return connect(t, mcpserver.New(m.store, m.engine, mcpserver.Options{Agent: "tester", Agents: mcpserver.LocalAgents(n.queue, n.orch)}))
		},
		"client": func(t *testing.T, m memory, n *node) *mcp.ClientSession {
			srv := httptest.NewServer(httpapi.NewServer(m.store, httpapi.Options{Token: token, Searcher: m.engine, Tasks: n.queue, Agents: n.orch}))
			t.Cleanup(srv.Close)
			c := httpapi.NewClient(srv.URL, httpapi.WithToken(token))
			return connect(t, mcpserver.New(c, c, mcpserver.Options{Agent: "tester"})) // the client is the Agents
		},
		"streamable": func(t *testing.T, m memory, n *node) *mcp.ClientSession {
			h := mcpserver.NewHandler(mcpserver.New(m.store, m.engine, mcpserver.Options{Agent: "tester", Agents: mcpserver.LocalAgents(n.queue, n.orch)}), 0)
			srv := httptest.NewServer(httpapi.NewServer(m.store, httpapi.Options{Token: token, Searcher: m.engine, MCP: h}))
			t.Cleanup(srv.Close)
			cs, err := connectHTTP(t, srv.URL, token)
			if err != nil {
				t.Fatal(err)
			}
			return cs
		},
	}
	for name, wire := range wirings {
		t.Run(name, func(t *testing.T) {
			m := newMemory(t)
			n := newNode(t, m.store)
			cs := wire(t, m, n)
			t.Run("tools", func(t *testing.T) { checkToolList(t, cs) })
			th := storeThread(t, cs)
			t.Run("read", func(t *testing.T) { checkReads(t, cs, th) })
			t.Run("search", func(t *testing.T) { checkSearch(t, cs, th) })
			t.Run("content", func(t *testing.T) { checkContent(t, cs) })
			t.Run("errors", func(t *testing.T) { checkErrors(t, cs, th) })
			t.Run("resources", func(t *testing.T) { checkResources(t, cs, th) })
			t.Run("tasks", func(t *testing.T) { checkTasks(t, cs, n) })
			t.Run("process", func(t *testing.T) { checkProcess(t, cs, th) })
			t.Run("generate", func(t *testing.T) { checkGenerate(t, cs, th) })
		})
	}
}

var (
	allTools = []string{
		"claim_task", "complete_task", "create_task", "fail_task", "generate_context", "get_chain", "get_context", "heartbeat_agent",
		"list_contexts", "process_context", "register_agent", "related_contexts", "search_contexts", "store_context",
	}
	writeTools = []string{"claim_task", "complete_task", "create_task", "fail_task", "generate_context", "heartbeat_agent", "process_context", "register_agent", "store_context"}
)

func checkToolList(t *testing.T, cs *mcp.ClientSession) {
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		in, _ := tool.InputSchema.(map[string]any)
		out, _ := tool.OutputSchema.(map[string]any)
		if in["type"] != "object" || out["type"] != "object" || in["additionalProperties"] != false || len(tool.Description) < 40 {
			t.Errorf("%s: input %v, output %v, description %q", tool.Name, in, out, tool.Description)
		}
		if tool.Annotations == nil || tool.Annotations.ReadOnlyHint == slices.Contains(writeTools, tool.Name) {
			t.Errorf("%s: annotations %+v", tool.Name, tool.Annotations)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, allTools) {
		t.Fatalf("tools %v, want %v", names, allTools)
	}
}

// call calls a tool that must succeed and decodes its structured result
// into out, checking that the text content says the same.
func call(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any, out any) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("%s %v: error result %s", name, args, contentText(res))
	}
	var fromText any
	if err := json.Unmarshal([]byte(contentText(res)), &fromText); err != nil {
		t.Fatalf("%s: text is not JSON: %v", name, err)
	}
	if !reflect.DeepEqual(fromText, res.StructuredContent) {
		t.Fatalf("%s: text %v differs from structured content %v", name, fromText, res.StructuredContent)
	}
	b, _ := json.Marshal(res.StructuredContent)
	reflect.ValueOf(out).Elem().SetZero() // absent fields must not keep older values
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func contentText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// toolError calls a tool that must fail and returns the error's code and
// message.
func toolError(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) (nexus.Code, string) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s %v: protocol error %v, want a tool error", name, args, err)
	}
	var body struct {
		Error struct {
			Code    nexus.Code `json:"code"`
			Message string     `json:"message"`
		} `json:"error"`
	}
	if !res.IsError || json.Unmarshal([]byte(contentText(res)), &body) != nil || body.Error.Code == "" {
		t.Fatalf("%s %v: want an error result, got %s", name, args, contentText(res))
	}
	return body.Error.Code, body.Error.Message
}

// thread is a root, its child and grandchild, and an unrelated context.
type thread struct {
	root, child, leaf, other nexus.Context
}

func storeThread(t *testing.T, cs *mcp.ClientSession) thread {
	var th thread
	call(t, cs, "store_context", map[string]any{
		"content": "Use PostgreSQL for the ledger: it needs transactions.", "type": "decision",
		"namespace": "ledger", "metadata": map[string]any{"area": "db", "prio": 2},
	}, &th.root)
	call(t, cs, "store_context", map[string]any{"content": "Benchmarked PostgreSQL inserts: 40k/s.", "type": "observation", "parent_id": th.root.ID.String()}, &th.child)
	call(t, cs, "store_context", map[string]any{"content": "Ledger schema migrated.", "type": "result", "parent_id": th.child.ID.String(), "agent_id": "migrator"}, &th.leaf)
	call(t, cs, "store_context", map[string]any{"content": "Lunch is at noon on Fridays."}, &th.other)
	want := nexus.Context{Namespace: "ledger", Type: nexus.TypeDecision, AgentID: "tester", Metadata: json.RawMessage(`{"area":"db","prio":2}`),
		Content: "Use PostgreSQL for the ledger: it needs transactions."}
	got := th.root
	if got.ID.IsZero() || got.Timestamp.IsZero() || got.Verify() != nil {
		t.Fatalf("stored %+v: %v", got, got.Verify())
	}
	got.ID, got.Timestamp, got.SemanticHash = nexus.ZeroID, want.Timestamp, ""
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stored %+v, want %+v", got, want)
	}
	if th.child.Namespace != "ledger" || th.child.ParentID != th.root.ID || th.leaf.AgentID != "migrator" {
		t.Fatalf("child %+v, leaf %+v: the namespace follows the parent, agent_id is kept", th.child, th.leaf)
	}
	if th.other.Type != nexus.TypeMemory || th.other.Namespace != nexus.DefaultNamespace {
		t.Fatalf("defaults: %+v", th.other)
	}
	return th
}

func checkReads(t *testing.T, cs *mcp.ClientSession, th thread) {
	var got nexus.Context
	call(t, cs, "get_context", map[string]any{"id": strings.ToLower(th.child.ID.String())}, &got)
	if !reflect.DeepEqual(got, th.child) {
		t.Fatalf("get %+v, want %+v", got, th.child)
	}
	var chain struct{ Contexts []nexus.Context }
	call(t, cs, "get_chain", map[string]any{"id": th.leaf.ID.String()}, &chain)
	if ids(chain.Contexts...) != ids(th.leaf, th.child, th.root) {
		t.Fatalf("chain %s", ids(chain.Contexts...))
	}
	call(t, cs, "get_chain", map[string]any{"id": th.leaf.ID.String(), "limit": 2}, &chain)
	if ids(chain.Contexts...) != ids(th.leaf, th.child) {
		t.Fatalf("chain limit 2: %s", ids(chain.Contexts...))
	}
	var page struct {
		Contexts   []nexus.Context
		NextCursor string `json:"next_cursor"`
	}
	call(t, cs, "list_contexts", map[string]any{"namespace": "ledger", "order": "asc", "limit": 2}, &page)
	if ids(page.Contexts...) != ids(th.root, th.child) || page.NextCursor == "" {
		t.Fatalf("first page %s %q", ids(page.Contexts...), page.NextCursor)
	}
	call(t, cs, "list_contexts", map[string]any{"namespace": "ledger", "order": "asc", "cursor": page.NextCursor}, &page)
	if ids(page.Contexts...) != ids(th.leaf) || page.NextCursor != "" {
		t.Fatalf("second page %s %q", ids(page.Contexts...), page.NextCursor)
	}
	call(t, cs, "list_contexts", map[string]any{}, &page)
	if ids(page.Contexts...) != ids(th.other, th.leaf, th.child, th.root) {
		t.Fatalf("newest first: %s", ids(page.Contexts...))
	}
	call(t, cs, "list_contexts", map[string]any{"type": "observation", "parent_id": th.root.ID.String(), "since": th.root.Timestamp.Format("2006-01-02T15:04:05.999999999Z07:00")}, &page)
	if ids(page.Contexts...) != ids(th.child) {
		t.Fatalf("filtered: %s", ids(page.Contexts...))
	}
}

// newID returns an id that no store assigned.
func newID() string {
	var g nexus.IDGenerator
	return g.New(time.Now()).String()
}

// ids joins the ids of cs.
func ids(cs ...nexus.Context) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.ID.String()
	}
	return strings.Join(s, " ")
}

type hits struct {
	Hits []struct {
		Context nexus.Context
		Score   float64
		Matched []string
		Snippet string
	}
	Mode     nexus.SearchMode
	IndexLag int `json:"index_lag"`
}

func (h hits) ids() string {
	cs := make([]nexus.Context, len(h.Hits))
	for i, x := range h.Hits {
		cs[i] = x.Context
	}
	return ids(cs...)
}

func checkSearch(t *testing.T, cs *mcp.ClientSession, th thread) {
	var res hits
	call(t, cs, "search_contexts", map[string]any{"query": "PostgreSQL ledger", "consistent": true}, &res)
	if len(res.Hits) < 2 || res.Mode != nexus.Hybrid || res.IndexLag != 0 || res.Hits[0].Snippet == "" || len(res.Hits[0].Matched) == 0 {
		t.Fatalf("hybrid search: %+v", res)
	}
	if top := res.Hits[0].Context.ID; top != th.root.ID && top != th.child.ID {
		t.Fatalf("hybrid search ranks %s first", top)
	}
	call(t, cs, "search_contexts", map[string]any{"query": "PostgreSQL", "mode": "keyword", "metadata": map[string]any{"area": "db", "prio": 2}}, &res)
	if res.ids() != ids(th.root) || res.Mode != nexus.Keyword {
		t.Fatalf("keyword search with metadata: %+v", res)
	}
	call(t, cs, "search_contexts", map[string]any{"query": "ledger schema PostgreSQL", "thread_id": th.leaf.ID.String(), "type": "result"}, &res)
	if res.ids() != ids(th.leaf) {
		t.Fatalf("thread and type filters: %s", res.ids())
	}
	call(t, cs, "search_contexts", map[string]any{"query": "PostgreSQL", "as_of": th.root.Timestamp.Add(-1).Format("2006-01-02T15:04:05.999999999Z07:00")}, &res)
	if len(res.Hits) != 0 {
		t.Fatalf("as_of before the first write: %s", res.ids())
	}
	call(t, cs, "related_contexts", map[string]any{"id": th.root.ID.String(), "limit": 2}, &res)
	if len(res.Hits) != 2 || strings.Contains(res.ids(), th.root.ID.String()) || res.Mode != nexus.Semantic {
		t.Fatalf("related: %+v", res)
	}
	call(t, cs, "related_contexts", map[string]any{"id": th.root.ID.String(), "type": "result", "namespace": "ledger"}, &res)
	if res.ids() != ids(th.leaf) {
		t.Fatalf("related with filters: %s", res.ids())
	}
}

// Listings cut long content unless asked; reads never do; text keeps
// markup unescaped.
func checkContent(t *testing.T, cs *mcp.ClientSession) {
	long := strings.Repeat("é<b>&", 1000) // 5000 runes
	var c nexus.Context
	call(t, cs, "store_context", map[string]any{"content": long, "namespace": "long"}, &c)
	var page struct {
		Contexts []struct {
			Content          string
			ContentTruncated bool `json:"content_truncated"`
		}
	}
	call(t, cs, "list_contexts", map[string]any{"namespace": "long"}, &page)
	if got := page.Contexts[0]; utf8.RuneCountInString(got.Content) != 2000 || !got.ContentTruncated || !strings.HasPrefix(long, got.Content) {
		t.Fatalf("preview: %d runes, truncated %v", utf8.RuneCountInString(got.Content), got.ContentTruncated)
	}
	call(t, cs, "list_contexts", map[string]any{"namespace": "long", "full_content": true}, &page)
	if got := page.Contexts[0]; got.Content != long || got.ContentTruncated {
		t.Fatalf("full content: %d runes, truncated %v", utf8.RuneCountInString(got.Content), got.ContentTruncated)
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "get_context", Arguments: map[string]any{"id": c.ID.String()}})
	if err != nil || !strings.Contains(contentText(res), long) {
		t.Fatalf("get_context text lacks the content unescaped: %v", err)
	}
}

func checkErrors(t *testing.T, cs *mcp.ClientSession, th thread) {
	missing := newID()
	cases := []struct {
		tool string
		args map[string]any
		code nexus.Code
		msg  string
	}{
		{"get_context", map[string]any{"id": "../../etc/passwd"}, nexus.EInvalid, `id: invalid id "../../etc/passwd"`},
		{"get_context", map[string]any{"id": ""}, nexus.EInvalid, "id is required"},
		{"get_context", map[string]any{}, nexus.EInvalid, `missing properties: ["id"]`},
		{"get_context", map[string]any{"id": missing}, nexus.ENotFound, missing},
		{"get_chain", map[string]any{"id": missing}, nexus.ENotFound, missing},
		{"get_chain", map[string]any{"id": th.leaf.ID.String(), "limit": 0}, nexus.EInvalid, "limit: minimum: 0 is less than 1"},
		{"related_contexts", map[string]any{"id": missing}, nexus.ENotFound, missing},
		{"search_contexts", map[string]any{"query": "x", "limit": 1000}, nexus.EInvalid, "limit: maximum: 1000 is greater than 100"},
		{"search_contexts", map[string]any{"query": "x", "limit": "ten"}, nexus.EInvalid, "limit: type"},
		{"search_contexts", map[string]any{"query": "x", "mode": "fuzzy"}, nexus.EInvalid, "mode: enum"},
		{"search_contexts", map[string]any{"query": "x", "metadata": map[string]any{"k": []any{1}}}, nexus.EInvalid, "metadata"},
		{"search_contexts", map[string]any{"query": "x", "thread_id": "nope"}, nexus.EInvalid, "thread_id: invalid id"},
		{"search_contexts", map[string]any{"query": "x", "until": "tomorrow"}, nexus.EInvalid, "until: want an RFC 3339 time"},
		{"search_contexts", map[string]any{"query": "x", "colour": "red"}, nexus.EInvalid, `unexpected additional properties ["colour"]`},
		{"list_contexts", map[string]any{"limit": 5000}, nexus.EInvalid, "limit: maximum: 5000 is greater than 1000"},
		{"list_contexts", map[string]any{"cursor": "zzz"}, nexus.EInvalid, "invalid cursor"},
		{"store_context", map[string]any{"content": ""}, nexus.EInvalid, "content is empty"},
		{"store_context", map[string]any{"content": "x", "type": "poem"}, nexus.EInvalid, "type: enum"},
		{"store_context", map[string]any{"content": "x", "namespace": "Bad NS"}, nexus.EInvalid, `invalid namespace "Bad NS"`},
		{"store_context", map[string]any{"content": "x", "metadata": "tags"}, nexus.EInvalid, "metadata: type"},
		{"store_context", map[string]any{"content": "x", "parent_id": missing}, nexus.EInvalid, "parent " + missing + " does not exist"},
		{"store_context", map[string]any{"content": "x", "parent_id": th.root.ID.String(), "namespace": "other"}, nexus.EInvalid, "a thread stays in one namespace"},
	}
	for _, c := range cases {
		code, msg := toolError(t, cs, c.tool, c.args)
		if code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s %v: %s %q, want %s containing %q", c.tool, c.args, code, msg, c.code, c.msg)
		}
	}
	_, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "delete_everything", Arguments: map[string]any{}})
	if err == nil {
		t.Error("an unknown tool is not a protocol error")
	}
}

func checkResources(t *testing.T, cs *mcp.ClientSession, th thread) {
	tl, err := cs.ListResourceTemplates(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, rt := range tl.ResourceTemplates {
		uris = append(uris, rt.URITemplate+" "+rt.MIMEType)
	}
	slices.Sort(uris)
	if want := []string{"nexus://contexts/{id} application/json", "nexus://threads/{id} application/json"}; !slices.Equal(uris, want) {
		t.Fatalf("templates %v", uris)
	}
	read := func(uri string, out any) error {
		res, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: uri})
		if err != nil {
			return err
		}
		if len(res.Contents) != 1 || res.Contents[0].URI != uri || res.Contents[0].MIMEType != "application/json" {
			t.Fatalf("%s: contents %+v", uri, res.Contents)
		}
		return json.Unmarshal([]byte(res.Contents[0].Text), out)
	}
	var c nexus.Context
	if err := read("nexus://contexts/"+th.child.ID.String(), &c); err != nil || !reflect.DeepEqual(c, th.child) {
		t.Fatalf("context resource: %v %+v", err, c)
	}
	var thr struct{ Contexts []nexus.Context }
	if err := read("nexus://threads/"+th.leaf.ID.String(), &thr); err != nil || ids(thr.Contexts...) != ids(th.root, th.child, th.leaf) {
		t.Fatalf("thread resource, root first: %v %s", err, ids(thr.Contexts...))
	}
	for uri, code := range map[string]nexus.Code{
		"nexus://contexts/" + newID(): nexus.ENotFound,
		"nexus://threads/0123":        nexus.EInvalid,
	} {
		err := read(uri, &c)
		var rpc *jsonrpc.Error
		var data struct{ Code nexus.Code }
		if !errors.As(err, &rpc) || rpc.Code != jsonrpc.CodeInvalidParams || json.Unmarshal(rpc.Data, &data) != nil || data.Code != code {
			t.Errorf("%s: %v, want JSON-RPC invalid params with code %s", uri, err, code)
		}
	}
}

// Without a searcher, the search tools are not offered at all.
func TestNew_noSearcher(t *testing.T) {
	m := newMemory(t)
	cs := connect(t, mcpserver.New(m.store, nil, mcpserver.Options{}))
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if want := []string{"get_chain", "get_context", "list_contexts", "store_context"}; !slices.Equal(names, want) {
		t.Fatalf("tools %v, want %v", names, want)
	}
}

// /mcp is behind the API's token, answers stateless POSTs only, and an
// unreachable store comes back as a tool error with code unavailable.
func TestNewHandler_auth(t *testing.T) {
	m := newMemory(t)
	srv := serveHTTP(t, m)
	if _, err := connectHTTP(t, srv.URL, "wrong"); err == nil {
		t.Fatal("connected with a wrong token")
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET /mcp: %d %v", resp.StatusCode, resp.Header)
	}
	gone := httpapi.NewClient("http://127.0.0.1:1") // nothing listens on port 1
	cs := connect(t, mcpserver.New(gone, gone, mcpserver.Options{}))
	if code, _ := toolError(t, cs, "get_context", map[string]any{"id": newID()}); code != nexus.EUnavailable {
		t.Fatalf("unreachable server: %s", code)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_contexts"}); err == nil {
		t.Fatal("a cancelled call succeeded")
	}
}
