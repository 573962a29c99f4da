// Package agenttest provides a fake OpenAI-compatible chat completions
// server for the tests of packages built on package agent (the
// orchestrator, the HTTP API, the MCP server, the command line) and for
// the agent failover drill of `nexus drill`. It speaks the real wire
// format over real HTTP, answers deterministically and can be made to
// fail.
package agenttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/agent"
)

// Model is the model the fake serves and reports.
const Model = "fake-model"

// Provider is a fake OpenAI-compatible server: GET /v1/models answers the
// heartbeat, POST /v1/chat/completions answers "NAME answers: LAST LINE"
// where LAST LINE is the last line of the last message (the content of
// the context asked about, for a prompt built from a chain), with usage
// of 42 prompt and 7 completion tokens. It can be made to fail (SetDown,
// Fail) and to be slow (SetDelay).
type Provider struct {
	// URL is the API root, for agent.Config.BaseURL (it ends in /v1).
	URL        string
	name       string
	status     atomic.Int32 // the status every completion gets; 0: answer
	retryAfter atomic.Int64 // seconds, sent with status
	delay      atomic.Int64 // before answering a completion
	calls      atomic.Int64
}

// NewProvider starts a fake named name; it stops when the test ends.
func NewProvider(tb testing.TB, name string) *Provider {
	tb.Helper()
	p, stop := Start(name)
	tb.Cleanup(stop)
	return p
}

// Start starts a fake named name on loopback outside a test (`nexus
// drill` calls its agents through one); stop closes it.
func Start(name string) (p *Provider, stop func()) {
	p = &Provider{name: name}
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = srv.URL + "/v1"
	return p, srv.Close
}

// SetDown makes the fake answer every completion with 503 (overloaded),
// or answer again.
func (p *Provider) SetDown(down bool) {
	if down {
		p.Fail(http.StatusServiceUnavailable, 0)
	} else {
		p.Fail(0, 0)
	}
}

// Fail makes the fake answer every completion with status (429 a rate
// limit error, others a server error) and, if retryAfter is positive, a
// Retry-After header of that many seconds; status 0 makes it answer again.
func (p *Provider) Fail(status int, retryAfter time.Duration) {
	p.retryAfter.Store(int64(retryAfter / time.Second))
	p.status.Store(int32(status))
}

// SetDelay makes the fake wait d before it answers a completion (or until
// the request is canceled).
func (p *Provider) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Calls is the number of completion requests received.
func (p *Provider) Calls() int64 { return p.calls.Load() }

// Answer is what the fake named name answers to a prompt whose last line
// is last.
func Answer(name, last string) string { return name + " answers: " + last }

func (p *Provider) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"id":%q,"object":"model"}]}`, Model)
		return
	case r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions":
		http.NotFound(w, r)
		return
	}
	p.calls.Add(1)
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"want a JSON body with messages","type":"invalid_request_error"}}`)
		return
	}
	if d := time.Duration(p.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if status := int(p.status.Load()); status != 0 {
		if after := p.retryAfter.Load(); after > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(after))
		}
		w.WriteHeader(status)
		if status == http.StatusTooManyRequests {
			fmt.Fprint(w, `{"error":{"message":"rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}`)
		} else {
			fmt.Fprint(w, `{"error":{"message":"the model is overloaded","type":"server_error"}}`)
		}
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": Answer(p.name, lastLine(req.Messages[len(req.Messages)-1].Content))}}},
		"usage": map[string]any{"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
	})
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// NewRunner returns an agent with id calling p: no retries, no
// background heartbeats, a timeout of 5s.
func NewRunner(tb testing.TB, id string, p *Provider) *agent.Runner {
	tb.Helper()
	r, err := agent.New(agent.Config{ID: id, Provider: agent.OpenAI, Model: Model, BaseURL: p.URL,
		Timeout: 5 * time.Second, MaxRetries: -1, HeartbeatInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}
