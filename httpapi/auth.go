package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/nexus-mem/nexus"
)

// Authenticator maps the bearer credential of a request to its principal
// (auth.Set is one).
type Authenticator interface {
	// Enabled reports whether any principal is configured. Without one,
	// every request is [nexus.Anonymous].
	Enabled() bool
	// Authenticate returns the principal of a credential, or an error
	// (code unauthorized) whose message says why, without the credential.
	Authenticate(credential string) (*nexus.Principal, error)
}

// tokenPrincipal is the principal of Options.Token.
var tokenPrincipal = &nexus.Principal{Name: "token", Role: nexus.RoleAdmin, Read: []string{"*"}, Write: []string{"*"}}

// singleToken authenticates one token as an admin principal.
type singleToken struct{ hash [sha256.Size]byte }

func (t singleToken) Enabled() bool { return true }

func (t singleToken) Authenticate(cred string) (*nexus.Principal, error) {
	// Hashing first makes the comparison independent of the length too.
	sum := sha256.Sum256([]byte(cred))
	if subtle.ConstantTimeCompare(sum[:], t.hash[:]) != 1 {
		return nil, nexus.Errorf(nexus.EUnauthorized, "unknown token")
	}
	return tokenPrincipal, nil
}

// noAuth is a node without principals.
type noAuth struct{}

func (noAuth) Enabled() bool { return false }

func (noAuth) Authenticate(string) (*nexus.Principal, error) { return nexus.Anonymous, nil }

// authenticator is the one opts configure: opts.Auth, else opts.Token as
// one admin principal, else none.
func authenticator(opts Options) Authenticator {
	switch {
	case opts.Auth != nil:
		return opts.Auth
	case opts.Token != "":
		return singleToken{hash: sha256.Sum256([]byte(opts.Token))}
	}
	return noAuth{}
}

// authenticate returns r carrying its principal: nexus.Anonymous when no
// principal is configured, none for the public routes (GET /livez, the
// login), else the one its bearer credential names or, without an
// Authorization header, its session cookie's. On failure it answers 401
// and returns nil.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *http.Request {
	if !s.authn.Enabled() {
		// A program that embeds the handler may have authenticated the
		// caller itself (a context value no client can set): keep its
		// principal. Otherwise the caller is anonymous.
		if _, ok := nexus.PrincipalFrom(r.Context()); ok {
			return r
		}
		return r.WithContext(nexus.WithPrincipal(r.Context(), nexus.Anonymous))
	}
	if publicRoute(r) {
		return r
	}
	_, hasAuth := r.Header["Authorization"]
	if id := cookieValue(r); id != "" && !hasAuth {
		return s.authenticateSession(w, r, id)
	}
	if !hasAuth && r.Method == http.MethodGet && r.URL.Path == "/v1/session" {
		// The console asking whether it is logged in: no credential is no
		// attack, and not audited.
		s.fail(w, r, nexus.Errorf(nexus.EUnauthorized, "not logged in: POST /v1/session with a token, or send a bearer credential"))
		return nil
	}
	p, err := s.authn.Authenticate(bearer(r))
	if err != nil {
		s.authFailed(r, nexus.ErrorMessage(err))
		w.Header().Set("WWW-Authenticate", `Bearer realm="nexus"`)
		s.fail(w, r, nexus.Errorf(nexus.EUnauthorized, "missing or wrong bearer token: %s", nexus.ErrorMessage(err)))
		return nil
	}
	return r.WithContext(nexus.WithPrincipal(r.Context(), p))
}

// publicRoute reports whether r needs no credential: GET /livez, and the
// login, whose body holds the credential.
func publicRoute(r *http.Request) bool {
	switch p := r.URL.Path; r.Method {
	case http.MethodGet, http.MethodHead:
		return p == "/livez"
	case http.MethodPost:
		return p == "/v1/session"
	}
	return false
}

// bearer is the credential of "Authorization: Bearer <credential>", or "".
func bearer(r *http.Request) string {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(cred)
}

// authorize refuses a principal whose role is below the route's.
func (s *Server) authorize(r *http.Request, pattern string) error {
	p, ok := nexus.PrincipalFrom(r.Context())
	if !ok {
		return nil // GET /livez: public
	}
	need, ok := RouteRole(pattern)
	if !ok {
		s.authFailed(r, "route "+pattern+" has no role")
		return nexus.Errorf(nexus.EForbidden, "%s %s is open to no role", clip(r.Method, 20), clip(r.URL.Path, 80))
	}
	if !p.Can(need) {
		s.authFailed(r, "principal "+p.Name+" lacks role "+string(need))
		return nexus.Errorf(nexus.EForbidden, "%s %s needs role %s; principal %s has role %s", clip(r.Method, 20), clip(r.URL.Path, 80), need, p.Name, p.Role)
	}
	return nil
}

// authFailed tells the hook about a refused request.
func (s *Server) authFailed(r *http.Request, reason string) {
	if s.onAuthFail != nil {
		s.onAuthFail(r, reason)
	}
}
