package httpapi

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
)

// The web console's sessions: a browser logs in once with a token (POST
// /v1/session) and gets a cookie that authenticates its later requests in
// place of an Authorization header. A state-changing request that a
// cookie authenticates must also carry the session's CSRF token in
// HeaderCSRF.
const (
	// SessionCookie is the name of the session cookie.
	SessionCookie = "nexus_session"
	// HeaderCSRF carries the session's csrf_token on every state-changing
	// request authenticated by the session cookie.
	HeaderCSRF = "X-Nexus-CSRF"
	// DefaultSessionIdle is how long a session lasts unused.
	DefaultSessionIdle = 12 * time.Hour
	// DefaultSessionLifetime is how long a session lasts at most, used or
	// not.
	DefaultSessionLifetime = 24 * time.Hour
	// DefaultMaxSessions is how many sessions a node holds at once: beyond
	// it the least recently used one ends.
	DefaultMaxSessions = 10000
	// maxSessionToken bounds the token of a login (a JWT is the longest).
	maxSessionToken = 16 << 10
	// loginRate and loginBurst bound the logins of one client address: a
	// person never meets the limit, a guesser does.
	loginRate  = 1.0
	loginBurst = 10
)

// SessionLimits bound the console's sessions. Zero fields take the
// defaults.
type SessionLimits struct {
	// Idle is how long a session lasts unused; 0: DefaultSessionIdle.
	Idle time.Duration
	// Lifetime is how long a session lasts at most; 0:
	// DefaultSessionLifetime.
	Lifetime time.Duration
	// Max is how many sessions are held at once; 0: DefaultMaxSessions.
	Max int
	// Now is the sessions' clock; nil: time.Now.
	Now func() time.Time
}

// sessions are the node's sessions, in memory: a restart ends them all.
// They are kept by the SHA-256 of their cookie, so that the table holds
// nothing a request could present, in order of use for the LRU bound.
type sessions struct {
	cfg  SessionLimits
	mu   sync.Mutex
	byID map[[sha256.Size]byte]*list.Element // each holds a *session
	lru  list.List                           // the most recently used first
	// anonCSRF is the csrf_token a node without authentication hands out:
	// it has no cookie, so nothing checks it, and the console can send
	// the same headers on every node.
	anonCSRF string
}

// session is one login. cred is the credential it was opened with: each
// use authenticates it again, so a principal removed from the tokens file
// (or a JWT past its expiry) ends its sessions at once, and a request a
// follower forwards to its leader carries it as a bearer credential.
type session struct {
	key     [sha256.Size]byte
	cred    string
	csrf    string
	created time.Time
	seen    time.Time
}

func newSessions(cfg SessionLimits) *sessions {
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultSessionIdle
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultSessionLifetime
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMaxSessions
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &sessions{cfg: cfg, byID: map[[sha256.Size]byte]*list.Element{}, anonCSRF: randomToken()}
}

// randomToken is 256 random bits, base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// expires is when s ends if it is not used again.
func (c *sessions) expires(s *session) time.Time {
	idle, end := s.seen.Add(c.cfg.Idle), s.created.Add(c.cfg.Lifetime)
	if idle.Before(end) {
		return idle
	}
	return end
}

// open starts a session for cred and returns its cookie value and a copy.
func (c *sessions) open(cred string) (string, session) {
	id := randomToken()
	now := c.cfg.Now()
	s := &session{key: sha256.Sum256([]byte(id)), cred: cred, csrf: randomToken(), created: now, seen: now}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID[s.key] = c.lru.PushFront(s)
	c.evict(now)
	return id, *s
}

// get returns the session of a cookie value, now used, or false if there
// is none or it expired (then it is forgotten).
func (c *sessions) get(id string) (session, bool) {
	key := sha256.Sum256([]byte(id))
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.byID[key]
	if el == nil {
		return session{}, false
	}
	s := el.Value.(*session)
	if !now.Before(c.expires(s)) {
		c.remove(el)
		return session{}, false
	}
	s.seen = now
	c.lru.MoveToFront(el)
	return *s, true
}

