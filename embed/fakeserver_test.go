package embed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/embed"
)

// fakeServer speaks the OpenAI embeddings wire format. Its vectors are
// those of the hashing embedder of its dimension, so tests know what to
// expect; each request can instead get a scripted misbehaviour.
type fakeServer struct {
	*httptest.Server
	key     string // the API key it accepts; "" accepts any
	hashing *embed.Hashing

	mu       sync.Mutex
	batches  [][]string  // the inputs of each request, in arrival order
	times    []time.Time // when each request arrived
	auth     []string    // the Authorization header of each request
	script   []action    // what to do with request i; nil or missing: answer
	fallback action      // what to do after the script; nil: answer
	shuffle  bool        // list the embeddings in random order
}

// An action handles one request; in holds its inputs.
type action func(f *fakeServer, w http.ResponseWriter, r *http.Request, in []string)

type wireDatum struct {
	Object    string    `json:"object"`
	Index     *int      `json:"index,omitempty"`
	Embedding []float32 `json:"embedding"`
}

type wireResponse struct {
	Object string      `json:"object"`
	Data   []wireDatum `json:"data"`
	Model  string      `json:"model"`
	Usage  struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

func newFakeServer(t *testing.T, dim int, key string) *fakeServer {
	f := &fakeServer{key: key, hashing: embed.NewHashing(dim)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		writeError(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path, "invalid_request_error", "")
		return
	}
	var req struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Model == "" {
		writeError(w, http.StatusBadRequest, "bad request body", "invalid_request_error", "")
		return
	}
	f.mu.Lock()
	n := len(f.batches)
	f.batches = append(f.batches, req.Input)
	f.times = append(f.times, time.Now())
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	act := f.fallback
	if n < len(f.script) {
		act = f.script[n]
	}
	f.mu.Unlock()
	if f.key != "" && r.Header.Get("Authorization") != "Bearer "+f.key {
		// Like a careless server, quote the key it was sent.
		writeError(w, http.StatusUnauthorized, "Incorrect API key provided: "+r.Header.Get("Authorization"), "invalid_request_error", "invalid_api_key")
		return
	}
	if act == nil {
		act = answer(nil)
	}
	act(f, w, r, req.Input)
}

func writeError(w http.ResponseWriter, status int, msg, typ, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var body struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	body.Error.Message, body.Error.Type = msg, typ
	if code != "" {
		body.Error.Code = &code
	}
	json.NewEncoder(w).Encode(body)
}

// answer responds with the embeddings of the inputs, after edit changes
// the response if it is not nil.
func answer(edit func(*wireResponse)) action {
	return func(f *fakeServer, w http.ResponseWriter, r *http.Request, in []string) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(f.response(in, edit))
	}
}

func (f *fakeServer) response(in []string, edit func(*wireResponse)) wireResponse {
	vecs, err := f.hashing.Embed(context.Background(), in)
	if err != nil {
		panic(err)
	}
	resp := wireResponse{Object: "list", Model: "fake"}
	for i, v := range vecs {
		resp.Data = append(resp.Data, wireDatum{Object: "embedding", Index: &i, Embedding: v})
		resp.Usage.PromptTokens += len(strings.Fields(in[i]))
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	f.mu.Lock()
	if f.shuffle {
		rand.Shuffle(len(resp.Data), func(i, j int) { resp.Data[i], resp.Data[j] = resp.Data[j], resp.Data[i] })
	}
	f.mu.Unlock()
	if edit != nil {
		edit(&resp)
	}
	return resp
}

// status answers with an error status, an OpenAI error body and headers
// given as name, value pairs.
func status(code int, msg string, header ...string) action {
	return func(_ *fakeServer, w http.ResponseWriter, r *http.Request, in []string) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		writeError(w, code, msg, "server_error", "")
	}
}

// raw answers with a status and a body as given.
func raw(code int, body string) action {
	return func(_ *fakeServer, w http.ResponseWriter, r *http.Request, in []string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprint(w, body)
	}
}

// hang never answers: it waits until the client gives up.
func hang(_ *fakeServer, w http.ResponseWriter, r *http.Request, in []string) { <-r.Context().Done() }

// reset sends the headers and part of a body, then resets the connection.
func reset(_ *fakeServer, w http.ResponseWriter, r *http.Request, in []string) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n")
	fmt.Fprintf(buf, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,`)
	buf.Flush()
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0) // close with RST, not FIN
	}
	conn.Close()
}

func (f *fakeServer) setScript(acts ...action) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = acts
	f.batches, f.times, f.auth = nil, nil, nil
}

func (f *fakeServer) setFallback(act action) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fallback = act
}

func (f *fakeServer) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.batches)
}

func (f *fakeServer) seen() ([][]string, []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.batches...), append([]time.Time(nil), f.times...)
}
