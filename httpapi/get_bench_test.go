package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
)

// BenchmarkGet is GET /v1/contexts/{id} served in process from a real
// store behind the access checks (the node's stack, the context in the
// L1 cache), next to a handler that only answers the same bytes: the
// difference is what the API adds to a read.
func BenchmarkGet(b *testing.B) {
	st, err := gitstore.Open(b.TempDir(), gitstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	c := mustPut(b, st, nexus.Draft{Type: nexus.TypeObservation, Content: strings.Repeat("agent memory ", 40), AgentID: "bench", Namespace: "bench"})
	body, err := st.GetRaw(b.Context(), c.ID)
	if err != nil {
		b.Fatal(err)
	}
	floor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"floor", floor},
		{"nexus", httpapi.NewServer(authz.NewStore(st), httpapi.Options{})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/v1/contexts/"+c.ID.String(), nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, r)
				if w.Code != http.StatusOK || w.Body.Len() != len(body) {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
