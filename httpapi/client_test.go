package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

// fakeServer answers every request with handler.
func fakeServer(t *testing.T, handler http.HandlerFunc) *httpapi.Client {
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return httpapi.NewClient(srv.URL + "/")
}

func TestClient_errors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, tc := range []struct {
		name   string
		client func(t *testing.T) *httpapi.Client
		code   nexus.Code
	}{
		{"server down", func(*testing.T) *httpapi.Client { return httpapi.NewClient(closed.URL) }, nexus.EUnavailable},
		{"malformed base URL", func(*testing.T) *httpapi.Client { return httpapi.NewClient("http://[::1") }, nexus.EInvalid},
		{"proxy error page", func(t *testing.T) *httpapi.Client {
			return fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
			})
		}, nexus.EUnavailable},
		{"plain 429", func(t *testing.T) *httpapi.Client {
			return fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "slow down", http.StatusTooManyRequests)
			})
		}, nexus.ERateLimited},
		{"plain 404", func(t *testing.T) *httpapi.Client {
			return fakeServer(t, http.NotFound)
		}, nexus.ENotFound},
		{"JSON error without a code", func(t *testing.T) *httpapi.Client {
			return fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusConflict)
				w.Write([]byte(`{"error":{}}`))
			})
		}, nexus.EConflict},
		{"malformed JSON", func(t *testing.T) *httpapi.Client {
			return fakeServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"id":`)) })
		}, nexus.EInternal},
		{"wrong field type", func(t *testing.T) *httpapi.Client {
			return fakeServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"id":"nope"}`)) })
		}, nexus.EInternal},
		{"body cut short", func(t *testing.T) *httpapi.Client {
			return fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "1000")
				w.Write([]byte(`{"id":"01`))
			})
		}, nexus.EUnavailable},
		{"wrong token", func(t *testing.T) *httpapi.Client {
			srv := newServer(t, storetest.NewMemStore(), httpapi.Options{})
			return httpapi.NewClient(srv.URL, httpapi.WithToken("guess"))
		}, nexus.EUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.client(t).Get(t.Context(), freshID())
			if c != nil || nexus.ErrorCode(err) != tc.code || nexus.ErrorMessage(err) == "" {
				t.Errorf("Get = %v, %v; want code %q with a message", c, err, tc.code)
			}
		})
	}
}

// Drafts that JSON would silently alter never leave the client.
func TestClient_Put_notEncodable(t *testing.T) {
	var requests atomic.Int64
	c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) { requests.Add(1) })
	for _, d := range []nexus.Draft{
		{Type: nexus.TypeMemory, Content: "caf\xe9"},
		{Type: nexus.TypeMemory, Content: "x", AgentID: "\xff"},
		{Type: nexus.TypeMemory, Content: "x", Metadata: []byte(`{"a":`)},
	} {
		_, err := c.Put(t.Context(), d)
		if nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("Put(%q): %v, want code invalid", d.Content, err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
}

func TestClient_Livez(t *testing.T) {
	srv := newServer(t, storetest.NewMemStore(), httpapi.Options{})
	if err := httpapi.NewClient(srv.URL).Livez(t.Context()); err != nil {
		t.Errorf("Livez without a token: %v", err)
	}
	srv.Close()
	err := httpapi.NewClient(srv.URL).Livez(t.Context())
	if nexus.ErrorCode(err) != nexus.EUnavailable || !strings.Contains(err.Error(), "/livez") {
		t.Errorf("Livez of a stopped server: %v, want code unavailable", err)
	}
}
