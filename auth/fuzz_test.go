package auth_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
)

// A tokens file either parses into valid, unique entries that save and
// parse back the same, or is refused with an error.
func FuzzParseFile(f *testing.F) {
	h := auth.HashToken("x")
	f.Add([]byte(`{"principals":[{"name":"a","role":"read","read":["*"],"token_sha256":"` + h + `"}]}`))
	f.Add([]byte(`{"principals":[{"name":"a","role":"write","read":["x"],"write":["t-*"],"token_sha256":"` + h + `","created":"2026-01-02T03:04:05Z"}]}`))
	f.Add([]byte(`{"principals":null}`))
	f.Add([]byte(`{"principals":[{"name":"a","role":"admin","read":["["],"token_sha256":""}]}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := auth.ParseFile(data)
		if err != nil {
			return
		}
		for _, e := range file.Principals {
			if err := auth.ValidatePrincipal(e.Principal()); err != nil {
				t.Fatalf("accepted an invalid principal %+v: %v", e, err)
			}
		}
		path := filepath.Join(dir, "tokens.json")
		if err := file.Save(path); err != nil {
			t.Fatalf("a parsed file does not save: %v", err)
		}
		back, err := auth.LoadFile(path, false)
		if err != nil || len(back.Principals) != len(file.Principals) {
			t.Fatalf("a saved file does not load back: %v", err)
		}
		os.Remove(path)
	})
}

// Whatever credential is presented, only the one token and JWTs signed by
// the configured key authenticate; everything else is unauthorized.
func FuzzSet_Authenticate(f *testing.F) {
	fx := newJWTFixture(f, auth.JWTConfig{})
	tok, _ := auth.NewToken()
	path := filepath.Join(f.TempDir(), "tokens.json")
	file := &auth.File{Principals: []auth.Entry{{Name: "p", Role: nexus.RoleRead, Read: []string{"*"}, TokenSHA256: auth.HashToken(tok)}}}
	if err := file.Save(path); err != nil {
		f.Fatal(err)
	}
	set, err := auth.New(func() (auth.Sources, error) { return auth.Sources{TokensFile: path}, nil }, nil)
	if err != nil {
		f.Fatal(err)
	}
	valid := func(c jwt.MapClaims) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(fx.key)
		return s
	}
	f.Add(tok)
	f.Add(tok[:len(tok)-1])
	f.Add(valid(jwt.MapClaims{"sub": "a", "role": "read", "read": "*", "exp": now.Add(time.Hour).Unix()}))
	f.Add(valid(jwt.MapClaims{"sub": "a", "role": "read", "read": "*"}))
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, cred string) {
		p, err := set.Authenticate(cred)
		switch {
		case cred == tok:
			if err != nil || p.Name != "p" {
				t.Fatalf("the token: %+v %v", p, err)
			}
		case err == nil || p != nil || nexus.ErrorCode(err) != nexus.EUnauthorized:
			t.Fatalf("credential %q: %+v %v, want unauthorized", cred, p, err)
		}
		p, err = fx.set.Authenticate(cred)
		if err != nil {
			if p != nil || nexus.ErrorCode(err) != nexus.EUnauthorized {
				t.Fatalf("JWT %q: %+v %v, want unauthorized", cred, p, err)
			}
			return
		}
		if auth.ValidatePrincipal(p) != nil {
			t.Fatalf("JWT %q gave an invalid principal %+v", cred, p)
		}
	})
}

// Any claims map to a valid principal or to an error.
func FuzzPrincipalFromClaims(f *testing.F) {
	f.Add([]byte(`{"sub":"a","role":"write","read":["x","y-*"],"write":"x"}`))
	f.Add([]byte(`{"sub":"a","role":"read","write":"x"}`))
	f.Add([]byte(`{"sub":"","role":"admin","read":[1]}`))
	f.Add([]byte(`{"sub":"a","role":"admin","read":"["}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var claims map[string]any
		if json.Unmarshal(data, &claims) != nil {
			return
		}
		p, err := auth.PrincipalFromClaims(auth.JWTConfig{}, claims)
		if err != nil {
			return
		}
		if verr := auth.ValidatePrincipal(p); verr != nil || p.Name != claims["sub"] || string(p.Role) != claims["role"] {
			t.Fatalf("claims %s gave %+v (%v)", data, p, verr)
		}
	})
}
