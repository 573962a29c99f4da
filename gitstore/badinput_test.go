package gitstore_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
)

// Bad requests against the real store: each gets a 4xx JSON error naming
// the problem, and the repository is unchanged (same head, same count,
// git fsck clean).
func TestHTTP_BadInputLeavesStoreUnchanged(t *testing.T) {
	s := MustOpen(t, "", gitstore.Options{MaxContent: 1024})
	root := mustPut(t, s, nexus.Draft{Namespace: "a", Type: nexus.TypeMemory, Content: "root"})
	srv := httptest.NewServer(httpapi.NewServer(s, httpapi.Options{}))
	defer srv.Close()
	head, count := s.Head(), s.Len()

	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		msg                             string
	}{
		{"invalid json", "POST", "/v1/contexts", "application/json", `{"type":`, 400, "ends inside the JSON object"},
		{"wrong field type", "POST", "/v1/contexts", "application/json", `{"type":"memory","content":5}`, 400, "content"},
		{"unknown field", "POST", "/v1/contexts", "application/json", `{"type":"memory","content":"x","colour":"red"}`, 400, "colour"},
		{"unknown type", "POST", "/v1/contexts", "application/json", `{"type":"memo","content":"x"}`, 400, `unknown type "memo"`},
		{"oversized content", "POST", "/v1/contexts", "application/json", `{"type":"memory","content":"` + strings.Repeat("x", 2000) + `"}`, 413, "over the limit"},
		{"oversized body", "POST", "/v1/contexts", "application/json", `{"type":"memory","content":"` + strings.Repeat("x", 4<<20) + `"}`, 413, ""},
		{"not json", "POST", "/v1/contexts", "text/plain", `hello`, 415, ""},
		{"missing parent", "POST", "/v1/contexts", "application/json", `{"namespace":"a","type":"memory","content":"x","parent_id":"01M8E820BJ5F287XHC5JEXMK7M"}`, 400, "does not exist"},
		{"parent in other namespace", "POST", "/v1/contexts", "application/json", `{"namespace":"b","type":"memory","content":"x","parent_id":"` + root.ID.String() + `"}`, 400, "namespace"},
		{"bad parent id", "POST", "/v1/contexts", "application/json", `{"type":"memory","content":"x","parent_id":"../../x"}`, 400, "invalid id"},
		{"non-utf8", "POST", "/v1/contexts", "application/json", "{\"type\":\"memory\",\"content\":\"a\xffb\"}", 400, "UTF-8"},
		{"metadata not object", "POST", "/v1/contexts", "application/json", `{"type":"memory","content":"x","metadata":[1]}`, 400, "metadata"},
		{"namespace traversal", "POST", "/v1/contexts", "application/json", `{"namespace":"../../etc","type":"memory","content":"x"}`, 400, "namespace"},
		{"id traversal", "GET", "/v1/contexts/..%2f..%2fetc", "", "", 400, ""},
		{"id dots", "GET", "/v1/contexts/%2e%2e", "", "", 400, ""},
		{"id nul", "GET", "/v1/contexts/01M8E820BJ5F287XHC5JEXMK7%00", "", "", 400, ""},
		{"unknown id", "GET", "/v1/contexts/01M8E820BJ5F287XHC5JEXMK7M", "", "", 404, "not found"},
		{"bad limit", "GET", "/v1/contexts?limit=100000", "", "", 400, "limit"},
		{"unknown filter", "GET", "/v1/contexts?colour=red", "", "", 400, "colour"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("status %d, body not a JSON error: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != c.status || e.Error.Code == "" || !strings.Contains(e.Error.Message, c.msg) {
				t.Fatalf("got %d %+v, want %d with %q", resp.StatusCode, e.Error, c.status, c.msg)
			}
		})
	}
	if s.Head() != head || s.Len() != count {
		t.Fatalf("store changed: head %s→%s, count %d→%d", head, s.Head(), count, s.Len())
	}
	git(t, s.GitDir(), "fsck", "--full", "--strict")
}
