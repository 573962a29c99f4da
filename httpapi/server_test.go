package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

const jsonType = "application/json"

// errorCase is a request that must fail without changing the store.
type errorCase struct {
	name   string
	req    request
	status int
	code   nexus.Code
	msg    string // the message contains it, if set
}

func post(body, ctype string) request {
	return request{method: "POST", target: "/v1/contexts", ctype: ctype, body: strings.NewReader(body)}
}

func get(target string) request { return request{method: "GET", target: target} }

func badPuts(parent nexus.ID) []errorCase {
	const ok = `{"type":"memory","content":"x"}`
	return []errorCase{
		{"empty body", post("", jsonType), 400, nexus.EInvalid, "empty"},
		{"null body", post("null", jsonType), 400, nexus.EInvalid, "object"},
		{"array body", post(`[{"type":"memory"}]`, jsonType), 400, nexus.EInvalid, "object"},
		{"truncated JSON", post(`{"type":"memory","content":`, jsonType), 400, nexus.EInvalid, "ends inside"},
		{"syntax error", post(`{"type":"memory","content":x}`, jsonType), 400, nexus.EInvalid, "offset 28"},
		{"content is a number", post(`{"type":"memory","content":42}`, jsonType), 400, nexus.EInvalid, `"content"`},
		{"type is an object", post(`{"type":{},"content":"x"}`, jsonType), 400, nexus.EInvalid, `"type"`},
		{"parent_id is a number", post(`{"type":"memory","content":"x","parent_id":7}`, jsonType), 400, nexus.EInvalid, "parent_id"},
		{"parent_id is no id", post(`{"type":"memory","content":"x","parent_id":"../etc"}`, jsonType), 400, nexus.EInvalid, "parent_id"},
		{"parent_id is empty", post(`{"type":"memory","content":"x","parent_id":""}`, jsonType), 400, nexus.EInvalid, "parent_id"},
		{"unknown field", post(`{"type":"memory","content":"x","extra":1}`, jsonType), 400, nexus.EInvalid, `"extra"`},
		{"field in upper case", post(`{"Type":"memory","content":"x"}`, jsonType), 400, nexus.EInvalid, `"Type"`},
		{"field twice", post(`{"type":"memory","content":"x","content":"y"}`, jsonType), 400, nexus.EInvalid, "twice"},
		{"second object", post(ok+` {}`, jsonType), 400, nexus.EInvalid, "after the JSON object"},
		{"trailing garbage", post(ok+`x`, jsonType), 400, nexus.EInvalid, "after the JSON object"},
		{"invalid UTF-8", post(`{"type":"memory","content":"caf`+"\xe9"+`"}`, jsonType), 400, nexus.EInvalid, "UTF-8"},
		{"invalid UTF-8 in a key", post(`{"type":"memory","content":"x","`+"\xff"+`":1}`, jsonType), 400, nexus.EInvalid, "UTF-8"},
		{"no content type", post(ok, ""), 415, nexus.EUnsupportedMedia, "Content-Type"},
		{"text/plain", post(ok, "text/plain"), 415, nexus.EUnsupportedMedia, "text/plain"},
		{"form", post(ok, "application/x-www-form-urlencoded"), 415, nexus.EUnsupportedMedia, ""},
		{"other charset", post(ok, "application/json; charset=latin1"), 415, nexus.EUnsupportedMedia, "charset"},
		{"other parameter", post(ok, "application/json; v=2"), 415, nexus.EUnsupportedMedia, ""},
		{"malformed content type", post(ok, "application/json;;"), 415, nexus.EUnsupportedMedia, ""},
		{"body over the limit", post(`{"type":"memory","content":"`+strings.Repeat("x", 3<<20)+`"}`, jsonType), 413, nexus.ETooLarge, "limit"},
		{"chunked body over the limit", request{method: "POST", target: "/v1/contexts", ctype: jsonType,
			body: chunked(`{"type":"memory","content":"` + strings.Repeat("x", 3<<20) + `"}`)}, 413, nexus.ETooLarge, "limit"},
		{"content over the store's limit", post(`{"type":"memory","content":"`+strings.Repeat("x", 1<<20+1)+`"}`, jsonType), 413, nexus.ETooLarge, "content"},
		{"bad namespace", post(`{"namespace":"../x","type":"memory","content":"x"}`, jsonType), 400, nexus.EInvalid, "namespace"},
		{"metadata array", post(`{"type":"memory","content":"x","metadata":[]}`, jsonType), 400, nexus.EInvalid, "metadata"},
		{"missing parent", post(`{"type":"memory","content":"x","parent_id":"`+parent.String()+`"}`, jsonType), 400, nexus.EInvalid, parent.String()},
		{"query parameter", request{method: "POST", target: "/v1/contexts?dry=1", ctype: jsonType, body: strings.NewReader(ok)}, 400, nexus.EInvalid, "dry"},
	}
}

