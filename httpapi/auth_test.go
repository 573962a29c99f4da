package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

// wantRoles is the least role of every route, written out here apart from
// the server's table: a route added without a role, or with another one,
// fails TestServer_routeRoles.
var wantRoles = map[string]nexus.Role{
	"POST /v1/contexts": nexus.RoleWrite, "GET /v1/contexts": nexus.RoleRead, "GET /v1/contexts/{id}": nexus.RoleRead,
	"GET /v1/contexts/{id}/chain": nexus.RoleRead, "GET /v1/contexts/{id}/children": nexus.RoleRead,
	"GET /v1/contexts/{id}/related": nexus.RoleRead, "POST /v1/search": nexus.RoleRead, "GET /v1/log": nexus.RoleRead,
	"GET /v1/incidents": nexus.RoleRead, "GET /v1/incidents/{id}": nexus.RoleRead,
	"GET /livez": nexus.RoleRead, "GET /health": nexus.RoleRead, "GET /metrics": nexus.RoleRead, "GET /readyz": nexus.RoleRead,
	"POST /v1/admin/fsck": nexus.RoleAdmin, "POST /v1/admin/restore": nexus.RoleAdmin, "POST /v1/admin/recover": nexus.RoleAdmin, "GET /v1/admin/audit": nexus.RoleAdmin, "GET /v1/admin/history": nexus.RoleAdmin, "GET /v1/admin/chaos": nexus.RoleAdmin, "POST /v1/admin/chaos": nexus.RoleAdmin,
	"GET /v1/events": nexus.RoleRead, "GET /v1/openapi.json": nexus.RoleRead,
	"POST /v1/agents": nexus.RoleWrite, "GET /v1/agents": nexus.RoleRead, "GET /v1/agents/{id}": nexus.RoleRead,
	"POST /v1/agents/{id}/heartbeat": nexus.RoleWrite, "POST /v1/agents/{id}/process": nexus.RoleWrite,
	"POST /v1/agents/process": nexus.RoleWrite, "POST /v1/agents/{id}/generate": nexus.RoleWrite,
	"POST /v1/agents/generate": nexus.RoleWrite, "POST /v1/tasks": nexus.RoleWrite, "GET /v1/tasks": nexus.RoleRead,
	"GET /v1/tasks/{id}": nexus.RoleRead, "POST /v1/tasks/claim": nexus.RoleWrite,
	"POST /v1/tasks/{id}/complete": nexus.RoleWrite, "POST /v1/tasks/{id}/fail": nexus.RoleWrite,
	"GET /v1/cluster": nexus.RoleRead, "POST /v1/cluster/join": nexus.RoleAdmin,
	"DELETE /v1/cluster/members/{id}": nexus.RoleAdmin, "POST /v1/cluster/transfer-leadership": nexus.RoleAdmin,
	"/mcp":             nexus.RoleRead,
	"POST /v1/session": nexus.RoleRead, "GET /v1/session": nexus.RoleRead, "DELETE /v1/session": nexus.RoleRead,
}

// principalNames names the principal of each role in principals.
var principalNames = map[nexus.Role]string{nexus.RoleRead: "reader", nexus.RoleWrite: "writer", nexus.RoleAdmin: "admin"}

