package mcpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/mcpserver"
	"github.com/nexus-mem/nexus/storetest"
)

// brokenStore fails every read of one context with err.
type brokenStore struct {
	*storetest.MemStore
	err error
}

func (s brokenStore) Get(context.Context, nexus.ID) (*nexus.Context, error) { return nil, s.err }

// An error reaches an MCP client as the same body the HTTP API answers:
// an internal one says only "internal error", and its cause goes to the
// log; a client-facing one keeps its code and message.
func TestNew_errorBodies(t *testing.T) {
	cause := errors.New("pack-7.pack: checksum mismatch at /srv/nexus/repo.git")
	for _, c := range []struct {
		name   string
		err    error
		want   string
		logged bool
	}{
		{"internal", nexus.WrapError(nexus.EInternal, cause, "reading pack 7"),
			`{"error":{"code":"internal","message":"internal error"}}`, true},
		{"unavailable", nexus.WrapError(nexus.EUnavailable, cause, "the store stopped accepting writes"),
			`{"error":{"code":"unavailable","message":"the store stopped accepting writes"}}`, false},
		{"rate limited", nexus.Errorf(nexus.ERateLimited, "slow down <now>"),
			`{"error":{"code":"rate_limited","message":"slow down <now>"}}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := brokenStore{storetest.NewMemStore(), c.err}
			var logs bytes.Buffer
			cs := connect(t, mcpserver.New(store, nil, mcpserver.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
			id := newID()
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "get_context", Arguments: map[string]any{"id": id}})
			if err != nil || !res.IsError || contentText(res) != c.want {
				t.Fatalf("get_context: %v, %s; want the error result %s", err, contentText(res), c.want)
			}
			srv := httptest.NewServer(httpapi.NewServer(store, httpapi.Options{}))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + "/v1/contexts/" + id)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := strings.TrimSpace(string(body)); got != c.want {
				t.Errorf("over HTTP the same error is %s, over MCP %s", got, c.want)
			}
			if strings.Contains(logs.String(), cause.Error()) != c.logged {
				t.Errorf("cause logged: %v, want %v (log %q)", !c.logged, c.logged, logs.String())
			}
			_, err = cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: "nexus://contexts/" + id})
			var rpc *jsonrpc.Error
			var data struct {
				URI string `json:"uri"`
				nexus.ErrorDetail
			}
			if !errors.As(err, &rpc) || json.Unmarshal(rpc.Data, &data) != nil || data.URI != "nexus://contexts/"+id ||
				`{"error":{"code":"`+string(data.Code)+`","message":"`+data.Message+`"}}` != c.want {
				t.Errorf("resource: %v (data %+v), want the code and message of %s", err, data, c.want)
			}
		})
	}
}

// A tool error, and the log, are cleaned of the secrets the Redactor
// knows; over HTTP the error body is too.
func TestNew_redactsToolErrors(t *testing.T) {
	const secret = "tok-node-secret-2b7d"
	red := nexus.NewRedactor(secret)
	cause := errors.New("pack read with " + secret)
	store := brokenStore{storetest.NewMemStore(), nexus.WrapError(nexus.EUnavailable, cause, "agent leaky failed: stderr: Bearer "+secret)}
	var logs bytes.Buffer
	cs := connect(t, mcpserver.New(store, nil, mcpserver.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Redactor: red}))
	id := newID()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "get_context", Arguments: map[string]any{"id": id}})
	want := `{"error":{"code":"unavailable","message":"agent leaky failed: stderr: Bearer [redacted]"}}`
	if err != nil || !res.IsError || contentText(res) != want {
		t.Fatalf("get_context: %v, %s; want %s", err, contentText(res), want)
	}
	srv := httptest.NewServer(httpapi.NewServer(store, httpapi.Options{Redactor: red, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/v1/contexts/" + id)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := strings.TrimSpace(string(body)); got != want {
		t.Errorf("over HTTP: %s, want %s", got, want)
	}
	if strings.Contains(logs.String(), secret) || !strings.Contains(logs.String(), "[redacted]") {
		t.Errorf("log: %s", logs.String())
	}
}
