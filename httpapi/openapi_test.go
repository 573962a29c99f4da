package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/events"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/search"
	"github.com/nexus-mem/nexus/storetest"
)

// loadOpenAPI parses the served document and checks it is valid OpenAPI 3.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		t.Fatalf("the OpenAPI document does not parse: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	return doc
}

// allOptions enables every optional route (the others are always
// registered, and answer 404 without what serves them).
func allOptions() httpapi.Options {
	return httpapi.Options{
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			io.WriteString(w, "# HELP nexus_up 1 if the node is up.\n# TYPE nexus_up gauge\nnexus_up 1\n")
		}),
		MCP: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
		}),
	}
}

// docCaller sends requests to a test server and checks them and their
// answers against the OpenAPI document.
type docCaller struct {
	t      *testing.T
	srv    *httptest.Server
	router routers.Router
}

func newDocCaller(t *testing.T, doc *openapi3.T, srv *httptest.Server) *docCaller {
	t.Helper()
	doc.Servers = openapi3.Servers{{URL: srv.URL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &docCaller{t: t, srv: srv, router: router}
}

// call sends a request, checks it (if valid) and its answer against the
// document, and returns the answer's body.
func (c *docCaller) call(method, target, ctype, body string, valid bool, status int) []byte {
	t := c.t
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, c.srv.URL+target, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: no route in the document: %v", method, target, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}}
	if valid {
		if err := openapi3filter.ValidateRequest(t.Context(), in); err != nil {
			t.Errorf("%s %s: the request does not match the document: %v", method, target, err)
		}
		req.Body = io.NopCloser(strings.NewReader(body))
	}
	resp, err := c.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Errorf("%s %s: %d %s, want %d", method, target, resp.StatusCode, got, status)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(got)), Options: in.Options}
	if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
		t.Errorf("%s %s: the %d answer does not match the document: %v\n%s", method, target, resp.StatusCode, err, got)
	}
	return got
}

// The document's paths and methods are the routes the server registers,
// both ways: every documented operation reaches its own pattern in the
// mux, and every pattern is documented.
func TestOpenAPI_matchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	s := httpapi.NewServer(storetest.NewMemStore(), allOptions())
	patterns := httpapi.Patterns(s)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			target := strings.ReplaceAll(path, "{id}", "01KB2W3G6T0Q5A9QYQ7M3N8C2D")
			r := httptest.NewRequest(method, target, nil)
			want := method + " " + path
			if !slices.Contains(patterns, want) {
				want = path // a pattern for every method (/mcp)
			}
			if !slices.Contains(patterns, want) {
				t.Errorf("documented %s %s is not a registered route", method, path)
				continue
			}
			if got := httpapi.MatchedPattern(s, r); got != want {
				t.Errorf("%s %s reaches pattern %q in the mux, want %q", method, target, got, want)
			}
			documented[want] = true
		}
	}
	for _, p := range patterns {
		if !documented[p] {
			t.Errorf("route %q is not in the OpenAPI document", p)
		}
	}
	if len(patterns) < 18 {
		t.Errorf("only %d patterns registered: %v", len(patterns), patterns)
	}
}

func TestServer_openAPI(t *testing.T) {
	srv := newServer(t, storetest.NewMemStore(), httpapi.Options{})
	resp := send(t, srv, request{method: "GET", target: "/v1/openapi.json"})
	if resp.status != 200 || resp.header.Get("Content-Type") != "application/json" || !bytes.Equal(resp.body, httpapi.OpenAPI()) {
		t.Fatalf("GET /v1/openapi.json: %d %q, %d bytes", resp.status, resp.header.Get("Content-Type"), len(resp.body))
	}
	wantError(t, send(t, srv, request{method: "GET", target: "/v1/openapi.json?x=1"}), 400, nexus.EInvalid)
}