func badReads(id nexus.ID) []errorCase {
	s := id.String()
	return []errorCase{
		{"id too short", get("/v1/contexts/nope"), 400, nexus.EInvalid, "invalid id"},
		{"zero id", get("/v1/contexts/00000000000000000000000000"), 400, nexus.EInvalid, "zero"},
		{"encoded dot dot slash", get("/v1/contexts/..%2f"), 400, nexus.EInvalid, ""},
		{"encoded dot dot slash and more", get("/v1/contexts/..%2flog"), 400, nexus.EInvalid, ""},
		{"encoded dot dot", get("/v1/contexts/%2e%2e"), 400, nexus.EInvalid, ""},
		{"encoded dot dot then chain", get("/v1/contexts/%2E%2E/chain"), 400, nexus.EInvalid, ""},
		{"encoded NUL", get("/v1/contexts/%00"), 400, nexus.EInvalid, ""},
		{"NUL inside an id", get("/v1/contexts/" + s[:10] + "%00" + s[11:]), 400, nexus.EInvalid, ""},
		{"dot dot", get("/v1/contexts/../log"), 400, nexus.EInvalid, "canonical"},
		{"dot", get("/v1/contexts/./" + s), 400, nexus.EInvalid, "canonical"},
		{"double slash", get("/v1//contexts/" + s), 400, nexus.EInvalid, "canonical"},
		{"trailing dot dot", get("/v1/contexts/" + s + "/.."), 400, nexus.EInvalid, "canonical"},
		{"unknown id", get("/v1/contexts/" + s), 404, nexus.ENotFound, s},
		{"unknown id chain", get("/v1/contexts/" + s + "/chain"), 404, nexus.ENotFound, s},
		{"unknown id children", get("/v1/contexts/" + s + "/children"), 404, nexus.ENotFound, s},
		{"get with a query", get("/v1/contexts/" + s + "?full=1"), 400, nexus.EInvalid, "full"},
		{"chain limit not a number", get("/v1/contexts/" + s + "/chain?limit=ten"), 400, nexus.EInvalid, "limit"},
		{"chain limit negative", get("/v1/contexts/" + s + "/chain?limit=-1"), 400, nexus.EInvalid, "limit"},
		{"chain limit twice", get("/v1/contexts/" + s + "/chain?limit=1&limit=2"), 400, nexus.EInvalid, "2 times"},
		{"children with a query", get("/v1/contexts/" + s + "/children?limit=1"), 400, nexus.EInvalid, "limit"},
		{"list unknown parameters", get("/v1/contexts?ns=a&agent_id=b&limit=1"), 400, nexus.EInvalid, `"agent_id", "ns"`},
		{"list malformed query", get("/v1/contexts?limit=%zz"), 400, nexus.EInvalid, "query"},
		{"list limit not a number", get("/v1/contexts?limit=1e3"), 400, nexus.EInvalid, "limit"},
		{"list limit negative", get("/v1/contexts?limit=-5"), 400, nexus.EInvalid, "limit"},
		{"list limit too big", get("/v1/contexts?limit=1001"), 400, nexus.EInvalid, "limit"},
		{"list since not a time", get("/v1/contexts?since=yesterday"), 400, nexus.EInvalid, "since"},
		{"list until a date only", get("/v1/contexts?until=2024-01-02"), 400, nexus.EInvalid, "until"},
		{"list until before since", get("/v1/contexts?since=2024-01-02T00:00:00Z&until=2024-01-01T00:00:00Z"), 400, nexus.EInvalid, "until"},
		{"list parent not an id", get("/v1/contexts?parent=..%2f"), 400, nexus.EInvalid, "parent"},
		{"list bad order", get("/v1/contexts?order=up"), 400, nexus.EInvalid, "order"},
		{"list bad type", get("/v1/contexts?type=note"), 400, nexus.EInvalid, "type"},
		{"list bad namespace", get("/v1/contexts?namespace=A%20b"), 400, nexus.EInvalid, "namespace"},
		{"list bad agent", get("/v1/contexts?agent=..%2F"), 400, nexus.EInvalid, "agent"},
		{"list bad cursor", get("/v1/contexts?cursor=abc"), 400, nexus.EInvalid, "cursor"},
		{"log bad limit", get("/v1/log?limit=0x10"), 400, nexus.EInvalid, "limit"},
		{"log limit too big", get("/v1/log?limit=100000"), 400, nexus.EInvalid, "limit"},
		{"log bad cursor", get("/v1/log?cursor=HEAD"), 400, nexus.EInvalid, "cursor"},
		{"log unknown parameter", get("/v1/log?since=2024-01-01T00:00:00Z"), 400, nexus.EInvalid, "since"},
		{"unknown route", get("/v2/contexts"), 404, nexus.ENotFound, "/v2/contexts"},
		{"unknown sub-resource", get("/v1/contexts/" + s + "/parents"), 404, nexus.ENotFound, ""},
		{"trailing slash", get("/v1/contexts/"), 404, nexus.ENotFound, ""},
		{"root, posted to (GET / is the console)", request{method: "POST", target: "/", ctype: jsonType, body: strings.NewReader("{}")}, 404, nexus.ENotFound, "POST /"},
		{"delete", request{method: "DELETE", target: "/v1/contexts/" + s}, 405, nexus.EInvalid, "GET"},
		{"put", request{method: "PUT", target: "/v1/contexts", ctype: jsonType, body: strings.NewReader("{}")}, 405, nexus.EInvalid, "POST"},
		{"post to log", request{method: "POST", target: "/v1/log", ctype: jsonType, body: strings.NewReader("{}")}, 405, nexus.EInvalid, "GET"},
		{"no token", request{method: "GET", target: "/v1/log", auth: "-"}, 401, nexus.EUnauthorized, "token"},
		{"wrong token", request{method: "GET", target: "/v1/log", auth: "Bearer " + token + "x"}, 401, nexus.EUnauthorized, ""},
		{"token prefix", request{method: "GET", target: "/v1/log", auth: "Bearer " + token[:4]}, 401, nexus.EUnauthorized, ""},
		{"basic auth", request{method: "GET", target: "/v1/log", auth: "Basic " + token}, 401, nexus.EUnauthorized, ""},
		{"no token on unknown route", request{method: "GET", target: "/admin", auth: "-"}, 401, nexus.EUnauthorized, ""},
		{"no token on readyz", request{method: "GET", target: "/readyz", auth: "-"}, 401, nexus.EUnauthorized, ""},
		{"no token on put", request{method: "POST", target: "/v1/contexts", auth: "-", ctype: jsonType, body: strings.NewReader(`{"type":"memory","content":"x"}`)}, 401, nexus.EUnauthorized, ""},
	}
}

