package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
)

// runBenchMCP measures the latency of MCP tool calls against a running
// server: over stdio through `nexus mcp` processes of this executable, and
// over streamable HTTP at /mcp.
func runBenchMCP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("bench mcp", stderr)
	transports := fs.String("transport", "stdio,http", "transports to measure: stdio, http or both")
	tool := fs.String("tool", "get_context", "tool to call: get_context, store_context, search_contexts or list_contexts")
	clients := fs.Int("clients", 1, "concurrent MCP clients (one session, and over stdio one process, each)")
	calls := fs.Int("calls", 2000, "calls per transport")
	dur := fs.Duration("duration", time.Minute, "longest run per transport")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *clients <= 0 || *calls <= 0 || *dur <= 0 {
		return usagef("--clients, --calls and --duration must be positive")
	}
	args1, ok := benchToolArgs[*tool]
	if !ok {
		return usagef("unknown --tool %q", *tool)
	}
	for _, tr := range strings.Split(*transports, ",") {
		if tr != "stdio" && tr != "http" {
			return usagef("unknown transport %q: want stdio or http", tr)
		}
		sessions, err := benchSessions(ctx, tr, cf, *clients)
		if err != nil {
			return err
		}
		res, err := benchMCPCalls(ctx, sessions, mcpCall{*tool, args1}, *calls, *dur)
		for _, s := range sessions {
			s.Close()
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "mcp %-5s %s (%d clients): %s\n", tr, *tool, *clients, res)
	}
	if *tool == "get_context" {
		// The baseline of the same run: the same read over the REST API.
		c := cf.client()
		stored, err := c.Put(ctx, nexus.Draft{Type: nexus.TypeObservation, Namespace: "bench", Content: benchPayload(512)})
		if err != nil {
			return err
		}
		res := load(ctx, *clients, *dur, *calls, func(ctx context.Context, _ int) error {
			_, err := c.Get(ctx, stored.ID)
			return err
		})
		fmt.Fprintf(stdout, "rest  GET /v1/contexts/{id} (%d clients, baseline): %s\n", *clients, res)
	}
	return nil
}

// benchToolArgs are the arguments of each measurable tool; "$ID" is
// replaced by the id of a context stored first.
var benchToolArgs = map[string]map[string]any{
	"get_context":     {"id": "$ID"},
	"store_context":   {"content": benchPayload(512), "type": "observation", "namespace": "bench"},
	"search_contexts": {"query": "durable agent memory", "limit": 10},
	"list_contexts":   {"limit": 20},
}

// benchSessions connects n MCP clients over the transport.
func benchSessions(ctx context.Context, transport string, cf *clientFlags, n int) ([]*mcp.ClientSession, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var sessions []*mcp.ClientSession
	for range n {
		var t mcp.Transport
		if transport == "stdio" {
			cmd := exec.Command(exe, "mcp", "--no-start", "--server", cf.server)
			cmd.Env = withToken(os.Environ(), cf.token)
			cmd.Stderr = os.Stderr
			t = &mcp.CommandTransport{Command: cmd}
		} else {
			hc := &http.Client{Transport: bearerTransport{cf.token}}
			t = &mcp.StreamableClientTransport{Endpoint: strings.TrimRight(cf.server, "/") + "/mcp", HTTPClient: hc, MaxRetries: -1}
		}
		s, err := mcp.NewClient(&mcp.Implementation{Name: "nexus-bench", Version: "1"}, nil).Connect(ctx, t, nil)
		if err != nil {
			for _, s := range sessions {
				s.Close()
			}
			return nil, fmt.Errorf("connect over %s: %w", transport, err)
		}
		sessions = append(sessions, s)
	}
	return sessions, nil
}

// mcpCall is one tool call with its arguments.
type mcpCall struct {
	tool string
	args map[string]any
}

// benchMCPCalls makes call from every session until calls are done or dur
// passes, and returns the latencies.
func benchMCPCalls(ctx context.Context, sessions []*mcp.ClientSession, call mcpCall, calls int, dur time.Duration) (*loadResult, error) {
	tool, args := call.tool, call.args
	if args["id"] == "$ID" {
		var c nexus.Context
		if err := callBenchTool(ctx, sessions[0], "store_context", map[string]any{"content": benchPayload(512), "namespace": "bench"}, &c); err != nil {
			return nil, fmt.Errorf("store a context to read: %w", err)
		}
		args = map[string]any{"id": c.ID.String()}
	}
	return load(ctx, len(sessions), dur, calls, func(ctx context.Context, w int) error {
		return callBenchTool(ctx, sessions[w], tool, args, nil)
	}), nil
}

// callBenchTool calls a tool, turning an error result into an error, and
// decodes the result into out if not nil.
func callBenchTool(ctx context.Context, s *mcp.ClientSession, tool string, args map[string]any, out any) error {
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return err
	}
	if len(res.Content) == 0 {
		return errors.New(tool + ": empty result")
	}
	text, _ := res.Content[0].(*mcp.TextContent)
	if text == nil {
		return errors.New(tool + ": result is not text")
	}
	if res.IsError {
		return errors.New(text.Text)
	}
	if out != nil {
		return json.Unmarshal([]byte(text.Text), out)
	}
	return nil
}

// bearerTransport adds a bearer token, if any, to every request.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return http.DefaultTransport.RoundTrip(r)
}
