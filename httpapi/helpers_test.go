package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/storetest"
)

const token = "s3cret-token"

// newServer serves store with a token and returns the running server.
func newServer(t testing.TB, store nexus.Store, opts httpapi.Options) *httptest.Server {
	t.Helper()
	if opts.Token == "" {
		opts.Token = token
	}
	srv := httptest.NewServer(httpapi.NewServer(store, opts))
	t.Cleanup(srv.Close)
	return srv
}

// newClient returns a client of a new server for store.
func newClient(t testing.TB, store nexus.Store) *httpapi.Client {
	srv := newServer(t, store, httpapi.Options{})
	return httpapi.NewClient(srv.URL, httpapi.WithToken(token), httpapi.WithHTTPClient(srv.Client()))
}

// request is a raw HTTP request to a test server.
type request struct {
	method string
	target string // sent verbatim as the request URI
	ctype  string // Content-Type; "" sends none
	auth   string // Authorization; "-" sends none, "" the right token
	body   io.Reader
}

// response is what came back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// send sends r to srv without the client cleaning or re-encoding the path.
func send(t testing.TB, srv *httptest.Server, r request) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), r.method, srv.URL, r.body)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = r.target
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	switch r.auth {
	case "":
		req.Header.Set("Authorization", "Bearer "+token)
	case "-":
	default:
		req.Header.Set("Authorization", r.auth)
	}
	hc := srv.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the response: %v", r.method, r.target, err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

// apiError is the JSON error body.
type apiError struct {
	Error struct {
		Code    nexus.Code `json:"code"`
		Message string     `json:"message"`
	} `json:"error"`
}

// wantError checks that resp is a JSON error with the status and code, and
// returns its message.
func wantError(t testing.TB, resp response, status int, code nexus.Code) string {
	t.Helper()
	if ct := resp.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json (body %.200s)", ct, resp.body)
	}
	var e apiError
	if err := json.Unmarshal(resp.body, &e); err != nil {
		t.Fatalf("body %.200q is not a JSON error: %v", resp.body, err)
	}
	if resp.status != status || e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("got %d %q %q, want %d %q with a message", resp.status, e.Error.Code, e.Error.Message, status, code)
	}
	return e.Error.Message
}

// chunked returns s as a request body of unknown length, so that it is
// sent chunked.
func chunked(s string) io.Reader { return io.MultiReader(strings.NewReader(s)) }

// rawStore adds the GetRaw fast path to a MemStore and counts its use.
type rawStore struct {
	*storetest.MemStore
	calls atomic.Int64
}

func (s *rawStore) GetRaw(ctx context.Context, id nexus.ID) ([]byte, error) {
	s.calls.Add(1)
	c, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// failStore answers Put and Get with err, or panics if err is nil.
type failStore struct {
	*storetest.MemStore
	err error
}

func (s failStore) Put(context.Context, nexus.Draft) (*nexus.Context, error) { return nil, s.fail() }
func (s failStore) Get(context.Context, nexus.ID) (*nexus.Context, error)    { return nil, s.fail() }

func (s failStore) fail() error {
	if s.err == nil {
		panic("store exploded")
	}
	return s.err
}

// logBuffer collects log output from the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// mustPut stores a small context in s.
func mustPut(t testing.TB, s nexus.Store, d nexus.Draft) *nexus.Context {
	t.Helper()
	c, err := s.Put(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nodeAdmin is the admin of a node made of a store on disk and the first
// two layers of a recovery cascade over it.
type nodeAdmin struct {
	store *gitstore.Store
	mgr   *recovery.Manager
}

func newNodeAdmin(st *gitstore.Store) *nodeAdmin {
	checks := st.HealthCheckers()
	mgr := recovery.New([]recovery.Component{
		{Name: nexus.ComponentGit, Critical: true, Health: checks[nexus.ComponentGit]},
		{Name: nexus.ComponentStore, Critical: true, Health: checks[nexus.ComponentStore]},
	}, recovery.Options{})
	return &nodeAdmin{store: st, mgr: mgr}
}

func (a *nodeAdmin) Fsck(ctx context.Context, deep bool) (*gitstore.FsckReport, error) {
	return a.store.Fsck(ctx, deep)
}

func (a *nodeAdmin) Restore(ctx context.Context, at time.Time, dryRun bool) (*gitstore.RestorePlan, error) {
	return a.store.RestoreTo(ctx, at, dryRun)
}

func (a *nodeAdmin) Recover(ctx context.Context) (httpapi.RecoverResult, error) {
	return httpapi.RecoverResult{Steps: a.mgr.Run(ctx), Stopping: a.mgr.Fatal()}, nil
}