func TestServer_errors(t *testing.T) {
	mem := storetest.NewMemStore()
	srv := newServer(t, mem, httpapi.Options{})
	c := mustPut(t, mem, nexus.Draft{Type: nexus.TypeMemory, Content: "existing"})
	var ids nexus.IDGenerator
	unknown := ids.New(c.Timestamp.Add(-1e9))
	before := mem.Len()
	for _, tc := range append(badPuts(unknown), badReads(unknown)...) {
		t.Run(tc.name, func(t *testing.T) {
			resp := send(t, srv, tc.req)
			msg := wantError(t, resp, tc.status, tc.code)
			t.Logf("%d %s", resp.status, msg)
			if !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q does not contain %q", msg, tc.msg)
			}
			if tc.status == 405 && resp.header.Get("Allow") == "" {
				t.Errorf("405 without an Allow header")
			}
			if tc.status == 401 && resp.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without a WWW-Authenticate header")
			}
			if n := mem.Len(); n != before {
				t.Errorf("store changed: %d contexts before, %d after", before, n)
			}
		})
	}
}

func TestServer_put(t *testing.T) {
	mem := storetest.NewMemStore()
	srv := newServer(t, mem, httpapi.Options{})
	for _, ctype := range []string{"application/json", "application/json; charset=UTF-8", "Application/JSON;charset=utf-8"} {
		resp := send(t, srv, post(`  {"type":"decision","content":"ship <it>","metadata":{"b":2,"a":1}}`+"\n", ctype))
		if resp.status != http.StatusCreated {
			t.Fatalf("%s: status %d, body %s", ctype, resp.status, resp.body)
		}
		var c nexus.Context
		if err := json.Unmarshal(resp.body, &c); err != nil {
			t.Fatal(err)
		}
		if loc := resp.header.Get("Location"); loc != "/v1/contexts/"+c.ID.String() {
			t.Errorf("Location %q, want /v1/contexts/%s", loc, c.ID)
		}
		if string(c.Metadata) != `{"a":1,"b":2}` || c.Content != "ship <it>" || c.Verify() != nil {
			t.Errorf("stored %s", resp.body)
		}
		if !bytes.Contains(resp.body, []byte("<it>")) {
			t.Errorf("response escapes HTML: %s", resp.body)
		}
		got := send(t, srv, get(resp.header.Get("Location")))
		if got.status != http.StatusOK || !bytes.Equal(got.body, resp.body) {
			t.Errorf("GET Location: %d %s, want the body of the POST %s", got.status, got.body, resp.body)
		}
	}
}

