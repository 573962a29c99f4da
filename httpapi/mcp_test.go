package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

// Options.MCP is served at /mcp, every method, behind the token; without
// it /mcp is an unknown route.
func TestServer_mcp(t *testing.T) {
	var seen []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method)
		w.WriteHeader(http.StatusAccepted)
	})
	srv := newServer(t, storetest.NewMemStore(), httpapi.Options{MCP: h})
	for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
		if resp := send(t, srv, request{method: m, target: "/mcp"}); resp.status != http.StatusAccepted {
			t.Errorf("%s /mcp: %d %s", m, resp.status, resp.body)
		}
	}
	wantError(t, send(t, srv, request{method: http.MethodPost, target: "/mcp", auth: "-"}), http.StatusUnauthorized, nexus.EUnauthorized)
	wantError(t, send(t, srv, request{method: http.MethodPost, target: "/mcp/x"}), http.StatusNotFound, nexus.ENotFound)
	if len(seen) != 3 {
		t.Fatalf("the handler saw %v", seen)
	}
	bare := newServer(t, storetest.NewMemStore(), httpapi.Options{})
	wantError(t, send(t, bare, request{method: http.MethodPost, target: "/mcp"}), http.StatusNotFound, nexus.ENotFound)
}
