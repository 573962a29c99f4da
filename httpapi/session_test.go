package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/events"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

// sessionInfo is the answer of the /v1/session routes.
type sessionInfo struct {
	Principal       string     `json:"principal"`
	Role            nexus.Role `json:"role"`
	Namespaces      []string   `json:"namespaces"`
	WriteNamespaces []string   `json:"write_namespaces"`
	CSRFToken       string     `json:"csrf_token"`
	ExpiresAt       *time.Time `json:"expires_at"`
	Auth            bool       `json:"auth"`
}

// sessionCall is one request of a browser: with the session cookie (if
// any), the CSRF header (if any), and no Authorization.
type sessionCall struct {
	method, target, body string
	cookie, csrf         string
}

func (c sessionCall) send(t *testing.T, srv *httptest.Server) *http.Response {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(t.Context(), c.method, srv.URL+c.target, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: httpapi.SessionCookie, Value: c.cookie})
	}
	if c.csrf != "" {
		req.Header.Set(httpapi.HeaderCSRF, c.csrf)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// status sends the call and returns its status and body.
func (c sessionCall) status(t *testing.T, srv *httptest.Server) (int, string) {
	t.Helper()
	resp := c.send(t, srv)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// wantCode checks the call answers status with the error code.
func (c sessionCall) wantCode(t *testing.T, srv *httptest.Server, status int, code nexus.Code) string {
	t.Helper()
	got, body := c.status(t, srv)
	var e nexus.ErrorBody
	if json.Unmarshal([]byte(body), &e) != nil || got != status || e.Error.Code != code {
		t.Errorf("%s %s: %d %s, want %d %s", c.method, c.target, got, body, status, code)
	}
	return e.Error.Message
}

// sessionCookieOf is the session cookie a response sets, or nil.
func sessionCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == httpapi.SessionCookie {
			return c
		}
	}
	return nil
}

// login logs in with tok and returns the cookie's value and the answer.
func login(t *testing.T, srv *httptest.Server, tok string) (string, sessionInfo) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"token": tok})
	resp := sessionCall{method: "POST", target: "/v1/session", body: string(b)}.send(t, srv)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), tok) {
		t.Fatalf("the login's answer holds the token: %s", body)
	}
	c := sessionCookieOf(resp)
	if c == nil || c.Value == "" {
		t.Fatalf("login set no session cookie: %v", resp.Header.Values("Set-Cookie"))
	}
	var info sessionInfo
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	return c.Value, info
}

// authFailures records what OnAuthFailure hears.
type authFailures struct {
	mu  sync.Mutex
	got []string
}

func (a *authFailures) hook(r *http.Request, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, r.Method+" "+r.URL.Path+": "+reason)
}

func (a *authFailures) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.got)
}

