package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus-mem/nexus"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// keyFile writes pub as a PEM file and returns its path.
func keyFile(t *testing.T, pub ed25519.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwt.pub")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func signed(t *testing.T, key ed25519.PrivateKey, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func refused(t *testing.T, s *Set, tok, reason string) {
	t.Helper()
	if p, err := s.Authenticate(tok); p != nil || nexus.ErrorCode(err) != nexus.EUnauthorized || nexus.ErrorMessage(err) != reason {
		t.Fatalf("authenticate: %+v %v, want unauthorized %q", p, err, reason)
	}
}

// A verified JWT is remembered, and a remembered JWT is still refused
// outside its window of time exactly as a parse would refuse it (exp
// exclusive, nbf inclusive, the clock going back as well), and by a set
// reloaded with another key.
func TestJWT_verifiedMemory(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	pub2, key2, _ := ed25519.GenerateKey(rand.Reader)
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	cfg := JWTConfig{PublicKeyFile: keyFile(t, pub)}
	s, err := New(func() (Sources, error) { return Sources{JWT: &cfg}, nil }, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	tok := signed(t, key, jwt.MapClaims{"sub": "bot", "role": "read", "read": "*",
		"nbf": t0.Add(10 * time.Second).Unix(), "exp": t0.Add(time.Minute).Unix()})
	refused(t, s, tok, "jwt: not valid yet")
	v := s.table.Load().jwt
	if len(v.verified) != 0 {
		t.Fatalf("a refused JWT was remembered: %d", len(v.verified))
	}
	clk.set(t0.Add(10 * time.Second)) // nbf: valid from then on
	p1, err := s.Authenticate(tok)
	if err != nil || p1.Name != "bot" {
		t.Fatalf("at nbf: %+v %v", p1, err)
	}
	if _, ok := v.verified[sha256.Sum256([]byte(tok))]; !ok || len(v.verified) != 1 {
		t.Fatalf("the verified JWT is not remembered: %d", len(v.verified))
	}
	if p2, err := s.Authenticate(tok); err != nil || p2 != p1 {
		t.Fatalf("again: %+v %v, want the remembered principal", p2, err)
	}
	clk.set(t0.Add(5 * time.Second)) // the clock went back
	refused(t, s, tok, "jwt: not valid yet")
	clk.set(t0.Add(time.Minute - time.Nanosecond))
	if _, err := s.Authenticate(tok); err != nil {
		t.Fatalf("just before exp: %v", err)
	}
	clk.set(t0.Add(time.Minute)) // exp: invalid from then on
	refused(t, s, tok, "jwt: expired")

	// Another key after a reload: the JWT signed with the old one is
	// refused although it was remembered.
	clk.set(t0.Add(30 * time.Second))
	if _, err := s.Authenticate(tok); err != nil {
		t.Fatal(err)
	}
	cfg.PublicKeyFile = keyFile(t, pub2)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	refused(t, s, tok, "jwt: bad signature")
	tok2 := signed(t, key2, jwt.MapClaims{"sub": "bot2", "role": "read", "read": "*", "exp": t0.Add(time.Minute).Unix()})
	if p, err := s.Authenticate(tok2); err != nil || p.Name != "bot2" {
		t.Fatalf("a JWT of the new key: %+v %v", p, err)
	}
}

// The memory holds at most maxVerifiedJWTs: when full, the expired go
// first, then arbitrary ones down to three quarters, and the new one is
// always kept.
func TestJWT_verifiedMemoryBounded(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	v := &jwtVerifier{now: clk.now, verified: map[[sha256.Size]byte]verifiedJWT{}}
	sum := func(i int) [sha256.Size]byte { return sha256.Sum256(fmt.Appendf(nil, "tok-%d", i)) }
	for i := range maxVerifiedJWTs {
		exp := t0.Add(time.Hour)
		if i%2 == 0 {
			exp = t0.Add(time.Second) // expired once the clock moves
		}
		v.remember(sum(i), verifiedJWT{exp: exp})
	}
	if len(v.verified) != maxVerifiedJWTs {
		t.Fatalf("%d remembered, want %d", len(v.verified), maxVerifiedJWTs)
	}
	clk.set(t0.Add(time.Second))
	v.remember(sum(-1), verifiedJWT{exp: t0.Add(time.Hour)})
	if len(v.verified) != maxVerifiedJWTs/2+1 {
		t.Fatalf("after the expired went: %d remembered, want %d", len(v.verified), maxVerifiedJWTs/2+1)
	}
	for i := 1; i < maxVerifiedJWTs; i += 2 {
		if _, ok := v.verified[sum(i)]; !ok {
			t.Fatalf("valid JWT %d was dropped while expired ones could go", i)
		}
	}
	for i := range maxVerifiedJWTs/2 - 1 { // full of valid ones
		v.remember(sum(maxVerifiedJWTs+i), verifiedJWT{exp: t0.Add(time.Hour)})
	}
	if len(v.verified) != maxVerifiedJWTs {
		t.Fatalf("%d remembered, want %d", len(v.verified), maxVerifiedJWTs)
	}
	v.remember(sum(-2), verifiedJWT{exp: t0.Add(time.Hour)})
	if _, ok := v.verified[sum(-2)]; len(v.verified) != maxVerifiedJWTs*3/4+1 || !ok {
		t.Fatalf("full of valid ones: %d remembered (want %d), the newest kept %v", len(v.verified), maxVerifiedJWTs*3/4+1, ok)
	}
}
