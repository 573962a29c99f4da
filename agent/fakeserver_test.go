package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/agent"
)

// fakeProvider speaks, over real HTTP, the wire format of OpenAI chat
// completions or of the Anthropic Messages API: it checks the key and
// version headers and the request body as the real services do, answers
// "reply N" to request N, and lists models for heartbeats. Requests can be
// given scripted misbehaviours instead.
type fakeProvider struct {
	kind   agent.Kind
	key    string       // the accepted key; "" accepts any
	base   string       // agent.Config.BaseURL
	client *http.Client // agent.Config.HTTPClient
	tcp    bool         // on loopback TCP rather than in-memory pipes

	mu       sync.Mutex
	reqs     []*fakeReq  // completion requests, in arrival order
	beats    []time.Time // heartbeat arrivals
	next     []action    // for the next completion requests, first first
	always   action      // once next is used up; nil: answer
	nextBeat []action
	beat     action // once nextBeat is used up; nil: list the models
	usage    func(prompt string) (in, out int)
}

// fakeReq is one completion request as the server saw it.
type fakeReq struct {
	at        time.Time
	header    http.Header
	system    string
	prompt    string // the content of the last message
	maxTokens int
	answered  bool // a complete 200 answer was written
}

// An action handles request n (counting from 1).
type action func(f *fakeProvider, w http.ResponseWriter, r *http.Request, n int)

// newFake serves on an in-memory network, so it works inside a
// testing/synctest bubble: goroutines blocked on loopback sockets wait in
// the netpoller, where the bubble cannot see them, and its clock would
// never advance.
func newFake(t testing.TB, kind agent.Kind, key string) *fakeProvider {
	f := &fakeProvider{kind: kind, key: key}
	pn := &pipeNet{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: f}
	go srv.Serve(pn)
	tr := &http.Transport{DialContext: pn.dial}
	f.client = &http.Client{Transport: tr}
	f.base = f.baseOf("http://fake-provider.test")
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return f
}

// newFakeTCP serves on loopback TCP, for what only a real socket does
// (a reset sent as RST) and for benchmarks.
func newFakeTCP(t testing.TB, kind agent.Kind, key string) *fakeProvider {
	f := &fakeProvider{kind: kind, key: key, tcp: true}
	srv := httptest.NewServer(f)
	f.client = srv.Client()
	f.base = f.baseOf(srv.URL)
	t.Cleanup(srv.Close)
	return f
}

func (f *fakeProvider) baseOf(root string) string {
	if f.kind == agent.OpenAI {
		return root + "/v1"
	}
	return root
}

func (f *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		f.heartbeat(w, r)
	case r.Method == http.MethodPost && f.kind == agent.OpenAI && r.URL.Path == "/v1/chat/completions",
		r.Method == http.MethodPost && f.kind == agent.Anthropic && r.URL.Path == "/v1/messages":
		f.complete(w, r)
	default:
		f.writeError(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path)
	}
}

// authorized checks the headers as the provider does, answering if not.
func (f *fakeProvider) authorized(w http.ResponseWriter, r *http.Request) bool {
	got := r.Header.Get("x-api-key")
	if f.kind == agent.OpenAI {
		got = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	} else if v := r.Header.Get("anthropic-version"); v != agent.AnthropicVersion {
		f.writeError(w, http.StatusBadRequest, "anthropic-version: unknown version "+v)
		return false
	}
	if f.key != "" && got != f.key {
		// Like a careless server, quote the key it was sent.
		f.writeError(w, http.StatusUnauthorized, "invalid api key: "+got)
		return false
	}
	return true
}

func (f *fakeProvider) complete(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Model     string          `json:"model"`
		MaxTokens int             `json:"max_tokens"`
		System    string          `json:"system"`
		Messages  []agent.Message `json:"messages"`
	}
	if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&in) != nil ||
		in.Model == "" || len(in.Messages) == 0 || f.kind == agent.Anthropic && in.MaxTokens <= 0 {
		f.writeError(w, http.StatusBadRequest, "malformed request")
		return
	}
	if f.kind == agent.OpenAI && in.Messages[0].Role == "system" {
		in.System, in.Messages = in.Messages[0].Content, in.Messages[1:]
	}
	req := &fakeReq{at: time.Now(), header: r.Header.Clone(), system: in.System, maxTokens: in.MaxTokens}
	if len(in.Messages) > 0 {
		req.prompt = in.Messages[len(in.Messages)-1].Content
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	n := len(f.reqs)
	act := f.always
	if len(f.next) > 0 {
		act, f.next = f.next[0], f.next[1:]
	}
	f.mu.Unlock()
	if !f.authorized(w, r) {
		return
	}
	if act == nil {
		act = answer
	}
	act(f, w, r, n)
}

