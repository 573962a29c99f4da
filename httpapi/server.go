package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/console"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/supervisor"
	"github.com/nexus-mem/nexus/tasks"
)

// DefaultMaxBodyBytes bounds request bodies unless Options say otherwise:
// twice the default content limit, room for the JSON escapes of ordinary
// text, plus the metadata limit.
const DefaultMaxBodyBytes = 2<<20 + nexus.MaxMetadata

// Options configure a [Server]. The zero value is a working configuration
// without authentication.
type Options struct {
	// Token, if set and Auth is not, must be presented as
	// "Authorization: Bearer <token>" on every request except GET /livez;
	// it authenticates an admin principal named "token".
	Token string
	// Auth authenticates requests when it has principals: every request
	// but GET /livez then needs a credential, and a principal whose role
	// is below its route's (see [RouteRole]) is refused with 403.
	Auth Authenticator
	// OnAuthFailure, if set, is called on every refused credential (401)
	// and every principal refused for its role (403), with the reason.
	OnAuthFailure func(r *http.Request, reason string)
	// Observe, if set, is called once per request after it was answered,
	// with its route (the pattern that took it, such as "POST
	// /v1/contexts"; "" when it was refused before a route took it or
	// none did), its status and how long it took (for an event stream,
	// how long it stayed open).
	Observe func(route string, status int, took time.Duration)
	// MaxBodyBytes bounds request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives internal errors and recovered panics; nil discards.
	Logger *slog.Logger
	// Ready reports whether the store can serve, for GET /readyz; nil
	// means always ready.
	Ready func() error
	// Searcher answers POST /v1/search and GET /v1/contexts/{id}/related;
	// without one they answer 503.
	Searcher nexus.Searcher
	// Health answers GET /health (200 unless a component is unhealthy,
	// then 503); nil reports only that the process is up.
	Health func(ctx context.Context) nexus.Health
	// Metrics serves GET /metrics; nil answers 404.
	Metrics http.Handler
	// Admin serves POST /v1/admin/fsck, /v1/admin/restore and
	// /v1/admin/recover; nil answers 404 there.
	Admin Admin
	// MCP serves the Model Context Protocol at /mcp (every method), behind
	// the same token as the API; nil answers 404.
	MCP http.Handler
	// Events serves GET /v1/events as server-sent events; nil answers
	// 404.
	Events nexus.EventSource
	// KeepAlive is how often an idle event stream gets a comment; 0 means
	// DefaultKeepAlive. A client that reads nothing for twice as long is
	// dropped (it resumes from its last event id).
	KeepAlive time.Duration
	// Tasks is the queue of external agents and their tasks, for
	// /v1/agents (registration, heartbeats) and /v1/tasks; nil answers
	// 404 there.
	Tasks *tasks.Queue
	// Agents are the node's own agents, for /v1/agents (listing),
	// /v1/agents/{id}/process, /v1/agents/process, /v1/agents/{id}/generate
	// and /v1/agents/generate; nil: none.
	Agents *orchestrator.Orchestrator
	// AgentStatus reports the node's own agents (health, breaker), for
	// GET /v1/agents; nil: none.
	AgentStatus func() []agent.Status
	// Processes reports the node's supervised processes (state, pid,
	// restarts), for GET /v1/agents; nil: none.
	Processes func() []supervisor.Status
	// PublicNames are the names, beyond loopback, that requests may use
	// as their Host ("name" for any port, "name:port" for one).
	PublicNames []string
	// Limits bound what clients may take of the server.
	Limits Limits
	// Redactor cleans the node's secrets out of every error body, the
	// log, GET /health and GET /v1/agents; nil: nothing is redacted.
	Redactor *nexus.Redactor
	// Cluster is the node's part in a cluster; nil: a single node (the
	// /v1/cluster routes answer 404). A follower forwards writes, and
	// reads at leader or linearizable consistency, to the leader through
	// ForwardTransport (nil: the default transport).
	Cluster          Cluster
	ForwardTransport http.RoundTripper
	// Sessions bound the web console's sessions (see POST /v1/session).
	Sessions SessionLimits
}

// Server serves a [nexus.Store] over HTTP. It is an [http.Handler].
type Server struct {
	store            nexus.Store
	raw              rawGetter // store's fast path for single reads, or nil
	authn            Authenticator
	onAuthFail       func(r *http.Request, reason string)
	observe          func(route string, status int, took time.Duration)
	maxBody          int64
	log              *slog.Logger
	ready            func() error
	searcher         nexus.Searcher
	health           func(ctx context.Context) nexus.Health
	metrics          http.Handler
	admin            Admin
	mcp              http.Handler
	events           nexus.EventSource
	tasks            *tasks.Queue
	agents           *orchestrator.Orchestrator
	agentSt          func() []agent.Status
	procs            func() []supervisor.Status
	redact           *nexus.Redactor
	beat             time.Duration // keep-alive interval of event streams
	mux              *http.ServeMux
	pages            *http.ServeMux
	patterns         []string // every pattern registered with mux, in order
	guard            browserGuard
	limits           *limiter
	cluster          Cluster
	forwardTransport http.RoundTripper
	sessions         *sessions
	logins           *limiter // the logins of each client address
}

