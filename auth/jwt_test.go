package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
)

// jwtFixture is a Set verifying JWTs with an Ed25519 key file, on a
// fixed clock.
type jwtFixture struct {
	key   ed25519.PrivateKey
	other ed25519.PrivateKey
	set   *auth.Set
}

func newJWTFixture(t testing.TB, cfg auth.JWTConfig) *jwtFixture {
	t.Helper()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	cfg.PublicKeyFile = filepath.Join(t.TempDir(), "jwt.pub")
	os.WriteFile(cfg.PublicKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	s, err := auth.New(func() (auth.Sources, error) { return auth.Sources{JWT: &cfg}, nil }, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return &jwtFixture{key: key, other: other, set: s}
}

func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSet_JWT(t *testing.T) {
	fx := newJWTFixture(t, auth.JWTConfig{Issuer: "idp", Audience: "nexus"})
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "ci-bot", "role": "write", "read": []any{"team-*"}, "write": "team-a",
			"exp": now.Add(time.Minute).Unix(), "iss": "idp", "aud": "nexus"}
	}
	p, err := fx.set.Authenticate(sign(t, jwt.SigningMethodEdDSA, fx.key, good()))
	if err != nil || p.Name != "ci-bot" || p.Role != nexus.RoleWrite || !p.CanWrite("team-a") || p.CanWrite("team-b") || !p.CanRead("team-b") {
		t.Fatalf("valid JWT: %+v %v", p, err)
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	for _, tc := range []struct {
		name, tok, reason string
	}{
		{"expired", sign(t, jwt.SigningMethodEdDSA, fx.key, with("exp", now.Add(-time.Second).Unix())), "jwt: expired"},
		{"no exp", sign(t, jwt.SigningMethodEdDSA, fx.key, with("exp", nil)), "jwt: no exp claim"},
		{"not yet", sign(t, jwt.SigningMethodEdDSA, fx.key, with("nbf", now.Add(time.Hour).Unix())), "jwt: not valid yet"},
		{"issuer", sign(t, jwt.SigningMethodEdDSA, fx.key, with("iss", "evil")), "jwt: wrong issuer"},
		{"audience", sign(t, jwt.SigningMethodEdDSA, fx.key, with("aud", "other")), "jwt: wrong audience"},
		{"other key", sign(t, jwt.SigningMethodEdDSA, fx.other, good()), "jwt: bad signature"},
		{"hmac", sign(t, jwt.SigningMethodHS256, []byte("guessable"), good()), "jwt: bad signature"},
		{"none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good()), "jwt: bad signature"},
		{"bad role", sign(t, jwt.SigningMethodEdDSA, fx.key, with("role", "root")), `jwt: principal ci-bot: role "root": must be read, write or admin`},
		{"no name", sign(t, jwt.SigningMethodEdDSA, fx.key, with("sub", nil)), `jwt: name "": 1-64 of A-Z a-z 0-9 . _ : @ + -, starting with a letter or digit`},
		{"globs not strings", sign(t, jwt.SigningMethodEdDSA, fx.key, with("read", []any{1})), "jwt: claim read: not an array of strings"},
		{"malformed", "eyJhbGciOiJFZERTQSJ9.e30.@@@", "jwt: malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantRefused(t, fx.set, tc.tok, tc.reason) })
	}
}

// b64 is unpadded base64url.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestSet_JWKS(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, ed, _ := ed25519.GenerateKey(rand.Reader)
	ecPoint, _ := ec.PublicKey.Bytes() // 0x04 || X || Y
	set := map[string]any{"keys": []any{
		map[string]any{"kty": "EC", "kid": "ec1", "crv": "P-256", "x": b64(ecPoint[1:33]), "y": b64(ecPoint[33:])},
		map[string]any{"kty": "OKP", "kid": "ed1", "crv": "Ed25519", "x": b64(pub)},
		map[string]any{"kty": "oct", "kid": "enc", "use": "enc"},
	}}
	data, _ := json.Marshal(set)
	path := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(path, data, 0o644)
	s, err := auth.New(func() (auth.Sources, error) {
		return auth.Sources{JWT: &auth.JWTConfig{JWKSFile: path, NameClaim: "email", RoleClaim: "nexus_role"}}, nil
	}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"email": "ann@example.com", "nexus_role": "admin", "read": "*", "write": "*", "exp": now.Add(time.Hour).Unix()}
	withKid := func(m jwt.SigningMethod, kid string, key any) string {
		tk := jwt.NewWithClaims(m, claims)
		tk.Header["kid"] = kid
		out, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	wantPrincipal(t, s, withKid(jwt.SigningMethodES256, "ec1", ec), "ann@example.com", nexus.RoleAdmin)
	wantPrincipal(t, s, withKid(jwt.SigningMethodEdDSA, "ed1", ed), "ann@example.com", nexus.RoleAdmin)
	wantRefused(t, s, withKid(jwt.SigningMethodEdDSA, "ec1", ed), "jwt: no key to verify it") // algorithm of another key
	wantRefused(t, s, withKid(jwt.SigningMethodES256, "nope", ec), "jwt: no key to verify it")
	wantRefused(t, s, withKid(jwt.SigningMethodES256, "", ec), "jwt: no key to verify it") // two keys: kid required
}

func TestParseJWKS_errors(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"not JSON", `[`, "not a key set"},
		{"empty", `{"keys":[]}`, "no signature keys"},
		{"weak RSA", `{"keys":[{"kty":"RSA","n":"` + b64(make([]byte, 128)) + `","e":"AQAB"}]}`, "at least 2048 are needed"},
		{"bad curve", `{"keys":[{"kty":"EC","crv":"P-192","x":"AA","y":"AA"}]}`, `unsupported curve "P-192"`},
		{"off-curve point", `{"keys":[{"kty":"EC","crv":"P-256","x":"` + b64(make([]byte, 32)) + `","y":"` + b64(make([]byte, 32)) + `"}]}`, "bad EC point"},
		{"duplicate kid", `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"a","x":"` + b64(make([]byte, 32)) + `"},{"kty":"OKP","crv":"Ed25519","kid":"a","x":"` + b64(make([]byte, 32)) + `"}]}`, `kid "a" is used twice`},
		{"symmetric", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, `unsupported key type "oct"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := auth.ParseJWKS([]byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
