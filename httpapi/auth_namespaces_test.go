package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
	"github.com/nexus-mem/nexus/recovery"
)

// nsAccess is how a route meets the namespaces of its principal.
type nsAccess int

const (
	// nsNone: the route names no namespace (admin, health, metrics,
	// agents): only the role counts.
	nsNone nsAccess = iota
	// nsRead: it reads one thing of the namespace, named by id: a
	// principal that may not read the namespace is told it does not
	// exist, 404 not_found.
	nsRead
	// nsFilter: its request names the namespace as a filter: a principal
	// that may not read it is refused, 403 forbidden.
	nsFilter
	// nsWrite: it writes into the namespace: a principal that may not
	// write it is refused, 403 forbidden.
	nsWrite
	// nsReadWrite: it reads a context of the namespace (404 not_found
	// when unreadable) and stores an answer next to it (403 forbidden
	// when unwritable).
	nsReadWrite
	// nsClaim: it hands out work of the namespaces the principal may
	// write: for one it may not, there is none to give, 204.
	nsClaim
	// nsIncidents: it lists the node's incidents, whatever namespace the
	// case is about: a principal that may not read the namespace
	// incidents is refused, 403 forbidden.
	nsIncidents
	// nsIncident: it reads one incident by id: a principal that may not
	// read the namespace incidents is told it does not exist, 404.
	nsIncident
)

// nsFixture is a node with principals of every role limited to team-a or
// allowed every namespace, a context (stored by the node itself) and a
// task in each of team-a and team-b, and a command agent of its own.
type nsFixture struct {
	t    *testing.T
	n    *nodetest.Node
	tok  map[string]string // by principal name
	root string            // the token of admin-all, for setting up
	ctx  map[string]string // a seeded context's id, by namespace
	task map[string]string // a seeded task's id, by namespace
	seq  int               // makes agent ids and capabilities unique
	// incident is the id of an incident the node recorded.
	incident string
}

// nsPrincipals are the principals of the test: each role, limited to
// team-a or with every namespace ("*").
var nsPrincipals = func() []*nexus.Principal {
	var ps []*nexus.Principal
	for _, role := range []nexus.Role{nexus.RoleRead, nexus.RoleWrite, nexus.RoleAdmin} {
		for _, scope := range []string{"team-a", "*"} {
			p := &nexus.Principal{Name: string(role) + "-" + map[string]string{"team-a": "team-a", "*": "all"}[scope], Role: role, Read: []string{scope}}
			if role != nexus.RoleRead {
				p.Write = []string{scope}
			}
			ps = append(ps, p)
		}
	}
	return ps
}()

var nsNamespaces = []string{"team-a", "team-b"}