// rawGetter is an optional capability of a store: the stored JSON encoding
// of one context, served without decoding and re-encoding it.
type rawGetter interface {
	GetRaw(ctx context.Context, id nexus.ID) ([]byte, error)
}

// rawPutter is an optional capability of a store: a write that also
// returns the new context's stored JSON, which is the answer.
type rawPutter interface {
	PutRaw(ctx context.Context, d nexus.Draft) (*nexus.Context, []byte, error)
}

// NewServer returns a server for store.
func NewServer(store nexus.Store, opts Options) *Server {
	s := &Server{
		store:            store,
		authn:            authenticator(opts),
		onAuthFail:       opts.OnAuthFailure,
		observe:          opts.Observe,
		maxBody:          opts.MaxBodyBytes,
		log:              opts.Logger,
		ready:            opts.Ready,
		searcher:         opts.Searcher,
		health:           opts.Health,
		metrics:          opts.Metrics,
		admin:            opts.Admin,
		mcp:              opts.MCP,
		events:           opts.Events,
		tasks:            opts.Tasks,
		agents:           opts.Agents,
		agentSt:          opts.AgentStatus,
		procs:            opts.Processes,
		redact:           opts.Redactor,
		beat:             opts.KeepAlive,
		mux:              http.NewServeMux(),
		pages:            http.NewServeMux(),
		guard:            newBrowserGuard(opts.PublicNames),
		limits:           newLimiter(opts.Limits),
		cluster:          opts.Cluster,
		forwardTransport: opts.ForwardTransport,
		sessions:         newSessions(opts.Sessions),
		logins:           newLimiter(Limits{Rate: loginRate, Burst: loginBurst, Now: opts.Limits.Now}),
	}
	s.raw, _ = store.(rawGetter)
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = slog.New(s.redact.Handler(s.log.Handler()))
	if s.beat <= 0 {
		s.beat = DefaultKeepAlive
	}
	s.routes()
	return s
}

// handlerFunc is a handler that reports failure by returning an error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) routes() {
	s.handle("POST /v1/contexts", s.putContext)
	s.handle("GET /v1/contexts", s.listContexts)
	s.handle("GET /v1/contexts/{id}", s.getContext)
	s.handle("GET /v1/contexts/{id}/chain", s.chain)
	s.handle("GET /v1/contexts/{id}/children", s.children)
	s.handle("GET /v1/contexts/{id}/related", s.related)
	s.handle("POST /v1/search", s.searchContexts)
	s.handle("GET /v1/log", s.journal)
	s.handle("GET /v1/incidents", s.listIncidents)
	s.handle("GET /v1/incidents/{id}", s.getIncident)
	s.handle("GET /livez", s.livez)
	s.handle("GET /health", s.healthz)
	s.handle("GET /metrics", s.serveMetrics)
	s.handle("POST /v1/admin/fsck", s.adminFsck)
	s.handle("POST /v1/admin/restore", s.adminRestore)
	s.handle("POST /v1/admin/recover", s.adminRecover)
	s.handle("GET /v1/admin/audit", s.adminAudit)
	s.handle("GET /v1/admin/history", s.adminHistory)
	s.handle("GET /v1/admin/chaos", s.adminChaosStatus)
	s.handle("POST /v1/admin/chaos", s.adminChaos)
	s.handle("GET /readyz", s.readyz)
	s.handle("GET /v1/events", s.streamEvents)
	s.handle("GET /v1/openapi.json", s.openAPI)
	s.handle("POST /v1/session", s.createSession)
	s.handle("GET /v1/session", s.getSession)
	s.handle("DELETE /v1/session", s.deleteSession)
	s.handle("POST /v1/agents", s.registerAgent)
	s.handle("GET /v1/agents", s.listAgents)
	s.handle("GET /v1/agents/{id}", s.getAgent)
	s.handle("POST /v1/agents/{id}/heartbeat", s.heartbeat)
	s.handle("POST /v1/agents/{id}/process", s.processWith)
	s.handle("POST /v1/agents/process", s.processMany)
	s.handle("POST /v1/agents/{id}/generate", s.generateWith)
	s.handle("POST /v1/agents/generate", s.generateBy)
	s.handle("POST /v1/tasks", s.createTask)
	s.handle("GET /v1/tasks", s.listTasks)
	s.handle("GET /v1/tasks/{id}", s.getTask)
	s.handle("POST /v1/tasks/claim", s.claimTask)
	s.handle("POST /v1/tasks/{id}/complete", s.completeTask)
	s.handle("POST /v1/tasks/{id}/fail", s.failTask)
	s.clusterRoutes()
	// The web console (package console): public files holding no data,
	// served before authentication so that the login page loads; every
	// call they make is an API request like any other.
	s.pages.Handle("GET /{$}", console.Handler())
	s.pages.Handle("GET /console/", console.Handler())
	if s.mcp != nil {
		s.register("/mcp", s.mcp)
	}
}