func TestServer_maxBodyBytes(t *testing.T) {
	mem := storetest.NewMemStore()
	srv := newServer(t, mem, httpapi.Options{MaxBodyBytes: 100})
	small := `{"type":"memory","content":"` + strings.Repeat("x", 60) + `"}`
	if resp := send(t, srv, post(small, jsonType)); resp.status != http.StatusCreated {
		t.Fatalf("body under the limit: %d %s", resp.status, resp.body)
	}
	large := `{"type":"memory","content":"` + strings.Repeat("x", 80) + `"}`
	wantError(t, send(t, srv, post(large, jsonType)), 413, nexus.ETooLarge)
	wantError(t, send(t, srv, request{method: "POST", target: "/v1/contexts", ctype: jsonType, body: chunked(large)}), 413, nexus.ETooLarge)
	if mem.Len() != 1 {
		t.Errorf("store holds %d contexts, want 1", mem.Len())
	}
}

func TestServer_getRaw(t *testing.T) {
	raw := &rawStore{MemStore: storetest.NewMemStore()}
	srv := newServer(t, raw, httpapi.Options{})
	c := mustPut(t, raw, nexus.Draft{Type: nexus.TypeCode, Content: "fn <main>", Metadata: json.RawMessage(`{"lang":"go&c"}`)})
	want, err := raw.GetRaw(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp := send(t, srv, get("/v1/contexts/"+c.ID.String()))
	if resp.status != http.StatusOK || !bytes.Equal(resp.body, want) || resp.header.Get("Content-Type") != jsonType {
		t.Errorf("got %d %q %s, want 200 application/json %s", resp.status, resp.header.Get("Content-Type"), resp.body, want)
	}
	if n := raw.calls.Load(); n != 2 {
		t.Errorf("GetRaw called %d times, want 2", n)
	}
	wantError(t, send(t, srv, get("/v1/contexts/"+freshID().String())), 404, nexus.ENotFound)
}

func TestServer_emptyLists(t *testing.T) {
	mem := storetest.NewMemStore()
	srv := newServer(t, mem, httpapi.Options{})
	c := mustPut(t, mem, nexus.Draft{Type: nexus.TypeMemory, Content: "leaf"})
	empty := newServer(t, storetest.NewMemStore(), httpapi.Options{})
	for _, tc := range []struct {
		srv          *httptest.Server
		target, want string
	}{
		{srv, "/v1/contexts/" + c.ID.String() + "/children", `{"contexts":[]}`},
		{srv, "/v1/contexts?namespace=empty", `{"contexts":[]}`},
		{empty, "/v1/log", `{"entries":[]}`},
	} {
		resp := send(t, tc.srv, get(tc.target))
		if resp.status != http.StatusOK || strings.TrimSpace(string(resp.body)) != tc.want {
			t.Errorf("GET %s: %d %s, want %s", tc.target, resp.status, resp.body, tc.want)
		}
	}
}

// Every code crosses the wire with its status, code and message, except
// internal errors, whose detail stays in the server's log.
func TestServer_errorMapping(t *testing.T) {
	for code, status := range map[nexus.Code]int{
		nexus.EInvalid: 400, nexus.EUnauthorized: 401, nexus.ENotFound: 404, nexus.EConflict: 409,
		nexus.ETooLarge: 413, nexus.EUnsupportedMedia: 415, nexus.EInternal: 500,
		nexus.EUnavailable: 503, nexus.EInsufficientStorage: 507,
	} {
		t.Run(string(code), func(t *testing.T) {
			var logs logBuffer
			store := failStore{storetest.NewMemStore(), nexus.WrapError(code, errors.New("secret cause"), "the %s message", code)}
			srv := newServer(t, store, httpapi.Options{Logger: logs.logger()})
			msg := wantError(t, send(t, srv, get("/v1/contexts/"+freshID().String())), status, code)
			wantMsg := "the " + string(code) + " message"
			if code == nexus.EInternal {
				wantMsg = "internal error"
				if !strings.Contains(logs.String(), "secret cause") {
					t.Errorf("log %q does not record the cause", logs.String())
				}
			}
			if msg != wantMsg {
				t.Errorf("message %q, want %q", msg, wantMsg)
			}
			client := httpapi.NewClient(srv.URL, httpapi.WithToken(token))
			_, err := client.Get(t.Context(), freshID())
			if nexus.ErrorCode(err) != code || nexus.ErrorMessage(err) != wantMsg {
				t.Errorf("client got %v, want code %q message %q", err, code, wantMsg)
			}
		})
	}
}

func TestServer_plainErrorIsInternal(t *testing.T) {
	var logs logBuffer
	srv := newServer(t, failStore{storetest.NewMemStore(), errors.New("disk on fire")}, httpapi.Options{Logger: logs.logger()})
	msg := wantError(t, send(t, srv, post(`{"type":"memory","content":"x"}`, jsonType)), 500, nexus.EInternal)
	if msg != "internal error" || !strings.Contains(logs.String(), "disk on fire") {
		t.Errorf("message %q, log %q: want the cause logged, not shown", msg, logs.String())
	}
}

func TestServer_panic(t *testing.T) {
	var logs logBuffer
	srv := newServer(t, failStore{storetest.NewMemStore(), nil}, httpapi.Options{Logger: logs.logger()})
	msg := wantError(t, send(t, srv, get("/v1/contexts/"+freshID().String())), 500, nexus.EInternal)
	if msg != "internal error" || !strings.Contains(logs.String(), "store exploded") {
		t.Errorf("message %q, log %q: want the panic logged, not shown", msg, logs.String())
	}
	// The server still serves.
	if resp := send(t, srv, get("/livez")); resp.status != http.StatusOK {
		t.Errorf("after a panic: livez %d", resp.status)
	}
}

func TestServer_probes(t *testing.T) {
	var cause atomic.Pointer[error] // why the store is not ready; nil: it is
	var logs bytes.Buffer
	srv := newServer(t, storetest.NewMemStore(), httpapi.Options{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Ready: func() error {
			if p := cause.Load(); p != nil {
				return *p
			}
			return nil
		},
	})
	for _, auth := range []string{"-", ""} {
		resp := send(t, srv, request{method: "GET", target: "/livez", auth: auth})
		if resp.status != http.StatusOK || strings.TrimSpace(string(resp.body)) != `{"status":"ok"}` {
			t.Errorf("livez (auth %q): %d %s", auth, resp.status, resp.body)
		}
	}
	if resp := send(t, srv, get("/readyz")); resp.status != http.StatusOK {
		t.Errorf("readyz: %d %s", resp.status, resp.body)
	}
	// A cause written for clients is shown; any other is only logged.
	setCause := func(err error) { cause.Store(&err) }
	setCause(nexus.WrapError(nexus.EUnavailable, errors.New("EIO on pack-1.pack"), "the store stopped accepting writes"))
	resp := send(t, srv, get("/readyz"))
	if msg := wantError(t, resp, 503, nexus.EUnavailable); msg != "not ready: the store stopped accepting writes" {
		t.Errorf("readyz message %q, want the store's", msg)
	}
	setCause(errors.New("open /srv/nexus/catalog: permission denied"))
	resp = send(t, srv, get("/readyz"))
	if msg := wantError(t, resp, 503, nexus.EUnavailable); msg != "not ready" {
		t.Errorf("readyz message %q, want no internal detail", msg)
	}
	for _, leak := range []string{"EIO", "/srv/nexus"} {
		if bytes.Contains(resp.body, []byte(leak)) {
			t.Errorf("readyz shows %q to clients: %s", leak, resp.body)
		}
	}
	if !strings.Contains(logs.String(), "open /srv/nexus/catalog: permission denied") {
		t.Errorf("the cause is not logged: %q", logs.String())
	}
}

func TestServer_noToken(t *testing.T) {
	srv := httptest.NewServer(httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{}))
	defer srv.Close()
	if resp := send(t, srv, request{method: "GET", target: "/v1/log", auth: "-"}); resp.status != http.StatusOK {
		t.Errorf("without a configured token: %d %s", resp.status, resp.body)
	}
}

// freshID returns an id no store has assigned.
func freshID() nexus.ID {
	var g nexus.IDGenerator
	return g.New(time.Now())
}
