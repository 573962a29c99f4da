package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// clusterFixture is a cluster of three real nodes on loopback. Each has
// a strong NEXUS_TOKEN (an admin principal, which joining uses) and a
// tokens file: the principal "writer" is known to every node, the
// principal "follower-only" to the follower alone.
type clusterFixture struct {
	t                  *testing.T
	nodes              []*nodetest.Node
	leader, follower   *nodetest.Node
	other              *nodetest.Node // the other follower
	admin, writer, own string         // tokens: NEXUS_TOKEN, writer's, follower-only's
	router             routers.Router // of the OpenAPI document, for every node
}

func newClusterFixture(t *testing.T) *clusterFixture {
	t.Helper()
	admin, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	f := &clusterFixture{t: t, admin: admin}
	f.nodes = nodetest.OpenCluster(t, 3, func(_ int, cfg *node.Config) {
		cfg.Token = admin
		// Twice raft's own timeouts: a loaded machine does not make the
		// leadership change under the test.
		cfg.Cluster.Timeouts = cluster.Timeouts{Heartbeat: 2 * time.Second, Election: 2 * time.Second, LeaderLease: time.Second, Commit: 50 * time.Millisecond}
	})
	f.leader = nodetest.Leader(t, f.nodes)
	for _, n := range f.nodes {
		switch {
		case n == f.leader:
		case f.follower == nil:
			f.follower = n
		default:
			f.other = n
		}
	}
	tokens := &auth.File{}
	if f.writer, err = tokens.Create(nexus.Principal{Name: "writer", Role: nexus.RoleWrite, Read: []string{"*"}, Write: []string{"*"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*nodetest.Node{f.leader, f.other} {
		if err := tokens.Save(node.TokensFile(n.Config.Dir)); err != nil {
			t.Fatal(err)
		}
	}
	if f.own, err = tokens.Create(nexus.Principal{Name: "follower-only", Role: nexus.RoleWrite, Read: []string{"*"}, Write: []string{"*"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := tokens.Save(node.TokensFile(f.follower.Config.Dir)); err != nil {
		t.Fatal(err)
	}
	for _, n := range f.nodes {
		if err := n.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	doc := loadOpenAPI(t)
	doc.Servers = nil
	for _, n := range f.nodes {
		doc.Servers = append(doc.Servers, &openapi3.Server{URL: n.URL})
	}
	if f.router, err = gorillamux.NewRouter(doc); err != nil {
		t.Fatal(err)
	}
	return f
}

// nodeID is a node's id in the cluster.
func nodeID(n *nodetest.Node) string { return n.Config.Cluster.NodeID }

// call sends a request to n as the holder of tok (with the extra header,
// if any), checks the request and its answer against the OpenAPI
// document, and returns the answer and its body.
func (f *clusterFixture) call(n *nodetest.Node, tok, method, target, body string, header ...string) (*http.Response, []byte) {
	f.t.Helper()
	return f.send(true, n, tok, method, target, body, header...)
}

// callInvalid is call for a request the document does not allow: only
// the answer is checked against it.
func (f *clusterFixture) callInvalid(n *nodetest.Node, tok, method, target, body string) (*http.Response, []byte) {
	f.t.Helper()
	return f.send(false, n, tok, method, target, body)
}

func (f *clusterFixture) send(valid bool, n *nodetest.Node, tok, method, target, body string, header ...string) (*http.Response, []byte) {
	t := f.t
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, n.URL+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	route, params, err := f.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: no route in the document: %v", method, target, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateRequest(t.Context(), in); valid && err != nil {
		t.Errorf("%s %s: the request does not match the document: %v", method, target, err)
	} else if !valid && err == nil {
		t.Errorf("%s %s: the document allows the request, which is meant to be invalid", method, target)
	}
	req.Body = io.NopCloser(strings.NewReader(body))
	resp, err := n.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(got)), Options: in.Options}
	if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
		t.Errorf("%s %s via %s: the %d answer does not match the document: %v\n%s", method, target, nodeID(n), resp.StatusCode, err, got)
	}
	return resp, got
}

// want checks an answer's status, error code ("" for none) and the node
// that says it served it, and that each of these headers is given once.
func (f *clusterFixture) want(what string, resp *http.Response, body []byte, status int, code nexus.Code, servedBy *nodetest.Node) {
	f.t.Helper()
	if resp.StatusCode != status {
		f.t.Errorf("%s: %d %s, want %d %s", what, resp.StatusCode, body, status, code)
		return
	}
	if code != "" {
		var e nexus.ErrorBody
		if json.Unmarshal(body, &e) != nil || e.Error.Code != code {
			f.t.Errorf("%s: %d %s, want code %s", what, resp.StatusCode, body, code)
		}
	}
	if got := resp.Header.Values(httpapi.HeaderServedBy); !slices.Equal(got, []string{nodeID(servedBy)}) {
		f.t.Errorf("%s: served by %q, want %s", what, got, nodeID(servedBy))
	}
	if got := resp.Header.Values("X-Content-Type-Options"); !slices.Equal(got, []string{"nosniff"}) {
		f.t.Errorf("%s: X-Content-Type-Options %q, want nosniff once", what, got)
	}
}

// A cluster of three real nodes through the API: a follower forwards
// writes (and reads at leader consistency, and /mcp) to the leader with
// the caller's own credentials, serves reads at consistency none itself,
// and never forwards a request a second time. Without a leader, reads are
// served marked stale, and writes and linearizable reads refused. Every
// request and answer is checked against the OpenAPI document.
func TestCluster_followers(t *testing.T) {
	f := newClusterFixture(t)
	const draft = `{"type":"memory","namespace":"team","content":"Written through a follower."}`
	var written nexus.Context

	t.Run("a write through a follower is served by the leader", func(t *testing.T) {
		f.t = t
		resp, body := f.call(f.follower, f.writer, "POST", "/v1/contexts", draft)
		f.want("POST /v1/contexts via a follower", resp, body, 201, "", f.leader)
		if err := json.Unmarshal(body, &written); err != nil {
			t.Fatal(err)
		}
		if written.Content != "Written through a follower." || written.Principal != "writer" {
			t.Fatalf("stored %+v, want the content written by principal writer", written)
		}
		resp, body = f.call(f.leader, f.writer, "GET", "/v1/contexts/"+written.ID.String()+"?consistency=none", "")
		f.want("the write read on the leader", resp, body, 200, "", f.leader)
	})
	if written.ID.IsZero() {
		t.Fatal("nothing was written: the other cases need a context")
	}
	path := "/v1/contexts/" + written.ID.String()
	nodetest.Converge(t, f.nodes)

	t.Run("reads at each consistency", func(t *testing.T) {
		f.t = t
		for _, c := range []struct {
			query  string
			by     *nodetest.Node
			served string
		}{
			{"?consistency=none", f.follower, "none"},
			{"", f.leader, "leader"},
			{"?consistency=leader", f.leader, "leader"},
			{"?consistency=linearizable", f.leader, "linearizable"},
		} {
			what := "GET " + path + c.query + " via a follower"
			resp, body := f.call(f.follower, f.writer, "GET", path+c.query, "")
			f.want(what, resp, body, 200, "", c.by)
			if got := resp.Header.Values(httpapi.HeaderConsistency); !slices.Equal(got, []string{c.served}) {
				t.Errorf("%s: consistency %q, want %s", what, got, c.served)
			}
			if got := resp.Header.Get(httpapi.HeaderStale); got != "" {
				t.Errorf("%s: stale %q with a leader", what, got)
			}
			var c2 nexus.Context
			if json.Unmarshal(body, &c2) != nil || c2.ID != written.ID || c2.Content != written.Content {
				t.Errorf("%s: %s, want the context written", what, body)
			}
		}
		resp, body := f.call(f.follower, f.writer, "GET", "/v1/contexts?namespace=team&consistency=none", "")
		f.want("a listing at none via a follower", resp, body, 200, "", f.follower)
		if !strings.Contains(string(body), written.ID.String()) {
			t.Errorf("a listing at none via a follower: %s, want the context written", body)
		}
	})

	t.Run("the caller's credentials are forwarded", func(t *testing.T) {
		f.t = t
		before := f.leader.Len()
		// The follower knows follower-only and forwards its write; the
		// leader does not, and refuses it.
		resp, body := f.call(f.follower, f.own, "POST", "/v1/contexts", draft)
		f.want("a write as a principal only the follower knows", resp, body, 401, nexus.EUnauthorized, f.leader)
		resp, body = f.call(f.follower, f.own, "GET", path, "")
		f.want("a read at leader as a principal only the follower knows", resp, body, 401, nexus.EUnauthorized, f.leader)
		resp, body = f.call(f.follower, f.own, "GET", path+"?consistency=none", "")
		f.want("a read at none as a principal only the follower knows", resp, body, 200, "", f.follower)
		// A token no node knows: the follower refuses it itself.
		wrong, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		resp, body = f.call(f.follower, wrong, "POST", "/v1/contexts", draft)
		f.want("a write with a wrong token", resp, body, 401, nexus.EUnauthorized, f.follower)
		// NEXUS_TOKEN is the admin of every node: its write is forwarded
		// and stored as its own.
		resp, body = f.call(f.follower, f.admin, "POST", "/v1/contexts", draft)
		f.want("a write as NEXUS_TOKEN", resp, body, 201, "", f.leader)
		var c nexus.Context
		if json.Unmarshal(body, &c) != nil || c.Principal != "token" {
			t.Errorf("a write as NEXUS_TOKEN: %s, want principal token", body)
		}
		if got := f.leader.Len(); got != before+1 {
			t.Errorf("the leader holds %d contexts, want %d: only the authorized write", got, before+1)
		}
	})

	t.Run("a forwarded request is not forwarded again", func(t *testing.T) {
		f.t = t
		before := f.leader.Len()
		hop := []string{"Nexus-Forwarded-By", nodeID(f.other)}
		resp, body := f.call(f.follower, f.writer, "POST", "/v1/contexts", draft, hop...)
		f.want("a forwarded write at a follower", resp, body, 503, nexus.ENoQuorum, f.follower)
		if want := "is not forwarded again"; !strings.Contains(string(body), want) {
			t.Errorf("a forwarded write at a follower: %s, want a message saying it %s", body, want)
		}
		resp, body = f.call(f.follower, f.writer, "GET", path, "", hop...)
		f.want("a forwarded read at leader at a follower", resp, body, 503, nexus.ENoQuorum, f.follower)
		resp, body = f.call(f.follower, f.admin, "POST", "/v1/cluster/transfer-leadership", `{}`, hop...)
		f.want("a forwarded cluster change at a follower", resp, body, 503, nexus.ENoQuorum, f.follower)
		resp, body = f.call(f.follower, f.writer, "GET", path+"?consistency=none", "", hop...)
		f.want("a forwarded read at none at a follower", resp, body, 200, "", f.follower)
		if got := f.leader.Len(); got != before {
			t.Errorf("the leader holds %d contexts, want %d: nothing written", got, before)
		}
		// The leader serves the one hop.
		resp, body = f.call(f.leader, f.writer, "POST", "/v1/contexts", draft, hop...)
		f.want("a forwarded write at the leader", resp, body, 201, "", f.leader)
	})

	t.Run("MCP through a follower", func(t *testing.T) {
		f.t = t
		seen := &servedBy{base: f.follower.HTTP.Transport, token: f.writer}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(t.Context(),
			&mcp.StreamableClientTransport{Endpoint: f.follower.URL + "/mcp", HTTPClient: &http.Client{Transport: seen}, MaxRetries: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "store_context",
			Arguments: map[string]any{"namespace": "team", "type": "decision", "content": "Stored over MCP through a follower."}})
		if err != nil {
			t.Fatal(err)
		}
		text := res.Content[0].(*mcp.TextContent).Text
		var c nexus.Context
		if res.IsError || json.Unmarshal([]byte(text), &c) != nil || c.ID.IsZero() {
			t.Fatalf("store_context via a follower: %s", text)
		}
		resp, body := f.call(f.leader, f.writer, "GET", "/v1/contexts/"+c.ID.String()+"?consistency=none", "")
		f.want("the MCP write read on the leader", resp, body, 200, "", f.leader)
		var got nexus.Context
		if json.Unmarshal(body, &got) != nil || got.Content != "Stored over MCP through a follower." || got.Principal != "writer" {
			t.Fatalf("on the leader: %s, want the context stored by principal writer", body)
		}
		res, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "get_context", Arguments: map[string]any{"id": c.ID.String()}})
		if err != nil || res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "Stored over MCP through a follower.") {
			t.Fatalf("get_context via a follower: %v %+v", err, res)
		}
		if by := seen.all(); len(by) < 3 || slices.ContainsFunc(by, func(s string) bool { return s != nodeID(f.leader) }) {
			t.Fatalf("the MCP answers were served by %q, want the leader %s every time", by, nodeID(f.leader))
		}
	})

	t.Run("the cluster's routes", func(t *testing.T) {
		f.t = t
		for _, n := range f.nodes {
			resp, body := f.call(n, f.writer, "GET", "/v1/cluster", "")
			f.want("GET /v1/cluster", resp, body, 200, "", n)
			var st cluster.Status
			if err := json.Unmarshal(body, &st); err != nil {
				t.Fatal(err)
			}
			if st.NodeID != nodeID(n) || st.Leader != nodeID(f.leader) || len(st.Members) != 3 {
				t.Errorf("GET /v1/cluster via %s: %s", nodeID(n), body)
			}
			for _, m := range st.Members {
				if m.Error != "" || m.AppliedIndex == 0 || m.Head == "" {
					t.Errorf("GET /v1/cluster via %s: member %+v, want its applied index and head", nodeID(n), m)
				}
			}
			resp, body = f.call(n, f.writer, "GET", "/v1/cluster?local=true", "")
			f.want("GET /v1/cluster?local=true", resp, body, 200, "", n)
		}
		resp, body := f.call(f.follower, f.writer, "POST", "/v1/cluster/transfer-leadership", `{}`)
		f.want("a transfer as a writer", resp, body, 403, nexus.EForbidden, f.follower)
		resp, body = f.callInvalid(f.follower, f.admin, "POST", "/v1/cluster/join", `{"id":"bad id","raft_addr":"127.0.0.1:1"}`)
		f.want("a join with a bad id", resp, body, 400, nexus.EInvalid, f.leader)
		resp, body = f.call(f.follower, f.admin, "DELETE", "/v1/cluster/members/n9", "")
		f.want("removing no member", resp, body, 404, nexus.ENotFound, f.leader)
		// The leadership goes to the follower through the other one.
		resp, body = f.call(f.other, f.admin, "POST", "/v1/cluster/transfer-leadership", `{"to":"`+nodeID(f.follower)+`"}`)
		f.want("a transfer through a follower", resp, body, 200, "", f.leader)
		if next := nodetest.Leader(t, f.nodes, f.leader); next != f.follower {
			t.Fatalf("%s leads after the transfer, want %s", nodeID(next), nodeID(f.follower))
		}
	})

	t.Run("without a leader", func(t *testing.T) {
		f.t = t
		// The other node alone: it cannot reach a quorum, and knows no
		// leader once it stands for election.
		f.leader.Close()
		f.follower.Close()
		lone := f.other
		nodetest.Wait(t, 30*time.Second, "the lone node to know no leader", func() bool {
			leader, _ := lone.Cluster().Leader()
			return leader == ""
		})
		for _, c := range []struct{ query, served string }{{"", "none"}, {"?consistency=none", "none"}} {
			what := "GET " + path + c.query + " without a leader"
			resp, body := f.call(lone, f.writer, "GET", path+c.query, "")
			f.want(what, resp, body, 200, "", lone)
			if got, stale := resp.Header.Get(httpapi.HeaderConsistency), resp.Header.Get(httpapi.HeaderStale); got != c.served || stale != "true" {
				t.Errorf("%s: consistency %q, stale %q; want %s, true", what, got, stale, c.served)
			}
		}
		resp, body := f.call(lone, f.writer, "GET", path+"?consistency=linearizable", "")
		f.want("a linearizable read without a leader", resp, body, 503, nexus.ENoQuorum, lone)
		resp, body = f.call(lone, f.writer, "POST", "/v1/contexts", draft)
		f.want("a write without a leader", resp, body, 503, nexus.ENoQuorum, lone)
		resp, body = f.call(lone, f.writer, "GET", "/v1/cluster?local=true", "")
		f.want("the status without a leader", resp, body, 200, "", lone)
	})
}

