package httpapi_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

// tokenSet is a Set of n principals and the token of the last one.
func tokenSet(b *testing.B, n int) (*auth.Set, string) {
	f := &auth.File{}
	var tok string
	for i := range n {
		var err error
		tok, err = f.Create(nexus.Principal{Name: fmt.Sprint("p", i), Role: nexus.RoleRead, Read: []string{"*"}}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(b.TempDir(), "tokens.json")
	if err := f.Save(path); err != nil {
		b.Fatal(err)
	}
	s, err := auth.New(func() (auth.Sources, error) { return auth.Sources{TokensFile: path}, nil }, nil)
	if err != nil {
		b.Fatal(err)
	}
	return s, tok
}

// jwtSet is a Set verifying Ed25519 JWTs, and one valid JWT.
func jwtSet(b *testing.B) (*auth.Set, string) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	path := filepath.Join(b.TempDir(), "jwt.pub")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	s, err := auth.New(func() (auth.Sources, error) {
		return auth.Sources{JWT: &auth.JWTConfig{PublicKeyFile: path}}, nil
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "bench", "role": "read", "read": "*", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(key)
	if err != nil {
		b.Fatal(err)
	}
	return s, tok
}

// The cost of authentication per request: GET /readyz (a route that does
// next to nothing) served in process, without principals and with a
// token, a tokens file of 3 or 100 principals, or a JWT.
func BenchmarkServer_auth(b *testing.B) {
	set3, tok3 := tokenSet(b, 3)
	set100, tok100 := tokenSet(b, 100)
	setJWT, tokJWT := jwtSet(b)
	single, _ := auth.NewToken()
	for _, bc := range []struct {
		name string
		opts httpapi.Options
		cred string
	}{
		{"none", httpapi.Options{}, ""},
		{"token", httpapi.Options{Token: single}, single},
		{"principals-3", httpapi.Options{Auth: set3}, tok3},
		{"principals-100", httpapi.Options{Auth: set100}, tok100},
		{"jwt-ed25519", httpapi.Options{Auth: setJWT}, tokJWT},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := httpapi.NewServer(storetest.NewMemStore(), bc.opts)
			r := httptest.NewRequest("GET", "/readyz", nil)
			if bc.cred != "" {
				r.Header.Set("Authorization", "Bearer "+bc.cred)
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				s.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