// end forgets the session of a cookie value, if there is one.
func (c *sessions) end(id string) {
	key := sha256.Sum256([]byte(id))
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.byID[key]; el != nil {
		c.remove(el)
	}
}

// len is how many sessions are held.
func (c *sessions) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID)
}

// evict forgets, from the least recently used end, the sessions beyond
// the bound and those idle too long. The list is in order of use, so the
// idle ones are at its end; one that outlived its lifetime while in use
// is found when it is next presented.
func (c *sessions) evict(now time.Time) {
	for el := c.lru.Back(); el != nil; el = c.lru.Back() {
		s := el.Value.(*session)
		if len(c.byID) > c.cfg.Max || !now.Before(c.expires(s)) {
			c.remove(el)
			continue
		}
		break
	}
}

func (c *sessions) remove(el *list.Element) {
	delete(c.byID, el.Value.(*session).key)
	c.lru.Remove(el)
}

type sessionKey struct{}

// sessionFrom returns the session that authenticated the request.
func sessionFrom(ctx context.Context) (session, bool) {
	s, ok := ctx.Value(sessionKey{}).(session)
	return s, ok
}

// sessionCookie is the cookie of a session, Secure when the request came
// over TLS; an empty id clears it.
func sessionCookie(id string, r *http.Request) *http.Cookie {
	c := &http.Cookie{Name: SessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if id == "" {
		c.MaxAge = -1
	}
	return c
}

// cookieValue is the request's session cookie, or "".
func cookieValue(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// authenticateSession authenticates r by its session cookie: the
// session's credential, authenticated again. On failure it clears the
// cookie, answers 401 and returns nil.
func (s *Server) authenticateSession(w http.ResponseWriter, r *http.Request, id string) *http.Request {
	sess, ok := s.sessions.get(id)
	if !ok {
		s.authFailed(r, "unknown or expired session")
		http.SetCookie(w, sessionCookie("", r))
		s.fail(w, r, nexus.Errorf(nexus.EUnauthorized, "the session is unknown or expired: log in again (POST /v1/session)"))
		return nil
	}
	p, err := s.authn.Authenticate(sess.cred)
	if err != nil {
		s.sessions.end(id)
		s.authFailed(r, "session: "+nexus.ErrorMessage(err))
		http.SetCookie(w, sessionCookie("", r))
		s.fail(w, r, nexus.Errorf(nexus.EUnauthorized, "the session's credential is no longer valid (%s): log in again", nexus.ErrorMessage(err)))
		return nil
	}
	ctx := context.WithValue(nexus.WithPrincipal(r.Context(), p), sessionKey{}, sess)
	return r.WithContext(ctx)
}

// checkCSRF refuses a state-changing request authenticated by a session
// cookie that does not carry the session's CSRF token: a page of another
// site can make the browser send the cookie, not the token. It writes
// the refusal and returns the limit's name.
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request) (string, bool) {
	sess, ok := sessionFrom(r.Context())
	if !ok || safeMethod(r.Method) {
		return "", true
	}
	got := r.Header.Get(HeaderCSRF)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) != 1 {
		s.authFailed(r, "session request without its CSRF token")
		msg := "a request authenticated by the session cookie that changes anything must carry the session's csrf_token in header " + HeaderCSRF
		if got != "" {
			msg = "header " + HeaderCSRF + " does not hold this session's csrf_token"
		}
		writeError(w, http.StatusForbidden, nexus.ErrorDetail{Code: codeForbidden, Message: msg})
		return limitCSRF, false
	}
	return "", true
}