// servedBy is a transport that sends a bearer token and records the
// node that served each answer.
type servedBy struct {
	base  http.RoundTripper
	token string
	mu    sync.Mutex
	by    []string
}

func (s *servedBy) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.base.RoundTrip(r)
	if err == nil {
		s.mu.Lock()
		s.by = append(s.by, resp.Header.Get(httpapi.HeaderServedBy))
		s.mu.Unlock()
	}
	return resp, err
}

func (s *servedBy) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.by)
}

// The document says which routes take a consistency and which headers
// a cluster's node adds, route by route as the server classes them:
// every read takes consistency (none, leader or linearizable; leader by
// default) and answers with Nexus-Served-By, Nexus-Consistency and
// Nexus-Stale; every write says a follower forwards it, and answers with
// Nexus-Served-By; no other route takes a consistency.
func TestOpenAPI_cluster(t *testing.T) {
	doc := loadOpenAPI(t)
	reads, writes := 0, 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			pattern := method + " " + path
			if path == "/mcp" {
				pattern = path
			}
			class := httpapi.ClusterRoute(pattern)
			var consistency *openapi3.Parameter
			for _, p := range op.Parameters {
				if p.Value.Name == "consistency" {
					consistency = p.Value
				}
			}
			if (consistency != nil) != (class == "read") {
				t.Errorf("%s (%s): takes consistency %v", pattern, class, consistency != nil)
			}
			if consistency != nil {
				s := consistency.Schema.Value
				if consistency.In != "query" || !slices.Equal(s.Enum, []any{"none", "leader", "linearizable"}) || s.Default != "leader" {
					t.Errorf("%s: consistency in %s, enum %v, default %v; want the query's none, leader, linearizable, default leader", pattern, consistency.In, s.Enum, s.Default)
				}
			}
			var headers []string
			switch class {
			case "read":
				reads++
				headers = []string{httpapi.HeaderServedBy, httpapi.HeaderConsistency, httpapi.HeaderStale}
			case "write":
				writes++
				headers = []string{httpapi.HeaderServedBy}
				if path != "/mcp" && !strings.Contains(op.Description, "forwarded to the leader") {
					t.Errorf("%s: the description does not say a follower forwards it to the leader", pattern)
				}
			}
			ok := 0
			for status, resp := range op.Responses.Map() {
				if !strings.HasPrefix(status, "2") {
					continue
				}
				ok++
				for _, h := range headers {
					if resp.Value.Headers[h] == nil {
						t.Errorf("%s: the %s answer lacks header %s", pattern, status, h)
					}
				}
			}
			if ok == 0 {
				t.Errorf("%s: no success answer", pattern)
			}
		}
	}
	if !strings.Contains(doc.Paths.Value("/mcp").Post.Description, "forwarded to the leader") {
		t.Errorf("POST /mcp: the description does not say a follower forwards /mcp to the leader")
	}
	if reads != 13 || writes != 18 {
		t.Errorf("%d reads and %d writes documented, want 13 and 18", reads, writes)
	}
}