// Real requests to every route of a real node, and the error answers of
// some bad ones: each request and response is what the document says.
func TestOpenAPI_responses(t *testing.T) {
	doc := loadOpenAPI(t)
	n := newEventNode(t, httpapi.Options{}, events.Options{})
	eng, err := search.Open(n.store, embed.NewHashing(64), search.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	opts := allOptions()
	opts.Events, opts.Searcher, opts.MaxBodyBytes = n.bus, eng, 64<<10
	opts.Admin = newNodeAdmin(n.store)
	srv := httptest.NewServer(httpapi.NewServer(n.store, opts))
	defer srv.Close()
	call := newDocCaller(t, doc, srv).call
	const js = "application/json"
	sub := subscribeTo(t, clientOf(n.srv), nexus.EventFilter{}, "")
	var root, child nexus.Context
	json.Unmarshal(call("POST", "/v1/contexts", js, `{"type":"decision","content":"use git","namespace":"team","agent_id":"ann","metadata":{"k":[1,2.5]}}`, true, 201), &root)
	json.Unmarshal(call("POST", "/v1/contexts", js, fmt.Sprintf(`{"type":"result","content":"done","namespace":"team","parent_id":%q}`, root.ID), true, 201), &child)
	call("POST", "/v1/contexts", js, `{"type":"bogus","content":"x"}`, false, 400)
	call("POST", "/v1/contexts", "text/plain", `{"type":"memory","content":"x"}`, false, 415)
	call("POST", "/v1/contexts", js, `{"type":"memory","content":"`+strings.Repeat("x", 65<<10)+`"}`, false, 413)
	call("GET", "/v1/contexts?namespace=team&order=asc&limit=1", "", "", true, 200)
	call("GET", "/v1/contexts?limit=lots", "", "", false, 400)
	call("GET", "/v1/contexts/"+root.ID.String(), "", "", true, 200)
	call("GET", "/v1/contexts/01KB2W3G6T0Q5A9QYQ7M3N8C2D", "", "", true, 404)
	call("GET", "/v1/contexts/"+child.ID.String()+"/chain?limit=5", "", "", true, 200)
	call("GET", "/v1/contexts/"+root.ID.String()+"/children", "", "", true, 200)
	call("POST", "/v1/search", js, `{"query":"git","consistent":true}`, true, 200) // indexes what was written
	call("POST", "/v1/search", js, `{"query":"git","mode":"hybrid","limit":5,"namespace":"team","metadata":{"k":null}}`, true, 200)
	call("GET", "/v1/contexts/"+root.ID.String()+"/related?limit=3&namespace=team", "", "", true, 200)
	call("POST", "/v1/search", js, `{"query":""}`, false, 400)
	call("GET", "/v1/log?limit=1", "", "", true, 200)
	call("GET", "/livez", "", "", true, 200)
	call("GET", "/readyz", "", "", true, 200)
	call("GET", "/health", "", "", true, 200)
	call("GET", "/metrics", "", "", true, 200)
	call("GET", "/v1/openapi.json", "", "", true, 200)
	call("POST", "/v1/admin/fsck?deep=true", js, "", true, 200)
	call("POST", "/v1/admin/fsck?deep=maybe", js, "", false, 400)
	call("POST", "/v1/admin/recover", js, "", true, 200)
	call("POST", "/v1/admin/restore", js, fmt.Sprintf(`{"at":%q,"dry_run":true}`, root.Timestamp.Format(time.RFC3339Nano)), true, 200)
	call("POST", "/v1/admin/restore", js, fmt.Sprintf(`{"at":%q}`, root.Timestamp.Format(time.RFC3339Nano)), true, 200)
	call("POST", "/v1/admin/restore", js, `{"at":"yesterday"}`, false, 400)
	call("GET", "/v1/admin/chaos", "", "", true, 404) // this admin injects no faults: node/chaos_test.go covers the node's
	call("POST", "/v1/admin/chaos", js, `{"scenario":"disk_fill"}`, true, 404)
	call("POST", "/mcp", js, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, true, 200)
	// A single node serves every consistency alike, and no cluster route.
	call("GET", "/v1/contexts/"+root.ID.String()+"?consistency=linearizable", "", "", true, 200)
	call("GET", "/v1/contexts?consistency=sometimes", "", "", false, 400)
	call("POST", "/v1/contexts?consistency=none", js, `{"type":"memory","content":"x"}`, false, 400)
	call("GET", "/v1/cluster?local=true", "", "", true, 404)
	call("POST", "/v1/cluster/join", js, `{"id":"n2","raft_addr":"127.0.0.1:7000","api_url":"http://127.0.0.1:7412"}`, true, 404)
	call("DELETE", "/v1/cluster/members/n2", js, "", true, 404)
	call("POST", "/v1/cluster/transfer-leadership", js, `{"to":"n2"}`, true, 404)
	call("GET", "/v1/events?type=bogus", "", "", false, 400)
	// A node without authentication has no sessions: the login answers
	// who the caller is, as GET does.
	call("POST", "/v1/session", js, `{"token":"whatever-it-is"}`, true, 200)
	call("POST", "/v1/session", js, `{}`, false, 400)
	call("GET", "/v1/session", "", "", true, 200)
	call("DELETE", "/v1/session", js, "", true, 204)
	// An incident, as the node records one, read back and told.
	det := recovery.Detection{Component: nexus.ComponentIndex, Cause: "saved index: docs.bin is missing", FoundBy: "the periodic check (every 10s)", Node: "n1", At: time.Now()}
	incident, err := n.store.Put(t.Context(), recovery.DetectionDraft(det))
	if err != nil {
		t.Fatal(err)
	}
	steps := []recovery.IncidentStep{{At: time.Now(), Action: "recover", Status: "recovered", Reason: "saved index written again", Took: time.Millisecond}}
	if _, err := n.store.Put(t.Context(), recovery.OutcomeDraft(det, recovery.Outcome{Status: recovery.IncidentRecovered, At: time.Now(), Attempts: 1, Steps: steps, Advice: "nothing"}, incident.ID)); err != nil {
		t.Fatal(err)
	}
	call("GET", "/v1/incidents?component=semantic_index&limit=5&since=2020-01-01T00:00:00Z", "", "", true, 200)
	call("GET", "/v1/incidents?component=Bad!", "", "", false, 400)
	call("GET", "/v1/incidents?since=yesterday", "", "", false, 400)
	call("GET", "/v1/incidents/"+incident.ID.String(), "", "", true, 200)
	call("GET", "/v1/incidents/"+root.ID.String(), "", "", true, 404) // a context, not an incident

	// The events' data match their schemas too.
	schemas := map[string]string{nexus.EventContext: "Context", nexus.EventRestore: "RestorePlan", nexus.EventResync: "Resync"}
	check := func(ev nexus.Event) {
		t.Helper()
		var v any
		json.Unmarshal(ev.Data, &v)
		if err := doc.Components.Schemas[schemas[ev.Type]].Value.VisitJSON(v); err != nil {
			t.Errorf("%s event %s does not match schema %s: %v", ev.Type, ev.Data, schemas[ev.Type], err)
		}
	}
	for _, want := range []string{nexus.EventContext, nexus.EventContext, nexus.EventRestore} {
		ev := nextEvent(t, sub)
		if ev.Type != want {
			t.Fatalf("event %s %s, want a %s", ev.Type, ev.ID, want)
		}
		check(ev)
	}
	resync := subscribeTo(t, clientOf(n.srv), nexus.EventFilter{}, "01KB2W3G6T0Q5A9QYQ7M3N8C2D")
	if ev := nextEvent(t, resync); ev.Type != nexus.EventResync {
		t.Fatalf("resuming from an unknown context: %s %s", ev.Type, ev.ID)
	} else {
		check(ev)
	}
}

// Every error code is in the OpenAPI document (the enum of Error and its
// description, with the status) and in the README's list of errors.
// Codes may share a status (no_quorum and outcome_unknown answer 503 like
// unavailable) where the Error schema's description says they do; a
// client that gets a bare status (no JSON body, from a proxy say) reads
// it as the first code of that status, the general one (503 is
// unavailable), and a status of one code as that code.
func TestErrorCodes_documented(t *testing.T) {
	doc := loadOpenAPI(t)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	errSchema := doc.Components.Schemas["Error"].Value
	codeSchema := errSchema.Properties["error"].Value.Properties["code"].Value
	var enum []string
	for _, v := range codeSchema.Enum {
		enum = append(enum, fmt.Sprint(v))
	}
	var want []string
	byStatus := map[int][]nexus.Code{}
	for _, c := range httpapi.Codes {
		want = append(want, string(c))
		status := httpapi.StatusOf(c)
		byStatus[status] = append(byStatus[status], c)
		if s := fmt.Sprintf("%s %d", c, status); !strings.Contains(errSchema.Description, s) {
			t.Errorf("the Error schema's description does not say %q", s)
		}
		if s := fmt.Sprintf("`%s` (%d", c, status); !bytes.Contains(readme, []byte(s)) {
			t.Errorf("the README's list of errors does not say %q", s)
		}
	}
	for status, cs := range byStatus {
		if got := httpapi.CodeOf(status); got != cs[0] {
			t.Errorf("a bare %d reads as %s, want %s (of %v)", status, got, cs[0], cs)
		}
	}
	for status, cs := range byStatus {
		if len(cs) == 1 {
			continue
		}
		names := make([]string, len(cs))
		for i, c := range cs {
			names[i] = string(c)
		}
		s := fmt.Sprintf("%s and %s share %d", strings.Join(names[:len(names)-1], ", "), names[len(names)-1], status)
		if !strings.Contains(errSchema.Description, s) {
			t.Errorf("codes %v answer %d, and the Error schema's description does not say %q", cs, status, s)
		}
	}
	slices.Sort(enum)
	slices.Sort(want)
	if !slices.Equal(enum, want) {
		t.Errorf("the document's codes are %v, the server's %v", enum, want)
	}
	if httpapi.StatusOf(nexus.ERateLimited) != http.StatusTooManyRequests {
		t.Errorf("rate_limited answers %d, want 429", httpapi.StatusOf(nexus.ERateLimited))
	}
}