func newNSFixture(t *testing.T) *nsFixture {
	t.Helper()
	dir := t.TempDir()
	// The node's own agent: a command that answers every request.
	script := filepath.Join(dir, "echo.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncat >/dev/null\necho '{\"content\":\"noted\"}'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	yaml := "agents:\n  - id: scribe\n    provider: command\n    command: " + script +
		"\n    capabilities: [echo]\n    probe: [/bin/true]\n    heartbeat: {interval: 0s}\n"
	file := filepath.Join(dir, "nexus.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cf, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := nodetest.Config(t)
	cfg.File = cf
	f := &nsFixture{t: t, tok: map[string]string{}, ctx: map[string]string{}, task: map[string]string{}}
	tf := &auth.File{}
	for _, p := range nsPrincipals {
		tok, err := tf.Create(*p, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		f.tok[p.Name] = tok
	}
	f.root = f.tok["admin-all"]
	if err := tf.Save(node.TokensFile(cfg.Dir)); err != nil {
		t.Fatal(err)
	}
	f.n = nodetest.Open(t, cfg)
	for _, ns := range nsNamespaces {
		c, err := f.n.Store().Put(context.Background(), nexus.Draft{Namespace: ns, Type: nexus.TypeMemory, Content: "The seed of " + ns + "."})
		if err != nil {
			t.Fatal(err)
		}
		f.ctx[ns] = c.ID.String()
		f.task[ns] = f.newTask(ns, "seed")
	}
	inc, err := f.n.Store().Put(context.Background(), recovery.DetectionDraft(recovery.Detection{
		Component: nexus.ComponentIndex, Cause: "saved index: docs.bin is missing", FoundBy: "the periodic check", At: time.Now()}))
	if err != nil {
		t.Fatal(err)
	}
	f.incident = inc.ID.String()
	// Wait for the index to hold the seeds, so that related and search
	// find them.
	if code, body := f.call(f.root, "POST", "/v1/search", map[string]any{"query": "seed", "consistent": true}); code != 200 ||
		!strings.Contains(string(body), f.ctx["team-a"]) || !strings.Contains(string(body), f.ctx["team-b"]) {
		t.Fatalf("search for the seeds: %d %s", code, body)
	}
	return f
}

// call sends a request as the holder of tok, with body as JSON (every
// request but GET, even without body, says it is JSON), and returns the
// status and the body.
func (f *nsFixture) call(tok, method, path string, body any) (int, []byte) {
	f.t.Helper()
	resp := f.send(context.Background(), tok, method, path, body)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, b
}

func (f *nsFixture) send(ctx context.Context, tok, method, path string, body any) *http.Response {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, f.n.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	if path == "/mcp" {
		req.Header.Set("Accept", "application/json, text/event-stream")
	}
	resp, err := f.n.HTTP.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// must sends a request of the set-up as the holder of tok and decodes its
// answer, which must have status want.
func (f *nsFixture) must(tok, method, path string, body any, want int, out any) {
	f.t.Helper()
	code, b := f.call(tok, method, path, body)
	if code != want {
		f.t.Fatalf("set-up: %s %s: %d %s, want %d", method, path, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("set-up: %s %s: %v", method, path, err)
		}
	}
}

// unique returns a name no other case uses.
func (f *nsFixture) unique(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s-%d", prefix, f.seq)
}

// newTask creates a task in ns for agents of capability capab, as
// admin-all.
func (f *nsFixture) newTask(ns, capab string) string {
	var t struct{ ID string }
	f.must(f.root, "POST", "/v1/tasks", map[string]any{"content": "Work in " + ns + ".", "namespace": ns, "capability": capab}, 201, &t)
	return t.ID
}

// claimed is a task of ns claimed by p if p may claim it, else by
// admin-all: its id, the claiming agent and the claim's token.
func (f *nsFixture) claimed(p *nexus.Principal, ns string) (id, agentID, claim string) {
	capab := f.unique("cap")
	id = f.newTask(ns, capab)
	holder := p.Name
	if !p.CanWrite(ns) {
		holder = "admin-all"
	}
	agentID = f.unique("agent")
	f.must(f.tok[holder], "POST", "/v1/agents", map[string]any{"id": agentID, "capabilities": []string{capab}}, 201, nil)
	var t struct{ ID, Claim string }
	f.must(f.tok[holder], "POST", "/v1/tasks/claim", map[string]any{"agent_id": agentID}, 200, &t)
	if t.ID != id || t.Claim == "" {
		f.t.Fatalf("set-up: %s claimed %+v, want task %s with a token", holder, t, id)
	}
	return id, agentID, t.Claim
}

// nsRequest is what one case sends.
type nsRequest struct {
	method, path string
	body         any
}

// nsRoute is how the test exercises one route: how the route meets
// namespaces, the status it answers when allowed, and the request of
// principal p about namespace ns (set up as it needs). lists, if set,
// is the id the allowed answer holds exactly when p may read ns.
type nsRoute struct {
	access nsAccess
	ok     int
	req    func(f *nsFixture, p *nexus.Principal, ns string) nsRequest
	lists  func(f *nsFixture, ns string) string
}

func getFrom(path string) func(*nsFixture, *nexus.Principal, string) nsRequest {
	return func(*nsFixture, *nexus.Principal, string) nsRequest { return nsRequest{method: "GET", path: path} }
}

func postTo(path string, body any) func(*nsFixture, *nexus.Principal, string) nsRequest {
	return func(*nsFixture, *nexus.Principal, string) nsRequest {
		return nsRequest{method: "POST", path: path, body: body}
	}
}

// onContext is a request about the seeded context of the namespace.
func onContext(method, suffix string, body func(id string) any) func(*nsFixture, *nexus.Principal, string) nsRequest {
	return func(f *nsFixture, _ *nexus.Principal, ns string) nsRequest {
		r := nsRequest{method: method, path: "/v1/contexts/" + f.ctx[ns] + suffix}
		if body != nil {
			r.body = body(f.ctx[ns])
		}
		return r
	}
}

// registered is an agent id p registered, if it may register one.
func (f *nsFixture) registered(p *nexus.Principal) string {
	id := f.unique("agent")
	if p.Can(nexus.RoleWrite) {
		f.must(f.tok[p.Name], "POST", "/v1/agents", map[string]any{"id": id}, 201, nil)
	}
	return id
}

// nsRoutes is every route of the API, as this test exercises it.
var nsRoutes = map[string]nsRoute{
	"POST /v1/contexts": {nsWrite, 201, func(_ *nsFixture, _ *nexus.Principal, ns string) nsRequest {
		return nsRequest{"POST", "/v1/contexts", map[string]any{"namespace": ns, "type": "memory", "content": "Stored in " + ns + "."}}
	}, nil},
	"GET /v1/contexts": {nsFilter, 200, func(_ *nsFixture, _ *nexus.Principal, ns string) nsRequest {
		return nsRequest{method: "GET", path: "/v1/contexts?limit=1000&namespace=" + ns}
	}, func(f *nsFixture, ns string) string { return f.ctx[ns] }},
	"GET /v1/contexts/{id}":          {nsRead, 200, onContext("GET", "", nil), nil},
	"GET /v1/contexts/{id}/chain":    {nsRead, 200, onContext("GET", "/chain", nil), nil},
	"GET /v1/contexts/{id}/children": {nsRead, 200, onContext("GET", "/children", nil), nil},
	"GET /v1/contexts/{id}/related":  {nsRead, 200, onContext("GET", "/related", nil), nil},
	"POST /v1/search": {nsFilter, 200, func(_ *nsFixture, _ *nexus.Principal, ns string) nsRequest {
		return nsRequest{"POST", "/v1/search", map[string]any{"query": "seed", "namespace": ns, "limit": 100, "consistent": true}}
	}, func(f *nsFixture, ns string) string { return f.ctx[ns] }},
	"GET /v1/log":       {nsNone, 200, getFrom("/v1/log?limit=1000"), func(f *nsFixture, ns string) string { return f.ctx[ns] }},
	"GET /v1/incidents": {nsIncidents, 200, getFrom("/v1/incidents"), nil},
	"GET /v1/incidents/{id}": {nsIncident, 200, func(f *nsFixture, _ *nexus.Principal, _ string) nsRequest {
		return nsRequest{method: "GET", path: "/v1/incidents/" + f.incident}
	}, nil},
	"GET /livez":          {nsNone, 200, getFrom("/livez"), nil},
	"GET /health":         {nsNone, 200, getFrom("/health"), nil},
	"GET /metrics":        {nsNone, 200, getFrom("/metrics"), nil},
	"GET /readyz":         {nsNone, 200, getFrom("/readyz"), nil},
	"POST /v1/admin/fsck": {nsNone, 200, postTo("/v1/admin/fsck", nil), nil},
	"POST /v1/admin/restore": {nsNone, 200, func(f *nsFixture, _ *nexus.Principal, _ string) nsRequest {
		return nsRequest{"POST", "/v1/admin/restore", map[string]any{"at": time.Now().UTC(), "dry_run": true}}
	}, nil},
	"POST /v1/admin/recover": {nsNone, 200, postTo("/v1/admin/recover", nil), nil},
	"GET /v1/admin/audit":    {nsNone, 200, getFrom("/v1/admin/audit"), nil},
	"GET /v1/admin/history":  {nsNone, 200, getFrom("/v1/admin/history"), nil},
	"GET /v1/admin/chaos":    {nsNone, 409, getFrom("/v1/admin/chaos"), nil}, // the node did not opt in (chaos.enabled)
	"POST /v1/admin/chaos":   {nsNone, 409, postTo("/v1/admin/chaos", map[string]any{"scenario": "disk_fill"}), nil},
	"GET /v1/events": {nsFilter, 200, func(_ *nsFixture, _ *nexus.Principal, ns string) nsRequest {
		return nsRequest{method: "GET", path: "/v1/events?namespace=" + ns}
	}, nil},
	"GET /v1/openapi.json": {nsNone, 200, getFrom("/v1/openapi.json"), nil},
	"POST /v1/agents": {nsNone, 201, func(f *nsFixture, _ *nexus.Principal, _ string) nsRequest {
		return nsRequest{"POST", "/v1/agents", map[string]any{"id": f.unique("agent")}}
	}, nil},
	"GET /v1/agents":      {nsNone, 200, getFrom("/v1/agents"), nil},
	"GET /v1/agents/{id}": {nsNone, 200, getFrom("/v1/agents/scribe"), nil},
	"POST /v1/agents/{id}/heartbeat": {nsNone, 200, func(f *nsFixture, p *nexus.Principal, _ string) nsRequest {
		return nsRequest{method: "POST", path: "/v1/agents/" + f.registered(p) + "/heartbeat"}
	}, nil},
	"POST /v1/agents/{id}/process": {nsReadWrite, 201, func(f *nsFixture, _ *nexus.Principal, ns string) nsRequest {
		return nsRequest{"POST", "/v1/agents/scribe/process", map[string]any{"context_id": f.ctx[ns]}}
	}, nil},
	"POST /v1/agents/process": {nsReadWrite, 201, func(f *nsFixture, _ *nexus.Principal, ns string) nsRequest {
		return nsRequest{"POST", "/v1/agents/process", map[string]any{"context_id": f.ctx[ns], "capability": "echo"}}
	}, nil},
	"POST /v1/agents/{id}/generate": {nsWrite, 201, func(_ *nsFixture, _ *nexus.Principal, ns string) nsRequest {
		return nsRequest{"POST", "/v1/agents/scribe/generate", map[string]any{"prompt": "Say something.", "namespace": ns}}
	}, nil},
	"POST /v1/agents/generate": {nsWrite, 201, func(_ *nsFixture, _ *nexus.Principal, ns string) nsRequest {
		return nsRequest{"POST", "/v1/agents/generate", map[string]any{"prompt": "Say something.", "namespace": ns, "capability": "echo"}}
	}, nil},
	"POST /v1/tasks": {nsWrite, 201, func(_ *nsFixture, _ *nexus.Principal, ns string) nsRequest {
		return nsRequest{"POST", "/v1/tasks", map[string]any{"content": "More work.", "namespace": ns, "capability": "none-claims-it"}}
	}, nil},
	"GET /v1/tasks": {nsNone, 200, getFrom("/v1/tasks"), func(f *nsFixture, ns string) string { return f.task[ns] }},
	"GET /v1/tasks/{id}": {nsRead, 200, func(f *nsFixture, _ *nexus.Principal, ns string) nsRequest {
		return nsRequest{method: "GET", path: "/v1/tasks/" + f.task[ns]}
	}, nil},
	"POST /v1/tasks/claim": {nsClaim, 200, func(f *nsFixture, p *nexus.Principal, ns string) nsRequest {
		// The only task the agent can serve is the new one, of ns.
		capab := f.unique("cap")
		f.newTask(ns, capab)
		id := f.unique("agent")
		if p.Can(nexus.RoleWrite) {
			f.must(f.tok[p.Name], "POST", "/v1/agents", map[string]any{"id": id, "capabilities": []string{capab}}, 201, nil)
		}
		return nsRequest{"POST", "/v1/tasks/claim", map[string]any{"agent_id": id}}
	}, nil},
	"POST /v1/tasks/{id}/complete": {nsRead, 200, func(f *nsFixture, p *nexus.Principal, ns string) nsRequest {
		// The task is claimed by p if it may, else by admin-all: p sends
		// the real token either way.
		id, agentID, claim := f.claimed(p, ns)
		return nsRequest{"POST", "/v1/tasks/" + id + "/complete", map[string]any{"agent_id": agentID, "claim": claim, "content": "Done."}}
	}, nil},
	"POST /v1/tasks/{id}/fail": {nsRead, 200, func(f *nsFixture, p *nexus.Principal, ns string) nsRequest {
		id, agentID, claim := f.claimed(p, ns)
		return nsRequest{"POST", "/v1/tasks/" + id + "/fail", map[string]any{"agent_id": agentID, "claim": claim, "reason": "Cannot."}}
	}, nil},
	// A single node is no cluster: its cluster routes answer 404
	// not_found to every principal allowed to ask.
	"GET /v1/cluster": {nsNone, 404, getFrom("/v1/cluster"), nil},
	"POST /v1/cluster/join": {nsNone, 404, postTo("/v1/cluster/join",
		map[string]any{"id": "n9", "raft_addr": "127.0.0.1:7000", "api_url": "http://127.0.0.1:7411"}), nil},
	"DELETE /v1/cluster/members/{id}": {nsNone, 404, func(*nsFixture, *nexus.Principal, string) nsRequest {
		return nsRequest{method: "DELETE", path: "/v1/cluster/members/n9"}
	}, nil},
	"POST /v1/cluster/transfer-leadership": {nsNone, 404, postTo("/v1/cluster/transfer-leadership", map[string]any{}), nil},
	// The console's session: a login with the principal's own token, who
	// the bearer credential is, and a logout with no session to end.
	"POST /v1/session": {nsNone, 200, func(f *nsFixture, p *nexus.Principal, _ string) nsRequest {
		return nsRequest{"POST", "/v1/session", map[string]any{"token": f.tok[p.Name]}}
	}, nil},
	"GET /v1/session": {nsNone, 200, getFrom("/v1/session"), nil},
	"DELETE /v1/session": {nsNone, 204, func(*nsFixture, *nexus.Principal, string) nsRequest {
		return nsRequest{method: "DELETE", path: "/v1/session"}
	}, nil},
	"/mcp": {nsNone, 200, postTo("/mcp", map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize",
		"params": map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{}, "clientInfo": map[string]any{"name": "test", "version": "1"}}}), nil},
}

// expected is the status (and error code) of route r, of least role
// need, for principal p about namespace ns.
func expected(r nsRoute, need nexus.Role, p *nexus.Principal, ns string) (int, nexus.Code) {
	if !p.Can(need) {
		return 403, nexus.EForbidden
	}
	switch r.access {
	case nsRead:
		if !p.CanRead(ns) {
			return 404, nexus.ENotFound
		}
	case nsFilter:
		if !p.CanRead(ns) {
			return 403, nexus.EForbidden
		}
	case nsWrite:
		if !p.CanWrite(ns) {
			return 403, nexus.EForbidden
		}
	case nsReadWrite:
		if !p.CanRead(ns) {
			return 404, nexus.ENotFound
		}
		if !p.CanWrite(ns) {
			return 403, nexus.EForbidden
		}
	case nsClaim:
		if !p.CanWrite(ns) {
			return 204, ""
		}
	case nsIncidents:
		if !p.CanRead(recovery.IncidentsNamespace) {
			return 403, nexus.EForbidden
		}
	case nsIncident:
		if !p.CanRead(recovery.IncidentsNamespace) {
			return 404, nexus.ENotFound
		}
	}
	if r.ok == 404 {
		return 404, nexus.ENotFound // a route a single node does not serve
	}
	return r.ok, ""
}

// Every registered route × every role × the namespaces a principal may
// and may not use, over a whole node: the exact status of each. A
// principal below the route's role is 403 forbidden; a context or task
// of a namespace it may not read is 404 not_found, as if it did not
// exist; a filter naming such a namespace is 403 forbidden, and so is a
// write into a namespace it may not write; a claim finds no task of
// such a namespace (204). Listings hold what the principal may read.
// A route the table lacks fails the test.
func TestServer_routeRolesNamespaces(t *testing.T) {
	f := newNSFixture(t)
	patterns := httpapi.Patterns(f.n.Handler().(*httpapi.Server))
	cases := 0
	for _, pattern := range patterns {
		r, ok := nsRoutes[pattern]
		need, known := wantRoles[pattern]
		if !ok || !known {
			t.Errorf("route %q is not in nsRoutes and wantRoles: say how it meets roles and namespaces", pattern)
			continue
		}
		namespaces := nsNamespaces
		if r.access == nsNone && r.lists == nil {
			namespaces = namespaces[:1] // the namespace plays no part
		}
		for _, p := range nsPrincipals {
			for _, ns := range namespaces {
				cases++
				want, code := expected(r, need, p, ns)
				req := r.req(f, p, ns)
				status, body := f.exchange(p, req)
				what := fmt.Sprintf("%s as %s about %s", pattern, p.Name, ns)
				if status != want {
					t.Errorf("%s: %d %s, want %d %s", what, status, clip(body), want, code)
					continue
				}
				if code != "" {
					var e nexus.ErrorBody
					if json.Unmarshal(body, &e) != nil || e.Error.Code != code {
						t.Errorf("%s: %d %s, want code %s", what, status, clip(body), code)
					}
				}
				if r.lists != nil && status == r.ok {
					if id := r.lists(f, ns); strings.Contains(string(body), id) != p.CanRead(ns) {
						t.Errorf("%s: the answer holds %s (of %s): %v, want %v", what, id, ns, !p.CanRead(ns), p.CanRead(ns))
					}
				}
			}
		}
	}
	t.Logf("%d routes, %d requests", len(patterns), cases)
	for p := range nsRoutes {
		if !slices.Contains(patterns, p) {
			t.Errorf("nsRoutes lists %q, which is not a route", p)
		}
	}
}

// exchange sends req as p and returns the status and the body; of an
// event stream, only the status (the stream is closed once it starts).
func (f *nsFixture) exchange(p *nexus.Principal, req nsRequest) (int, []byte) {
	f.t.Helper()
	if !strings.HasPrefix(req.path, "/v1/events") {
		return f.call(f.tok[p.Name], req.method, req.path, req.body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := f.send(ctx, f.tok[p.Name], req.method, req.path, req.body)
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		return 200, nil
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// clip shortens an answer for a message.
func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