func (s *Server) handle(pattern string, h handlerFunc) {
	s.register(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(nexus.WithOrigin(r.Context(), nexus.Origin{RemoteAddr: r.RemoteAddr, Route: r.Pattern}))
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	}))
}

// register adds a route to the mux and to the list of patterns (which the
// OpenAPI document is checked against).
func (s *Server) register(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
	s.patterns = append(s.patterns, pattern)
}

// ServeHTTP implements [http.Handler]: it recovers panics, authenticates
// the request, checks the path and the principal's role, and dispatches
// to the route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	var pattern string
	if s.observe != nil {
		start := time.Now()
		defer func() { s.observe(pattern, sw.status(), time.Since(start)) }()
	}
	defer s.recoverPanic(sw, r)
	sw.Header()["X-Content-Type-Options"] = nosniff
	if s.cluster != nil {
		// Every answer of a cluster's node, refusals included, names the
		// node that served it; a forwarded request's, the leader.
		sw.Header().Set(HeaderServedBy, s.cluster.NodeID())
	}
	if limit, ok := s.guard.checkHost(sw, r); !ok {
		s.limits.count(limit)
		return
	}
	p := r.URL.EscapedPath()
	canonical := cleanPath(p) == p
	// A canonical path under /v1/ is no page: the API's requests skip the
	// page mux (whose miss costs a second lookup for the 405 check).
	if !canonical || !strings.HasPrefix(p, "/v1/") {
		if h, page := s.pages.Handler(r); page != "" {
			pattern = page
			h.ServeHTTP(sw, r)
			return
		}
	}
	if r = s.authenticate(sw, r); r == nil {
		return
	}
	// The mux would redirect a non-canonical path to its cleaned form, which
	// can name another resource; refuse it instead.
	if !canonical {
		s.fail(sw, r, nexus.Errorf(nexus.EInvalid, "path %q is not canonical (no dot segments or empty segments)", clip(p, 80)))
		return
	}
	_, pattern = s.mux.Handler(r)
	if pattern == "" {
		s.unmatched(sw, r)
		return
	}
	if limit, ok := s.guard.checkChange(sw, r); !ok {
		s.limits.count(limit)
		return
	}
	if limit, ok := s.checkCSRF(sw, r); !ok {
		s.limits.count(limit)
		return
	}
	if err := s.authorize(r, pattern); err != nil {
		s.fail(sw, r, err)
		return
	}
	if s.rateLimited(sw, r) {
		return
	}
	if s.cluster != nil && s.inCluster(sw, r, pattern) {
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// cleanPath returns the canonical form of p, as the mux computes it.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// unmatched answers a request no route takes: 405 if the path exists with
// other methods, 404 otherwise, both as JSON.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	probe := &probeWriter{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		allow := probe.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, nexus.ErrorDetail{Code: nexus.EInvalid, Message: fmt.Sprintf("method %s is not allowed on %s; allowed: %s", clip(r.Method, 20), clip(r.URL.Path, 80), allow)})
		return
	}
	s.fail(w, r, nexus.Errorf(nexus.ENotFound, "no route for %s %s", clip(r.Method, 20), clip(r.URL.Path, 80)))
}

// recoverPanic turns a panic in a handler into a logged 500 response.
func (s *Server) recoverPanic(w *statusWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
	if !w.wroteHeader {
		writeError(w, http.StatusInternalServerError, nexus.ErrorDetail{Code: nexus.EInternal, Message: "internal error"})
	}
}

// writeJSON writes v with the given status. It encodes before writing, so
// an encoding failure is returned while the response can still become an
// error; failures to write go unreported, as the client is gone.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nexus.WrapError(nexus.EInternal, err, "encoding the response")
	}
	writeRaw(w, status, buf.Bytes())
	return nil
}

// The values of the headers every answer sets, shared by all answers
// (net/http only reads them; a Set or Add elsewhere replaces the slice).
var (
	nosniff  = []string{"nosniff"}
	jsonType = []string{"application/json"}
)

// writeRaw writes b, which is JSON, with the given status.
func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header()["Content-Type"] = jsonType
	w.WriteHeader(status)
	w.Write(b)
}

// statusWriter remembers whether the response has started.
type statusWriter struct {
	http.ResponseWriter
	wroteHeader bool
	code        int // the status written first
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code = code
	}
	w.wroteHeader = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.code = http.StatusOK
	}
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// status is the status the request was answered with (200 when nothing
// was written: net/http sends that).
func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// probeWriter records what the mux's own 404 and 405 handlers would answer.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header         { return p.header }
func (p *probeWriter) WriteHeader(status int)      { p.status = status }
func (p *probeWriter) Write(b []byte) (int, error) { return len(b), nil }

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