// A login with a token sets a session cookie (HttpOnly, SameSite=Strict,
// Path=/, not Secure over plain HTTP) that then authenticates the
// principal on every route; a state change it authenticates needs the
// session's CSRF token in X-Nexus-CSRF, a read does not.
func TestSession_login(t *testing.T) {
	set, toks := principals(t)
	srv := newServer(t, storetest.NewMemStore(), httpapi.Options{Auth: set})
	b, _ := json.Marshal(map[string]string{"token": toks[nexus.RoleWrite]})
	resp := sessionCall{method: "POST", target: "/v1/session", body: string(b)}.send(t, srv)
	c := sessionCookieOf(resp)
	if resp.StatusCode != 200 || c == nil {
		t.Fatalf("login: %d, cookies %v", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || c.MaxAge != 0 || len(c.Value) < 40 {
		t.Errorf("session cookie %q: want HttpOnly, SameSite=Strict, Path=/, not Secure over HTTP, a browser-session cookie with a long random value", resp.Header.Get("Set-Cookie"))
	}
	var info sessionInfo
	json.NewDecoder(resp.Body).Decode(&info)
	if info.Principal != "writer" || info.Role != nexus.RoleWrite || !slices.Equal(info.Namespaces, []string{"*"}) ||
		!slices.Equal(info.WriteNamespaces, []string{"*"}) || !info.Auth || len(info.CSRFToken) < 40 || info.ExpiresAt == nil {
		t.Fatalf("login answered %+v", info)
	}
	if want := time.Now().Add(httpapi.DefaultSessionIdle); info.ExpiresAt.Before(want.Add(-time.Minute)) || info.ExpiresAt.After(want.Add(time.Minute)) {
		t.Errorf("expires_at %s, want about %s (12 hours unused)", info.ExpiresAt, want)
	}

	// The cookie is the principal, on reads and on GET /v1/session.
	var again sessionInfo
	code, body := sessionCall{method: "GET", target: "/v1/session", cookie: c.Value}.status(t, srv)
	if json.Unmarshal([]byte(body), &again); code != 200 || again.Principal != "writer" || again.CSRFToken != info.CSRFToken {
		t.Fatalf("GET /v1/session with the cookie: %d %s", code, body)
	}
	if code, body := (sessionCall{method: "GET", target: "/v1/contexts", cookie: c.Value}).status(t, srv); code != 200 {
		t.Fatalf("GET /v1/contexts with the cookie: %d %s", code, body)
	}

	// A state change needs the CSRF token, exactly.
	draft := `{"type":"memory","content":"from the console"}`
	msg := sessionCall{method: "POST", target: "/v1/contexts", body: draft, cookie: c.Value}.wantCode(t, srv, 403, nexus.EForbidden)
	if !strings.Contains(msg, "X-Nexus-CSRF") {
		t.Errorf("the refusal does not name the header: %q", msg)
	}
	sessionCall{method: "POST", target: "/v1/contexts", body: draft, cookie: c.Value, csrf: info.CSRFToken + "x"}.wantCode(t, srv, 403, nexus.EForbidden)
	if code, body := (sessionCall{method: "GET", target: "/v1/contexts", cookie: c.Value}).status(t, srv); code != 200 || strings.Contains(body, "from the console") {
		t.Fatalf("a refused write was stored: %d %s", code, body)
	}
	code, body = sessionCall{method: "POST", target: "/v1/contexts", body: draft, cookie: c.Value, csrf: info.CSRFToken}.status(t, srv)
	if code != 201 {
		t.Fatalf("POST /v1/contexts with the cookie and the CSRF token: %d %s", code, body)
	}

	// Another session's CSRF token is not this one's.
	other, _ := login(t, srv, toks[nexus.RoleWrite])
	sessionCall{method: "POST", target: "/v1/contexts", body: draft, cookie: other, csrf: info.CSRFToken}.wantCode(t, srv, 403, nexus.EForbidden)

	// The role is the principal's: a reader's session may not write.
	rc, rinfo := login(t, srv, toks[nexus.RoleRead])
	sessionCall{method: "POST", target: "/v1/contexts", body: draft, cookie: rc, csrf: rinfo.CSRFToken}.wantCode(t, srv, 403, nexus.EForbidden)
	if st := srv.Config.Handler.(*httpapi.Server).LimitStats(); st.Refused["csrf"] != 3 {
		t.Errorf("csrf refusals counted %d, want 3", st.Refused["csrf"])
	}
}

// Over TLS the cookie is Secure too.
func TestSession_secureUnderTLS(t *testing.T) {
	set, toks := principals(t)
	srv := httptest.NewTLSServer(httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{Auth: set}))
	defer srv.Close()
	b, _ := json.Marshal(map[string]string{"token": toks[nexus.RoleRead]})
	resp := sessionCall{method: "POST", target: "/v1/session", body: string(b)}.send(t, srv)
	c := sessionCookieOf(resp)
	if resp.StatusCode != 200 || c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login over TLS: %d, Set-Cookie %q: want Secure, HttpOnly, SameSite=Strict", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
}

// A wrong token sets no cookie, answers 401 and is heard as an
// authentication failure; a malformed body is 400.
func TestSession_wrongToken(t *testing.T) {
	set, _ := principals(t)
	var heard authFailures
	srv := newServer(t, storetest.NewMemStore(), httpapi.Options{Auth: set, OnAuthFailure: heard.hook})
	wrong, _ := auth.NewToken()
	resp := sessionCall{method: "POST", target: "/v1/session", body: `{"token":"` + wrong + `"}`}.send(t, srv)
	b, _ := io.ReadAll(resp.Body)
	var e nexus.ErrorBody
	if json.Unmarshal(b, &e); resp.StatusCode != 401 || e.Error.Code != nexus.EUnauthorized || len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("login with a wrong token: %d %s, Set-Cookie %q", resp.StatusCode, b, resp.Header.Values("Set-Cookie"))
	}
	if strings.Contains(string(b), wrong) {
		t.Errorf("the refusal echoes the token: %s", b)
	}
	for _, body := range []string{`{}`, `{"token":""}`, `{"token":7}`, `{"tok":"x"}`, `[]`, `{"token":"` + strings.Repeat("a", 17<<10) + `"}`} {
		sessionCall{method: "POST", target: "/v1/session", body: body}.wantCode(t, srv, 400, nexus.EInvalid)
	}
	// Asking whether it is logged in, a browser without a cookie is told
	// 401, and that is no failure to hear of.
	sessionCall{method: "GET", target: "/v1/session"}.wantCode(t, srv, 401, nexus.EUnauthorized)
	if got, want := heard.list(), []string{"POST /v1/session: login: unknown token"}; !slices.Equal(got, want) {
		t.Fatalf("OnAuthFailure heard %q, want %q", got, want)
	}
}

