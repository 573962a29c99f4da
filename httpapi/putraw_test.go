package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
)

// POST /v1/contexts answers with the stored JSON of the new context: the
// bytes GET returns, and the encoding of the context it describes (HTML
// characters unescaped, metadata compact), whether the store gives them
// (gitstore, behind the access checks) or not.
func TestPut_answerIsTheStoredJSON(t *testing.T) {
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for name, store := range map[string]nexus.Store{"stored JSON": authz.NewStore(st), "encoded": putOnly{st}} {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, store, httpapi.Options{})
			body := `{"type":"decision","content":"<b>a & b</b> é\u2028","metadata":{ "k" : [1, 2.50] , "h":"<>"},"agent_id":"ann"}`
			resp := send(t, srv, request{method: http.MethodPost, target: "/v1/contexts", ctype: "application/json", body: strings.NewReader(body)})
			if resp.status != http.StatusCreated {
				t.Fatalf("POST: %d %s", resp.status, resp.body)
			}
			var c nexus.Context
			if err := json.Unmarshal(resp.body, &c); err != nil {
				t.Fatal(err)
			}
			if want := encoding(t, &c); !bytes.Equal(resp.body, want) {
				t.Errorf("POST answered\n%s\nwant the context's encoding\n%s", resp.body, want)
			}
			got := send(t, srv, request{method: http.MethodGet, target: "/v1/contexts/" + c.ID.String()})
			if got.status != http.StatusOK || !bytes.Equal(got.body, resp.body) {
				t.Errorf("GET answered %d\n%s\nwant what POST answered\n%s", got.status, got.body, resp.body)
			}
			if loc := resp.header.Get("Location"); loc != "/v1/contexts/"+c.ID.String() {
				t.Errorf("Location %q", loc)
			}
		})
	}
}

// putOnly is a store without PutRaw (and GetRaw).
type putOnly struct{ nexus.Store }

// BenchmarkPut is POST /v1/contexts on a real store, answered with the
// stored JSON or with the context encoded again (the store without
// PutRaw): allocations per write are the difference to read.
func BenchmarkPut(b *testing.B) {
	st, err := gitstore.Open(b.TempDir(), gitstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	body, err := json.Marshal(nexus.Draft{Type: nexus.TypeObservation, Content: strings.Repeat("agent memory context ", 25), AgentID: "bench-7", Namespace: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	for name, store := range map[string]nexus.Store{"stored JSON": authz.NewStore(st), "encoded": putOnly{st}} {
		srv := httpapi.NewServer(store, httpapi.Options{})
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/contexts", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, req)
				if w.Code != http.StatusCreated {
					b.Fatalf("POST: %d %s", w.Code, w.Body)
				}
			}
		})
	}
}

// encoding is the API's JSON of c: HTML characters unescaped, a newline
// at the end.
func encoding(t *testing.T, c *nexus.Context) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