func (f *fakeProvider) heartbeat(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.beats = append(f.beats, time.Now())
	n := len(f.beats)
	act := f.beat
	if len(f.nextBeat) > 0 {
		act, f.nextBeat = f.nextBeat[0], f.nextBeat[1:]
	}
	f.mu.Unlock()
	if !f.authorized(w, r) {
		return
	}
	if act != nil {
		act(f, w, r, n)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if f.kind == agent.OpenAI {
		fmt.Fprint(w, `{"object":"list","data":[{"id":"fake-model","object":"model","owned_by":"fake"}]}`)
		return
	}
	fmt.Fprint(w, `{"data":[{"type":"model","id":"fake-model","display_name":"Fake"}],"has_more":false,"first_id":"fake-model","last_id":"fake-model"}`)
}

// answer is the default action: a complete answer "reply N".
func answer(f *fakeProvider, w http.ResponseWriter, r *http.Request, n int) {
	reply(fmt.Sprintf("reply %d", n))(f, w, r, n)
}

// reply answers with text, in the provider's format.
func reply(text string) action {
	return func(f *fakeProvider, w http.ResponseWriter, _ *http.Request, n int) {
		f.mu.Lock()
		req, usage := f.reqs[n-1], f.usage
		f.mu.Unlock()
		in, out := len(req.prompt)/4, 2
		if usage != nil {
			in, out = usage(req.prompt)
		}
		var body any
		if f.kind == agent.OpenAI {
			body = map[string]any{
				"id": "chatcmpl-1", "object": "chat.completion", "model": "fake-model-2025",
				"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
					"message": map[string]any{"role": "assistant", "content": text}}},
				"usage": map[string]any{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out},
			}
		} else {
			body = map[string]any{
				"id": "msg_01", "type": "message", "role": "assistant", "model": "fake-model-2025",
				"content":     []any{map[string]any{"type": "text", "text": text}},
				"stop_reason": "end_turn", "stop_sequence": nil,
				"usage": map[string]any{"input_tokens": in, "output_tokens": out},
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if json.NewEncoder(w).Encode(body) == nil {
			f.mu.Lock()
			req.answered = true
			f.mu.Unlock()
		}
	}
}

// errorType is the provider's error type for a status.
func errorType(status int) string {
	switch status {
	case 400, 413, 422:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 429:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	return "api_error"
}

func (f *fakeProvider) writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if f.kind == agent.OpenAI {
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": errorType(status), "code": nil}})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": map[string]any{"type": errorType(status), "message": msg}})
}

// status answers with an error status, the provider's error body, and
// headers given as name, value pairs.
func status(code int, msg string, header ...string) action {
	return func(f *fakeProvider, w http.ResponseWriter, _ *http.Request, _ int) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		f.writeError(w, code, msg)
	}
}

// raw answers with a status and a body as given.
func raw(code int, body string) action {
	return func(_ *fakeProvider, w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

// hang never answers: it waits until the client gives up.
func hang(_ *fakeProvider, _ http.ResponseWriter, r *http.Request, _ int) { <-r.Context().Done() }

// slow runs act after d.
func slow(d time.Duration, act action) action {
	return func(f *fakeProvider, w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-time.After(d):
			act(f, w, r, n)
		case <-r.Context().Done():
		}
	}
}

// cut sends the headers and half a body, then drops the connection: with
// an RST on TCP, a plain close on a pipe.
func cut(f *fakeProvider, w http.ResponseWriter, _ *http.Request, _ int) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n")
	fmt.Fprint(buf, `{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"the answer is`)
	buf.Flush()
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	conn.Close()
}

// script sets the actions of the next requests and forgets those seen.
func (f *fakeProvider) script(acts ...action) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next, f.reqs = acts, nil
}

// setAlways sets the action once the script is used up.
func (f *fakeProvider) setAlways(act action) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.always = act
}

// setBeats sets the heartbeat actions: first those of acts in turn, then
// always.
func (f *fakeProvider) setBeats(always action, acts ...action) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beat, f.nextBeat = always, acts
}

func (f *fakeProvider) requests() []*fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*fakeReq, len(f.reqs))
	for i, r := range f.reqs {
		c := *r
		out[i] = &c
	}
	return out
}

func (f *fakeProvider) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *fakeProvider) beatTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.beats...)
}

// pipeNet is an in-memory network: the client dials and the server
// accepts the two ends of a net.Pipe.
type pipeNet struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (p *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeNet) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

func (p *pipeNet) Addr() net.Addr { return pipeAddr{} }

func (p *pipeNet) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case p.conns <- server:
		return client, nil
	case <-p.done:
		return nil, errors.New("dial fake-provider: connection refused")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "fake-provider" }