// A session ends after Idle unused, and after Lifetime however used; an
// ended session's cookie is refused 401 and cleared.
func TestSession_expiry(t *testing.T) {
	set, toks := principals(t)
	clock := newFakeClock()
	limits := httpapi.SessionLimits{Idle: time.Hour, Lifetime: 3 * time.Hour, Now: clock.Now}
	srv := newServer(t, storetest.NewMemStore(), httpapi.Options{Auth: set, Sessions: limits})
	get := func(cookie string) int {
		code, _ := sessionCall{method: "GET", target: "/v1/contexts", cookie: cookie}.status(t, srv)
		return code
	}
	idle, info := login(t, srv, toks[nexus.RoleRead])
	if want := clock.Now().Add(time.Hour); !info.ExpiresAt.Equal(want) {
		t.Errorf("expires_at %s, want %s", info.ExpiresAt, want)
	}
	busy, _ := login(t, srv, toks[nexus.RoleRead])
	clock.Add(59 * time.Minute)
	if get(idle) != 200 || get(busy) != 200 {
		t.Fatal("a session used within its idle time was refused")
	}
	clock.Add(59 * time.Minute) // idle for 59 minutes again: still alive
	if get(busy) != 200 {
		t.Fatal("a session used within its idle time was refused")
	}
	clock.Add(2 * time.Minute) // idle's last use was 61 minutes ago
	resp := sessionCall{method: "GET", target: "/v1/contexts", cookie: idle}.send(t, srv)
	if c := sessionCookieOf(resp); resp.StatusCode != 401 || c == nil || c.Value != "" || c.MaxAge >= 0 {
		t.Fatalf("an idle session: %d, Set-Cookie %q: want 401 and the cookie cleared", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	// busy is used every 50 minutes: it lives until 3 hours after its
	// login, not a moment longer.
	for clock.Now().Add(50 * time.Minute).Before(time.Date(2030, 1, 2, 6, 4, 5, 0, time.UTC)) {
		clock.Add(50 * time.Minute)
		if get(busy) != 200 {
			t.Fatalf("a session in use was refused before its lifetime, at %s", clock.Now())
		}
	}
	clock.Add(time.Date(2030, 1, 2, 6, 4, 5, 0, time.UTC).Sub(clock.Now()))
	if get(busy) != 401 {
		t.Fatal("a session was accepted past its lifetime")
	}
}

// At most Max sessions are held: a new one ends the least recently used.
func TestSession_lru(t *testing.T) {
	set, toks := principals(t)
	h := httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{Auth: set, Sessions: httpapi.SessionLimits{Max: 2}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(cookie string) int {
		code, _ := sessionCall{method: "GET", target: "/v1/session", cookie: cookie}.status(t, srv)
		return code
	}
	a, _ := login(t, srv, toks[nexus.RoleRead])
	b, _ := login(t, srv, toks[nexus.RoleRead])
	if get(a) != 200 { // a is now the most recently used
		t.Fatal("session a refused")
	}
	c, _ := login(t, srv, toks[nexus.RoleRead])
	if get(b) != 401 || get(a) != 200 || get(c) != 200 {
		t.Fatalf("over the bound of 2: b %d (want 401), a %d, c %d (want 200)", get(b), get(a), get(c))
	}
	if n := httpapi.SessionCount(h); n != 2 {
		t.Fatalf("%d sessions held, want 2", n)
	}
}

// DELETE /v1/session needs the CSRF token, ends the session and clears
// the cookie; the cookie then authenticates nothing.
func TestSession_logout(t *testing.T) {
	set, toks := principals(t)
	srv := newServer(t, storetest.NewMemStore(), httpapi.Options{Auth: set})
	cookie, info := login(t, srv, toks[nexus.RoleRead])
	sessionCall{method: "DELETE", target: "/v1/session", cookie: cookie}.wantCode(t, srv, 403, nexus.EForbidden)
	resp := sessionCall{method: "DELETE", target: "/v1/session", cookie: cookie, csrf: info.CSRFToken}.send(t, srv)
	if c := sessionCookieOf(resp); resp.StatusCode != 204 || c == nil || c.Value != "" || c.MaxAge >= 0 || !c.HttpOnly {
		t.Fatalf("logout: %d, Set-Cookie %q: want 204 and the cookie cleared", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	sessionCall{method: "GET", target: "/v1/session", cookie: cookie}.wantCode(t, srv, 401, nexus.EUnauthorized)
	sessionCall{method: "GET", target: "/v1/contexts", cookie: cookie}.wantCode(t, srv, 401, nexus.EUnauthorized)
}

// A session whose principal was removed from the tokens file stops
// working once the file is reloaded, and that is heard as a failure.
func TestSession_removedPrincipal(t *testing.T) {
	f := &auth.File{}
	keep, err := f.Create(nexus.Principal{Name: "keep", Role: nexus.RoleRead, Read: []string{"*"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	gone, err := f.Create(nexus.Principal{Name: "gone", Role: nexus.RoleAdmin, Read: []string{"*"}, Write: []string{"*"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	set, err := auth.New(func() (auth.Sources, error) { return auth.Sources{TokensFile: path}, nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	var heard authFailures
	srv := newServer(t, storetest.NewMemStore(), httpapi.Options{Auth: set, OnAuthFailure: heard.hook})
	kc, _ := login(t, srv, keep)
	gc, _ := login(t, srv, gone)
	if code, _ := (sessionCall{method: "GET", target: "/v1/admin/audit", cookie: gc}).status(t, srv); code == 401 || code == 403 {
		t.Fatalf("the admin's session: %d", code)
	}
	if err := f.Revoke("gone"); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	// Until the reload the table is the old one.
	if code, _ := (sessionCall{method: "GET", target: "/v1/session", cookie: gc}).status(t, srv); code != 200 {
		t.Fatalf("before the reload: %d", code)
	}
	if err := set.Reload(); err != nil {
		t.Fatal(err)
	}
	sessionCall{method: "GET", target: "/v1/admin/audit", cookie: gc}.wantCode(t, srv, 401, nexus.EUnauthorized)
	sessionCall{method: "GET", target: "/v1/session", cookie: gc}.wantCode(t, srv, 401, nexus.EUnauthorized)
	if code, _ := (sessionCall{method: "GET", target: "/v1/session", cookie: kc}).status(t, srv); code != 200 {
		t.Fatalf("the kept principal's session after the reload: %d", code)
	}
	want := []string{"GET /v1/admin/audit: session: unknown token", "GET /v1/session: unknown or expired session"}
	if got := heard.list(); !slices.Equal(got, want) {
		t.Fatalf("OnAuthFailure heard %q, want %q", got, want)
	}
}

// With an Authorization header the cookie plays no part: the bearer's
// principal, no CSRF token needed; GET /v1/session names it.
func TestSession_bearerWins(t *testing.T) {
	set, toks := principals(t)
	srv := newServer(t, storetest.NewMemStore(), httpapi.Options{Auth: set})
	rc, _ := login(t, srv, toks[nexus.RoleRead])
	req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/v1/contexts", strings.NewReader(`{"type":"memory","content":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+toks[nexus.RoleWrite])
	req.AddCookie(&http.Cookie{Name: httpapi.SessionCookie, Value: rc})
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("a writer's bearer with a reader's cookie: %d, want 201", resp.StatusCode)
	}
	who := send(t, srv, request{method: "GET", target: "/v1/session", auth: "Bearer " + toks[nexus.RoleAdmin]})
	var info sessionInfo
	if json.Unmarshal(who.body, &info); who.status != 200 || info.Principal != "admin" || info.CSRFToken != "" || info.ExpiresAt != nil {
		t.Fatalf("GET /v1/session with a bearer: %d %s", who.status, who.body)
	}
	if r := send(t, srv, request{method: "DELETE", target: "/v1/session", ctype: "application/json", auth: "Bearer " + toks[nexus.RoleAdmin]}); r.status != 204 {
		t.Fatalf("DELETE /v1/session with a bearer: %d %s", r.status, r.body)
	}
}

// A node without authentication has no sessions: GET and POST
// /v1/session answer the anonymous admin, auth false, with a CSRF token,
// and set no cookie.
func TestSession_noAuth(t *testing.T) {
	srv := httptest.NewServer(httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{}))
	defer srv.Close()
	for _, c := range []sessionCall{{method: "GET", target: "/v1/session"}, {method: "POST", target: "/v1/session", body: `{"token":"anything"}`}} {
		resp := c.send(t, srv)
		var info sessionInfo
		json.NewDecoder(resp.Body).Decode(&info)
		if resp.StatusCode != 200 || info.Principal != "anonymous" || info.Role != nexus.RoleAdmin || info.Auth ||
			!slices.Equal(info.Namespaces, []string{"*"}) || info.CSRFToken == "" || len(resp.Header.Values("Set-Cookie")) != 0 {
			t.Fatalf("%s /v1/session: %d %+v, Set-Cookie %q", c.method, resp.StatusCode, info, resp.Header.Values("Set-Cookie"))
		}
	}
}

// Logins are limited per client address: past the burst, 429 with
// Retry-After, whether the token is right or not.
func TestSession_loginRate(t *testing.T) {
	set, toks := principals(t)
	clock := newFakeClock()
	h := httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{Auth: set, Limits: httpapi.Limits{Now: clock.Now}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	wrong, _ := auth.NewToken()
	for range 10 {
		sessionCall{method: "POST", target: "/v1/session", body: `{"token":"` + wrong + `"}`}.wantCode(t, srv, 401, nexus.EUnauthorized)
	}
	b, _ := json.Marshal(map[string]string{"token": toks[nexus.RoleRead]})
	resp := sessionCall{method: "POST", target: "/v1/session", body: string(b)}.send(t, srv)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" || len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Fatalf("the 11th login at once: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if n := h.LimitStats().Refused["login"]; n != 1 {
		t.Errorf("login refusals counted %d, want 1", n)
	}
	clock.Add(time.Second)
	login(t, srv, toks[nexus.RoleRead])
}

// The cookie authenticates the event stream too (the console's live
// updates use EventSource, which sends cookies but no header).
func TestSession_events(t *testing.T) {
	set, toks := principals(t)
	n := newEventNode(t, httpapi.Options{Auth: set}, events.Options{})
	cookie, _ := login(t, n.srv, toks[nexus.RoleRead])
	resp := sessionCall{method: "GET", target: "/v1/events", cookie: cookie}.send(t, n.srv)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /v1/events with the cookie: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