// sessionInfo is the answer of the /v1/session routes.
type sessionInfo struct {
	Principal string     `json:"principal"`
	Role      nexus.Role `json:"role"`
	// Namespaces are those the principal may read; WriteNamespaces those
	// it may write (globs, "*" for all).
	Namespaces      []string `json:"namespaces"`
	WriteNamespaces []string `json:"write_namespaces"`
	// CSRFToken must be sent in X-Nexus-CSRF with every state-changing
	// request the session cookie authenticates; none for a bearer
	// credential.
	CSRFToken string     `json:"csrf_token,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Auth is whether the node authenticates requests at all.
	Auth bool `json:"auth"`
}

func (s *Server) sessionInfo(p *nexus.Principal) sessionInfo {
	read := slices.Clone(p.Read)
	for _, ns := range p.Write {
		if !slices.Contains(read, ns) {
			read = append(read, ns)
		}
	}
	return sessionInfo{Principal: p.Name, Role: p.Role, Namespaces: nonNil(read), WriteNamespaces: nonNil(slices.Clone(p.Write)), Auth: s.authn.Enabled()}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

var sessionFields = []string{"token"}

// decodeSessionRequest returns the token of a login's body.
func decodeSessionRequest(body []byte) (string, error) {
	var req struct {
		Token string `json:"token"`
	}
	if err := decodeObject(body, &req, sessionFields); err != nil {
		return "", err
	}
	switch tok := strings.TrimSpace(req.Token); {
	case tok == "":
		return "", nexus.Errorf(nexus.EInvalid, "field \"token\" is required: the token (or JWT) to log in with")
	case len(tok) > maxSessionToken:
		return "", nexus.Errorf(nexus.EInvalid, "field \"token\" is %d bytes, over the limit of %d", len(tok), maxSessionToken)
	default:
		return tok, nil
	}
}

// createSession logs in: POST /v1/session {"token": ...}. A node without
// authentication has no sessions: it answers as GET does.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	body, err := s.readJSONBody(w, r)
	if err != nil {
		return err
	}
	tok, err := decodeSessionRequest(body)
	if err != nil {
		return err
	}
	if !s.authn.Enabled() {
		return s.getSession(w, r)
	}
	if wait, ok := s.logins.allow(clientHost(r)); !ok {
		s.limits.count(limitLogin)
		retryAfter(w, wait)
		return nexus.Errorf(nexus.ERateLimited, "too many logins from this address (at most %g a second, %d at once); retry after %s",
			loginRate, loginBurst, wait.Round(time.Millisecond))
	}
	p, err := s.authn.Authenticate(tok)
	if err != nil {
		s.authFailed(r, "login: "+nexus.ErrorMessage(err))
		return nexus.Errorf(nexus.EUnauthorized, "login refused: %s", nexus.ErrorMessage(err))
	}
	if old := cookieValue(r); old != "" {
		s.sessions.end(old) // a new login replaces the browser's session
	}
	id, sess := s.sessions.open(tok)
	http.SetCookie(w, sessionCookie(id, r))
	info := s.sessionInfo(p)
	info.CSRFToken = sess.csrf
	exp := s.sessions.expires(&sess).UTC()
	info.ExpiresAt = &exp
	return writeJSON(w, http.StatusOK, info)
}

// getSession answers who the request is: GET /v1/session.
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	p, _ := nexus.PrincipalFrom(r.Context())
	if !s.authn.Enabled() {
		info := s.sessionInfo(nexus.Anonymous)
		info.CSRFToken = s.sessions.anonCSRF
		return writeJSON(w, http.StatusOK, info)
	}
	info := s.sessionInfo(p)
	if sess, ok := sessionFrom(r.Context()); ok {
		info.CSRFToken = sess.csrf
		exp := s.sessions.expires(&sess).UTC()
		info.ExpiresAt = &exp
	}
	return writeJSON(w, http.StatusOK, info)
}

// deleteSession logs out: DELETE /v1/session ends the cookie's session
// and clears the cookie. With a bearer credential there is none to end.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	if _, ok := sessionFrom(r.Context()); ok {
		s.sessions.end(cookieValue(r))
		http.SetCookie(w, sessionCookie("", r))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// clientHost is the address a request came from, without its port: the
// key of its logins' rate.
func clientHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