// principals is a set of one principal per role, and their tokens.
func principals(t testing.TB) (*auth.Set, map[nexus.Role]string) {
	t.Helper()
	f := &auth.File{}
	toks := map[nexus.Role]string{}
	for _, r := range []nexus.Role{nexus.RoleRead, nexus.RoleWrite, nexus.RoleAdmin} {
		p := nexus.Principal{Name: principalNames[r], Role: r, Read: []string{"*"}}
		if r != nexus.RoleRead {
			p.Write = []string{"*"}
		}
		tok, err := f.Create(p, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		toks[r] = tok
	}
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	set, err := auth.New(func() (auth.Sources, error) { return auth.Sources{TokensFile: path}, nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return set, toks
}

// routeRequest is a request to the route registered as pattern.
func routeRequest(pattern, cred string) *http.Request {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "POST", pattern
	}
	path = strings.ReplaceAll(path, "{id}", "01KB2W3G6T0Q5A9QYQ7M3N8C2D")
	r := httptest.NewRequest(method, path, strings.NewReader(`{}`))
	r.Header.Set("Content-Type", "application/json")
	if cred != "" {
		r.Header.Set("Authorization", "Bearer "+cred)
	}
	return r
}

// Every registered route × every role (and no credential): a principal
// below the route's role gets 403 forbidden naming the role needed, one
// at or above it reaches the route; without a credential only /livez
// and the login answer.
func TestServer_routeRoles(t *testing.T) {
	set, toks := principals(t)
	opts := allOptions()
	opts.Auth = set
	s := httpapi.NewServer(storetest.NewMemStore(), opts)
	patterns := httpapi.Patterns(s)
	for _, p := range patterns {
		want, ok := wantRoles[p]
		if !ok {
			t.Errorf("route %q has no role in wantRoles: give it the least role it needs", p)
			continue
		}
		if got, _ := httpapi.RouteRole(p); got != want {
			t.Errorf("route %q: the server's role %q, want %q", p, got, want)
		}
		for _, role := range []nexus.Role{nexus.RoleRead, nexus.RoleWrite, nexus.RoleAdmin} {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, routeRequest(p, toks[role]))
			d := recordedError(w)
			if !role.Includes(want) {
				msg := "needs role " + string(want) + "; principal " + principalNames[role] + " has role " + string(role)
				if w.Code != 403 || d.Code != nexus.EForbidden || !strings.HasSuffix(d.Message, msg) {
					t.Errorf("%s as %s: %d %+v, want 403 forbidden saying %q", p, role, w.Code, d, msg)
				}
			} else if w.Code == 401 || w.Code == 403 {
				t.Errorf("%s as %s: %d %+v, want the route to answer", p, role, w.Code, d)
			}
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, routeRequest(p, ""))
		wantStatus := 401
		switch p {
		case "GET /livez":
			wantStatus = 200
		case "POST /v1/session":
			wantStatus = 400 // the login's body is its credential, and {} has none
		}
		if w.Code != wantStatus {
			t.Errorf("%s without a credential: %d, want %d", p, w.Code, wantStatus)
		}
	}
	for p := range wantRoles {
		if !slices.Contains(patterns, p) {
			t.Errorf("wantRoles lists %q, which is not a route", p)
		}
	}
}

// errorOf decodes an error body, if any.
func recordedError(w *httptest.ResponseRecorder) nexus.ErrorDetail {
	var b nexus.ErrorBody
	json.Unmarshal(w.Body.Bytes(), &b)
	return b.Error
}

// The principal the middleware authenticated is in the request's context;
// without principals it is nexus.Anonymous.
func TestServer_principalInContext(t *testing.T) {
	set, toks := principals(t)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := nexus.PrincipalFrom(r.Context())
		if !ok {
			io.WriteString(w, "none")
			return
		}
		io.WriteString(w, p.Name+" "+string(p.Role))
	})
	for _, tc := range []struct {
		name string
		opts httpapi.Options
		cred string
		want string
	}{
		{"no principals", httpapi.Options{MCP: echo}, "", "anonymous admin"},
		{"token", httpapi.Options{MCP: echo, Token: "one-token"}, "one-token", "token admin"},
		{"reader", httpapi.Options{MCP: echo, Auth: set}, toks[nexus.RoleRead], "reader read"},
		{"writer", httpapi.Options{MCP: echo, Auth: set}, toks[nexus.RoleWrite], "writer write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			httpapi.NewServer(storetest.NewMemStore(), tc.opts).ServeHTTP(w, routeRequest("/mcp", tc.cred))
			if w.Code != 200 || w.Body.String() != tc.want {
				t.Fatalf("%d %q, want %q", w.Code, w.Body, tc.want)
			}
		})
	}
}

// OnAuthFailure hears of every refused credential and every principal
// refused for its role.
func TestServer_OnAuthFailure(t *testing.T) {
	set, toks := principals(t)
	var mu sync.Mutex
	var got []string
	opts := httpapi.Options{Auth: set, OnAuthFailure: func(r *http.Request, reason string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.Method+" "+r.URL.Path+": "+reason)
	}}
	srv := newServer(t, storetest.NewMemStore(), opts)
	wrong, _ := auth.NewToken()
	resp := send(t, srv, request{method: "GET", target: "/v1/contexts", auth: "Bearer " + wrong})
	wantError(t, resp, 401, nexus.EUnauthorized)
	if resp.header.Get("WWW-Authenticate") != `Bearer realm="nexus"` {
		t.Errorf("401 without WWW-Authenticate: %v", resp.header)
	}
	wantError(t, send(t, srv, request{method: "GET", target: "/v1/log", auth: "-"}), 401, nexus.EUnauthorized)
	wantError(t, send(t, srv, request{method: "GET", target: "/v1/log", auth: "Basic " + toks[nexus.RoleAdmin]}), 401, nexus.EUnauthorized)
	wantError(t, send(t, srv, request{method: "POST", target: "/v1/contexts", ctype: "application/json", auth: "Bearer " + toks[nexus.RoleRead], body: strings.NewReader(`{"content":"x"}`)}), 403, nexus.EForbidden)
	wantError(t, send(t, srv, request{method: "POST", target: "/v1/admin/recover", ctype: "application/json", auth: "Bearer " + toks[nexus.RoleWrite]}), 403, nexus.EForbidden)
	if r := send(t, srv, request{method: "GET", target: "/v1/log", auth: "Bearer " + toks[nexus.RoleRead]}); r.status != 200 {
		t.Fatalf("reader reading the log: %d %s", r.status, r.body)
	}
	want := []string{
		"GET /v1/contexts: unknown token", "GET /v1/log: no credential", "GET /v1/log: no credential",
		"POST /v1/contexts: principal reader lacks role write", "POST /v1/admin/recover: principal writer lacks role admin",
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("OnAuthFailure heard\n%q\nwant\n%q", got, want)
	}
}
